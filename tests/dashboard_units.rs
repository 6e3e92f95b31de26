//! Unit formatting of the Dashboards page (issue 23): `assets/units.js` against a table of
//! Grafana's own examples (`tests/ui/units_test.js`), run with Node (`scripts/test` installs
//! `nodejs` where it is missing); a missing `node` fails the test.

#[test]
fn units_format_as_grafana_formats_them() {
    let script = format!("{}/tests/ui/units_test.js", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("node must be installed (apt-get install nodejs): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("63/63"), "{text}");
}

/// Table transformations (`assets/frames.js`) against the worked examples of Grafana's
/// "Transform data" documentation (`tests/ui/frames_test.js`).
#[test]
fn transformations_as_grafana_documents_them() {
    let script = format!("{}/tests/ui/frames_test.js", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("node must be installed (apt-get install nodejs): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("52/52 frame cases pass"), "{text}");
}
