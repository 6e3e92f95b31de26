//! File collection (issue 24, item 1): writers append to 50 files (25 in Kubernetes' CRI
//! format, 25 in Docker's json-file format) with partial lines, multiline stack traces and an
//! over-long line, rotating them by rename and by copy-truncate, while Sightline is killed with
//! SIGKILL ten times at random moments and restarted. Afterwards every record written is in the
//! store exactly once, in order per file, read back through Loki's `query_range`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const FILES: usize = 50;
const MAX_LINE: usize = 16 * 1024;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

struct Writer {
    idx: usize,
    cri: bool,
    path: PathBuf,
    file: std::fs::File,
    seq: usize,
    rotations: usize,
    /// Every record as it must be stored.
    expected: Vec<String>,
}

impl Writer {
    fn new(dir: &Path, idx: usize) -> Writer {
        let cri = idx.is_multiple_of(2);
        let path = dir
            .join(if cri { "cri" } else { "docker" })
            .join(format!("app{idx:02}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        Writer {
            idx,
            cri,
            path,
            file,
            seq: 0,
            rotations: 0,
            expected: Vec::new(),
        }
    }

    /// One physical line of the runtime format: `partial` pieces continue on the next line.
    fn physical(&mut self, content: &str, partial: bool) -> String {
        let ts = common_ts();
        let line = if self.cri {
            format!(
                "{} stdout {} {content}\n",
                sightline::base::clock::go_time_text(ts, 'T', "Z"),
                if partial { "P" } else { "F" }
            )
        } else {
            let log = if partial {
                content.to_string()
            } else {
                format!("{content}\n")
            };
            format!(
                "{}\n",
                serde_json::json!({"log": log, "stream": "stdout",
                    "time": sightline::base::clock::go_time_text(ts, 'T', "Z")})
            )
        };
        self.file.write_all(line.as_bytes()).unwrap();
        line
    }

    fn write_record(&mut self) {
        let tag = format!("<f{:02}-s{:06}>", self.idx, self.seq);
        match self.seq % 10 {
            7 => {
                self.physical(&format!("{tag} panic: boom"), false);
                self.physical("\tat main.go:10", false);
                self.physical("\tat runtime.go:20", false);
                self.expected.push(format!(
                    "{tag} panic: boom\n\tat main.go:10\n\tat runtime.go:20"
                ));
            }
            8 => {
                self.physical(&format!("{tag} first half, "), true);
                self.physical("second half", false);
                self.expected.push(format!("{tag} first half, second half"));
            }
            9 if self.seq % 50 == 9 => {
                let long = format!("{tag} {}", "x".repeat(40 * 1024));
                if self.cri {
                    // The physical line is cut at the limit; its CRI prefix is then removed.
                    let line = self.physical(&long, false);
                    let cut = &line[..MAX_LINE];
                    self.expected
                        .push(cut.splitn(4, ' ').nth(3).unwrap().to_string());
                } else {
                    // Docker's line is JSON: the cut falls inside the JSON text, so the record
                    // is kept as the raw (cut) line. Keep Docker lines under the limit instead.
                    let ok = format!("{tag} {}", "y".repeat(8 * 1024));
                    self.physical(&ok, false);
                    self.expected.push(ok);
                }
            }
            _ => {
                let l = format!("{tag} level=info msg=\"request served\" n={}", self.seq);
                self.physical(&l, false);
                self.expected.push(l);
            }
        }
        self.seq += 1;
        if self.seq.is_multiple_of(40) {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        self.rotations += 1;
        let rotated = self.path.with_extension(format!("log.{}", self.rotations));
        if self.idx % 4 < 2 {
            // Rename, then a new file at the old path.
            std::fs::rename(&self.path, &rotated).unwrap();
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .unwrap();
        } else {
            // Copy, then truncate the original (logrotate's copytruncate).
            std::fs::copy(&self.path, &rotated).unwrap();
            self.file.set_len(0).unwrap();
        }
    }
}

fn common_ts() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let t = now_ns();
    let prev = LAST.fetch_max(t, Ordering::SeqCst);
    if prev >= t {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        t
    }
}

fn query(base: &str, q: &str, start: i64) -> Vec<(i64, String)> {
    let url = format!(
        "{base}/loki/api/v1/query_range?direction=forward&limit=5000&start={start}&end={}&query={}",
        now_ns() + 1_000_000_000,
        q.bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let v: Value = reqwest::blocking::get(&url).unwrap().json().unwrap();
    let mut out: Vec<(i64, String)> = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .flat_map(|s| {
            s["values"].as_array().unwrap().iter().map(|e| {
                (
                    e[0].as_str().unwrap().parse().unwrap(),
                    e[1].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    out.sort();
    out
}

#[test]
fn files_are_collected_exactly_once_across_kill_9_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("cri")).unwrap();
    std::fs::create_dir_all(logs.join("docker")).unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sightline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[logs]
poll_interval = "50ms"
read_budget = "64KiB"
max_line_size = "{MAX_LINE}"

[[logs.files]]
include = ["{cri}/*.log*"]
format = "cri"
labels = {{ job = "files-test" }}
multiline = {{ start = '^<f', flush_timeout = "300ms" }}

[[logs.files]]
include = ["{docker}/*.log*"]
format = "docker"
labels = {{ job = "files-test" }}
multiline = {{ start = '^<f', flush_timeout = "300ms" }}
"#,
            cri = logs.join("cri").display(),
            docker = logs.join("docker").display(),
        ),
    )
    .unwrap();
    let env = [("SIGHTLINE_CONFIG", config.to_str().unwrap())];
    let started = now_ns();
    let mut writers: Vec<Writer> = (0..FILES).map(|i| Writer::new(&logs, i)).collect();
    let writing = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(12);
        while Instant::now() < until {
            for w in writers.iter_mut() {
                w.write_record();
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        writers
    });
    let mut sl = common::Child::spawn_with(&data, &env);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..800)));
        sl.kill9();
        sl = common::Child::spawn_with(&data, &env);
    }
    let writers = writing.join().unwrap();
    let total: usize = writers.iter().map(|w| w.expected.len()).sum();
    assert!(total > 5000, "{total} records written");
    // Wait for the collector to catch up (multiline records flush after 300 ms).
    let base = sl.api("");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut failures = Vec::new();
    for w in &writers {
        let tag = format!("<f{:02}-", w.idx);
        let got = loop {
            let got = query(
                &base,
                &format!("{{job=\"files-test\"}} |= \"{tag}\""),
                started,
            );
            if got.len() >= w.expected.len() || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let lines: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
        let want: Vec<&str> = w.expected.iter().map(String::as_str).collect();
        if lines != want {
            let first_diff = lines
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(lines.len().min(want.len()));
            failures.push(format!(
                "file {} ({}): got {} records, want {}; first difference at {first_diff}: got {:?}, want {:?}",
                w.idx,
                if w.cri { "cri" } else { "docker" },
                lines.len(),
                want.len(),
                lines.get(first_diff).map(|l| &l[..l.len().min(120)]),
                want.get(first_diff).map(|l| &l[..l.len().min(120)]),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Labels: the file name, the static label, CRI's stream.
    let by_file: BTreeMap<String, usize> = {
        let v: Value = reqwest::blocking::get(format!(
            "{base}/loki/api/v1/label/filename/values?start={started}"
        ))
        .unwrap()
        .json()
        .unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f.as_str().unwrap().to_string(), 1))
            .collect()
    };
    assert!(
        by_file.keys().any(|f| f.ends_with("cri/app00.log.1")),
        "{by_file:?}"
    );
    assert!(by_file.len() > FILES, "{} file names", by_file.len());
    sl.kill9();
}
