//! The Dashboards page's scripts run with Node against tables of Grafana's own examples
//! (`scripts/test` installs `nodejs` where it is missing; a missing `node` fails the tests):
//! unit formatting (`assets/units.js`, `tests/ui/units_test.js`) and table transformations
//! (`assets/frames.js`, `tests/ui/frames_test.js`, the worked examples of Grafana's
//! "Transform data" documentation).

/// Runs one test script; returns what it printed, after asserting it exited 0.
fn node(script: &str) -> String {
    let path = format!("{}/tests/ui/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("node must be installed (apt-get install nodejs): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn units_format_as_grafana_formats_them() {
    let text = node("units_test.js");
    assert!(text.contains("63/63"), "{text}");
}

#[test]
fn transformations_as_grafana_documents_them() {
    let text = node("frames_test.js");
    assert!(text.contains("52/52 frame cases pass"), "{text}");
}
