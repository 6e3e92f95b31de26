//! `sightline check rules` and `sightline test rules` against promtool 2.42 on the corpora in
//! `tests/rules/check` (good and bad rule files) and `tests/rules/unit` (rule unit-test files
//! that pass and fail in every way promtool reports: wrong alert labels, missing or unexpected
//! alerts, wrong annotations, wrong expression values or labels, bad input series, bad rule
//! files, unknown fields). The verdict (exit code) must match promtool's and the file name's
//! `good-`/`pass-` or `bad-`/`fail-` prefix; for test failures promtool reports from evaluation
//! (not parse errors, whose wording differs), the whole output must be byte for byte the same.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &str, args: &[&str], file: &Path) -> Out {
    let o = Command::new(cmd)
        .args(args)
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (promtool comes with apt-get install prometheus)"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn expected(file: &Path) -> i32 {
    let n = file.file_name().unwrap().to_string_lossy();
    if n.starts_with("good-") || n.starts_with("pass-") {
        0
    } else {
        assert!(n.starts_with("bad-") || n.starts_with("fail-"), "{n}");
        1
    }
}

#[test]
fn check_rules_agrees_with_promtool() {
    let corpus = files("tests/rules/check", ".yml");
    assert!(corpus.len() >= 20, "corpus has {} files", corpus.len());
    let mut failures = Vec::new();
    for f in &corpus {
        let p = run("promtool", &["check", "rules"], f);
        let s = run(env!("CARGO_BIN_EXE_sightline"), &["check", "rules"], f);
        if p.code != s.code || s.code != expected(f) {
            failures.push(format!(
                "{}: promtool {} sightline {} (expected {})\n  promtool: {}\n  sightline: {}",
                f.display(),
                p.code,
                s.code,
                expected(f),
                p.stderr.trim(),
                s.stderr.trim()
            ));
        }
        if s.code == 0 {
            assert_eq!(p.stdout, s.stdout, "{}: rule count line", f.display());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn test_rules_agrees_with_promtool() {
    let corpus = files("tests/rules/unit", ".test.yml");
    assert!(corpus.len() >= 40, "corpus has {} files", corpus.len());
    let (mut passed, mut failed) = (0, 0);
    let mut failures = Vec::new();
    for f in &corpus {
        let p = run("promtool", &["test", "rules"], f);
        let s = run(env!("CARGO_BIN_EXE_sightline"), &["test", "rules"], f);
        if p.code != s.code || s.code != expected(f) {
            failures.push(format!(
                "{}: promtool {} sightline {} (expected {})\n{}\n{}",
                f.display(),
                p.code,
                s.code,
                expected(f),
                p.stderr,
                s.stderr
            ));
            continue;
        }
        if s.code == 0 {
            passed += 1;
        } else {
            failed += 1;
        }
        let parse_error = ["parse error", "unmarshal", "series value"]
            .iter()
            .any(|w| p.stderr.contains(w) || s.stderr.contains(w));
        if !parse_error && (p.stdout != s.stdout || p.stderr != s.stderr) {
            failures.push(format!(
                "{}: output differs\n--- promtool\n{}{}\n--- sightline\n{}{}",
                f.display(),
                p.stdout,
                p.stderr,
                s.stdout,
                s.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        passed >= 15 && failed >= 15,
        "{passed} passing, {failed} failing files"
    );
}
