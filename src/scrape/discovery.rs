//! Service discovery: where a job's targets come from. Each provider runs as its own task and
//! sends the full list of target groups it currently knows whenever that list changes; the pool
//! merges the lists of its providers. This is the seam for more kinds: a provider only needs to
//! implement [`Provider`] (Kubernetes, not built, would watch the API server and send the same
//! updates).
//!
//! Built: `static_configs`; `file_sd_configs` (JSON or YAML by extension, `*` in the last path
//! part, re-read when a file's size, modification time or the set of matching files changes,
//! checked every second, and in full every `refresh_interval`; a file that fails to parse keeps
//! its previous groups, as Prometheus keeps them; `__meta_filepath` on every group);
//! `http_sd_configs` (GET every `refresh_interval`, JSON only, `__meta_url` on every group; a
//! failed refresh keeps the previous groups).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::config::{FileSd, HttpSd, RawGroup, TargetGroup, group};

/// Largest discovery file or HTTP answer read.
pub const MAX_SD_BYTES: usize = 16 << 20;

/// One provider's current groups: `(provider index, groups)`.
pub type Update = (usize, Vec<TargetGroup>);

pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of target groups. `run` sends the provider's full group list on `out` (tagged with
/// `index`) each time it changes, until `token` fires.
pub trait Provider: Send {
    fn run(
        self: Box<Self>,
        index: usize,
        out: mpsc::Sender<Update>,
        token: CancellationToken,
    ) -> BoxFuture;
}

/// Fixed groups, sent once.
pub struct Static(pub Vec<TargetGroup>);

impl Provider for Static {
    fn run(
        self: Box<Self>,
        index: usize,
        out: mpsc::Sender<Update>,
        _: CancellationToken,
    ) -> BoxFuture {
        Box::pin(async move {
            let _ = out.send((index, self.0)).await;
        })
    }
}

/// Parses a discovery file's text by its extension.
pub fn parse_groups(path: &str, bytes: &[u8]) -> Result<Vec<RawGroup>, String> {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let groups: Vec<Option<RawGroup>> = match ext.as_str() {
        "json" => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        "yml" | "yaml" => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_norway::from_str::<Option<Vec<Option<RawGroup>>>>(text)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default()
            }
        }
        _ => return Err(format!("invalid file extension: \".{ext}\"")),
    };
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.ok_or_else(|| format!("nil target group item found (index {i})")))
        .collect()
}

/// A file's groups with `__meta_filepath`, checked.
pub fn read_file_groups(path: &str) -> Result<Vec<TargetGroup>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_SD_BYTES as u64 {
        return Err(format!("larger than {MAX_SD_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let raw = parse_groups(path, &bytes)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut g = group(g, format!("{path}:{i}"))?;
            g.labels.insert("__meta_filepath".into(), path.to_string());
            Ok(g)
        })
        .collect()
}

/// The files a pattern matches now (`*` only in the last part).
pub fn expand(pattern: &str) -> Vec<String> {
    match glob::glob(pattern) {
        Ok(paths) => {
            let mut v: Vec<String> = paths
                .filter_map(Result::ok)
                .map(|p: PathBuf| p.to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

pub struct File(pub FileSd);

type Stamp = Vec<(String, Option<(SystemTime, u64)>)>;

fn stamp(files: &[String]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (f.clone(), m)
        })
        .collect()
}

impl Provider for File {
    fn run(
        self: Box<Self>,
        index: usize,
        out: mpsc::Sender<Update>,
        token: CancellationToken,
    ) -> BoxFuture {
        Box::pin(async move {
            let cfg = self.0;
            let full = Duration::from_millis(cfg.refresh_interval_ms.max(1000) as u64);
            let mut last_stamp: Option<Stamp> = None;
            let mut last_full = tokio::time::Instant::now();
            let mut by_file: std::collections::BTreeMap<String, Vec<TargetGroup>> =
                Default::default();
            let mut sent: Option<Vec<TargetGroup>> = None;
            loop {
                let patterns = cfg.files.clone();
                let files: Vec<String> = patterns.iter().flat_map(|p| expand(p)).collect();
                let st = tokio::task::spawn_blocking({
                    let files = files.clone();
                    move || stamp(&files)
                })
                .await
                .unwrap_or_default();
                if last_stamp.as_ref() != Some(&st) || last_full.elapsed() >= full {
                    last_full = tokio::time::Instant::now();
                    let old = std::mem::take(&mut by_file);
                    let read = tokio::task::spawn_blocking({
                        let files = files.clone();
                        move || {
                            files
                                .into_iter()
                                .map(|f| {
                                    let r = read_file_groups(&f);
                                    (f, r)
                                })
                                .collect::<Vec<_>>()
                        }
                    })
                    .await
                    .unwrap_or_default();
                    for (f, r) in read {
                        match r {
                            Ok(g) => {
                                by_file.insert(f, g);
                            }
                            Err(e) => {
                                tracing::error!(file = %f, error = %e, "file discovery: cannot read targets; keeping the previous ones");
                                if let Some(prev) = old.get(&f) {
                                    by_file.insert(f, prev.clone());
                                }
                            }
                        }
                    }
                    let all: Vec<TargetGroup> = by_file.values().flatten().cloned().collect();
                    if sent.as_ref() != Some(&all) {
                        if out.send((index, all.clone())).await.is_err() {
                            return;
                        }
                        sent = Some(all);
                    }
                    last_stamp = Some(st);
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }
}

pub struct Http {
    pub cfg: HttpSd,
    pub client: Client,
}

/// One HTTP discovery answer, checked as Prometheus checks it.
pub fn parse_http_answer(
    url: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<TargetGroup>, String> {
    let ct = content_type.trim().to_ascii_lowercase();
    let ok = ct == "application/json"
        || ct == "application/json; charset=utf-8"
        || ct == "application/json;charset=utf-8"
        || ct == "application/json; charset=\"utf-8\""
        || ct == "application/json;charset=\"utf-8\"";
    if !ok {
        return Err(format!("unsupported content type {content_type:?}"));
    }
    let raw: Vec<Option<RawGroup>> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, g) in raw.into_iter().enumerate() {
        let g = g.ok_or("nil target group item found")?;
        let mut g = group(g, format!("{url}:{i}"))?;
        g.labels.insert("__meta_url".into(), url.to_string());
        out.push(g);
    }
    Ok(out)
}

impl Provider for Http {
    fn run(
        self: Box<Self>,
        index: usize,
        out: mpsc::Sender<Update>,
        token: CancellationToken,
    ) -> BoxFuture {
        Box::pin(async move {
            let every = Duration::from_millis(self.cfg.refresh_interval_ms.max(1000) as u64);
            let mut sent: Option<Vec<TargetGroup>> = None;
            loop {
                let got = self
                    .client
                    .get(
                        &self.cfg.url,
                        &[
                            ("Accept", "application/json".to_string()),
                            (
                                "X-Prometheus-Refresh-Interval-Seconds",
                                format!("{}", every.as_secs_f64()),
                            ),
                        ],
                        Duration::from_secs(30),
                        MAX_SD_BYTES as u64,
                    )
                    .await;
                match got.and_then(|(ct, body)| parse_http_answer(&self.cfg.url, &ct, &body)) {
                    Ok(groups) => {
                        if sent.as_ref() != Some(&groups) {
                            if out.send((index, groups.clone())).await.is_err() {
                                return;
                            }
                            sent = Some(groups);
                        }
                    }
                    Err(e) => {
                        tracing::error!(url = %self.cfg.url, error = %e, "http discovery failed; keeping the previous targets");
                    }
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_answers() {
        let g = parse_groups("a.json", br#"[{"targets":["h:1"],"labels":{"x":"y"}}]"#).unwrap();
        assert_eq!(g[0].targets.as_ref().unwrap(), &vec!["h:1".to_string()]);
        assert!(parse_groups("a.yml", b"- targets: [h:1]\n  bogus: 1\n").is_err());
        assert!(parse_groups("a.txt", b"[]").is_err());
        assert!(parse_groups("a.json", b"[null]").is_err());
        let a = parse_http_answer(
            "http://x/sd",
            "application/json",
            br#"[{"targets":["h:1"]}]"#,
        )
        .unwrap();
        assert_eq!(a[0].labels.get("__meta_url").unwrap(), "http://x/sd");
        assert!(parse_http_answer("http://x/sd", "text/plain", b"[]").is_err());
        assert!(
            parse_http_answer(
                "http://x/sd",
                "application/json",
                br#"[{"labels":{"1x":"y"}}]"#
            )
            .is_err()
        );
    }
}
