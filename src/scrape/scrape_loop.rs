//! One target's scrape loop, as Prometheus 2.42's `scrapeLoop`: fetched every interval (start
//! offset spread by a hash of the target) with Prometheus's Accept header and timeout header,
//! parsed (text 0.0.4 or OpenMetrics), each sample's labels merged with the target's
//! (`honor_labels`, or clashes renamed `exported_*`), `metric_relabel_configs` applied, the
//! limits checked (`sample_limit`, `label_limit`, name and value lengths, `body_size_limit`; a
//! scrape over a limit stores nothing and counts as failed), stamped with the scrape's start
//! time unless the exposition gives one and `honor_timestamps` holds, and appended with the
//! synthetic series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`, which carry every target
//! label. Series that disappear, every series of a failed scrape and, when the target goes
//! away, everything it wrote get staleness markers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::config::Job;
use super::exposition::{self, Format};
use super::relabel::{LabelMap, process};
use crate::base::clock::now_ms;
use crate::tsdb::labels::{valid_label_name, valid_metric_name};
use crate::tsdb::{Batch, Exemplar, Labels, Metadata, STALE_NAN_BITS, Tsdb};

/// Largest body read from a target when the job sets no `body_size_limit`.
pub const MAX_BODY_BYTES: u64 = 64 << 20;

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A target's state as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// "unknown" before the first scrape, then "up" or "down".
    pub health: &'static str,
    pub last_error: String,
    /// Milliseconds since the epoch; 0 before the first scrape.
    pub last_scrape_ms: i64,
    pub last_duration_s: f64,
}

/// What a loop needs to know about its target.
pub struct LoopTarget {
    pub job: Arc<Job>,
    /// Labels every sample carries (no `__` labels).
    pub labels: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub health: Arc<Mutex<Health>>,
    /// Set by the pool (`target_limit` exceeded): every scrape fails with it.
    pub forced_error: Arc<Mutex<Option<String>>>,
}

/// Runs until `token` fires; then, unless `shutdown` fired too (the target went away, not the
/// process) or `quiet` is set (a reload replaced the pool), marks everything it wrote stale.
pub async fn run(
    t: LoopTarget,
    client: Client,
    db: Tsdb,
    token: CancellationToken,
    shutdown: CancellationToken,
    quiet: Arc<std::sync::atomic::AtomicBool>,
) {
    let interval = t.interval;
    let ims = interval.as_millis().max(1) as i64;
    let offset_ms = (t.labels.hash64() % ims as u64) as i64;
    let first = (offset_ms - now_ms().rem_euclid(ims)).rem_euclid(ims);
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(first as u64),
        interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut state = ScrapeState::default();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let start = now_ms();
        let began = Instant::now();
        let forced = t.forced_error.lock().map(|g| g.clone()).unwrap_or(None);
        let result = match forced {
            Some(e) => Err(e),
            None => {
                let limit = if t.job.body_size_limit > 0 {
                    t.job.body_size_limit
                } else {
                    MAX_BODY_BYTES
                };
                let headers = [
                    ("Accept", ACCEPT.to_string()),
                    (
                        "X-Prometheus-Scrape-Timeout-Seconds",
                        format!("{}", t.timeout.as_secs_f64()),
                    ),
                ];
                tokio::select! {
                    _ = token.cancelled() => break,
                    r = client.get(&t.url, &headers, t.timeout, limit) => r,
                }
            }
        };
        let took = began.elapsed();
        let (batch, err) = build_batch(&t, &mut state, start, took, result);
        if let Ok(mut h) = t.health.lock() {
            h.health = if err.is_none() { "up" } else { "down" };
            h.last_error = err.unwrap_or_default();
            h.last_scrape_ms = start;
            h.last_duration_s = took.as_secs_f64();
        }
        if let Err(e) = db.append(batch).await {
            tracing::warn!(url = %t.url, error = %e, "scraped samples not stored");
        }
    }
    if shutdown.is_cancelled()
        || quiet.load(std::sync::atomic::Ordering::Relaxed)
        || state.scrapes == 0
    {
        return;
    }
    let now = now_ms();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut batch = Batch::default();
    for l in state.last.drain() {
        batch.push(l, now, stale);
    }
    for name in REPORT_SERIES {
        batch.push(report_labels(&t.labels, name), now, stale);
    }
    if let Err(e) = db.append(batch).await {
        tracing::warn!(url = %t.url, error = %e, "staleness markers for a removed target not stored");
    }
}

const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// What a target's last scrape stored, for staleness, and the label cache.
#[derive(Default)]
pub struct ScrapeState {
    last: HashSet<Labels>,
    /// Exposed labels -> final labels (`None`: dropped by metric relabeling), for the series
    /// of the last scrape.
    cache: HashMap<Vec<(String, String)>, Option<Labels>>,
    scrapes: u64,
}

fn report_labels(target: &Labels, name: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = target
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    pairs.push(("__name__".into(), name.into()));
    Labels::from_pairs(pairs)
}

/// Prometheus's `mutateSampleLabels`: the target's labels over the exposed ones (or under
/// them with `honor_labels`), clashes kept as `exported_<name>`, then metric relabeling.
pub fn mutate_sample_labels(
    exposed: &[(String, String)],
    target: &Labels,
    honor: bool,
    rules: &[super::relabel::Rule],
) -> Option<LabelMap> {
    let mut lset = LabelMap::new();
    for (k, v) in exposed {
        if v.is_empty() {
            lset.remove(k);
        } else {
            lset.insert(k.clone(), v.clone());
        }
    }
    let mut lb = lset.clone();
    if honor {
        for l in target.iter() {
            if !lset.contains_key(&l.name) {
                lb.insert(l.name.clone(), l.value.clone());
            }
        }
    } else {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for l in target.iter() {
            if let Some(v) = lset.get(&l.name) {
                conflicts.push((l.name.clone(), v.clone()));
            }
            lb.insert(l.name.clone(), l.value.clone());
        }
        if !conflicts.is_empty() {
            conflicts.sort_by_key(|(n, _)| n.len());
            for i in 0..conflicts.len() {
                let mut name = conflicts[i].0.clone();
                loop {
                    name = format!("exported_{name}");
                    if !lset.contains_key(&name)
                        && target.get(&name).is_none()
                        && !conflicts[..i].iter().any(|(n, _)| *n == name)
                    {
                        break;
                    }
                }
                conflicts[i].0 = name;
            }
            for (n, v) in conflicts {
                lb.insert(n, v);
            }
        }
    }
    if rules.is_empty() {
        return Some(lb);
    }
    process(lb, rules).filter(|l| !l.is_empty())
}

fn check_labels(l: &Labels, job: &Job) -> Result<(), String> {
    let Some(name) = l.metric_name() else {
        return Err("__name__ label is missing".into());
    };
    let valid = valid_metric_name(name) && l.iter().all(|x| valid_label_name(&x.name));
    if !valid {
        return Err(format!("invalid metric name or label names: {l}"));
    }
    let met: String = name.chars().take(50).collect();
    if job.label_limit > 0 && l.len() as u64 > job.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {met}, number of labels: {}, limit: {})",
            l.len(),
            job.label_limit
        ));
    }
    for x in l.iter() {
        if job.label_name_length_limit > 0 && x.name.len() as u64 > job.label_name_length_limit {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {met}, label name: {:.50}, length: {}, limit: {})",
                x.name,
                x.name.len(),
                job.label_name_length_limit
            ));
        }
        if job.label_value_length_limit > 0 && x.value.len() as u64 > job.label_value_length_limit {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {met}, label name: {:.50}, value: {:.50?}, length: {}, limit: {})",
                x.name,
                x.value,
                x.value.len(),
                job.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// Turns one scrape's outcome into a batch (samples, staleness markers for series that went
/// away, the synthetic series) and the scrape's error, if it failed.
pub fn build_batch(
    t: &LoopTarget,
    state: &mut ScrapeState,
    start: i64,
    took: Duration,
    result: Result<(String, Vec<u8>), String>,
) -> (Batch, Option<String>) {
    state.scrapes += 1;
    let job = &t.job;
    let mut batch = Batch::default();
    let mut current: HashSet<Labels> = HashSet::new();
    let mut cache = HashMap::with_capacity(state.cache.len());
    let mut total = 0usize;
    let mut added = 0usize;
    let parsed = result.and_then(|(ct, body)| {
        let text = String::from_utf8(body).map_err(|_| "body is not valid UTF-8".to_string())?;
        exposition::parse(&text, Format::from_content_type(&ct)).map_err(|e| e.to_string())
    });
    let outcome: Result<(), String> = parsed.and_then(|p| {
        for (name, m) in &p.meta {
            batch.metadata.push((
                name.clone(),
                Metadata {
                    kind: m.kind.clone(),
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                },
            ));
        }
        for s in p.samples {
            total += 1;
            let lset = match state.cache.remove(&s.labels) {
                Some(l) => l,
                None => {
                    let l = mutate_sample_labels(
                        &s.labels,
                        &t.labels,
                        job.honor_labels,
                        &job.metric_relabel,
                    )
                    .map(Labels::from_pairs);
                    if let Some(l) = &l {
                        check_labels(l, job)?;
                    }
                    l
                }
            };
            cache.insert(s.labels, lset.clone());
            let Some(lset) = lset else { continue };
            added += 1;
            let ts = if job.honor_timestamps {
                s.timestamp
            } else {
                None
            };
            let i = batch.series_index(lset.clone());
            batch.samples.push((i, ts.unwrap_or(start), s.value));
            if let Some(e) = s
                .exemplar
                .as_ref()
                .and_then(|e| exemplar(e, ts.unwrap_or(start)))
            {
                batch.exemplars.push((i, e));
            }
            if ts.is_none() {
                current.insert(lset);
            }
        }
        if job.sample_limit > 0 && added as u64 > job.sample_limit {
            return Err("sample limit exceeded".into());
        }
        Ok(())
    });
    state.cache = cache;
    let err = outcome.err();
    if err.is_some() {
        // Nothing of a failed scrape is stored; everything it had is stale.
        batch = Batch::default();
        current.clear();
    }
    let added_series = current.difference(&state.last).count();
    let stale = f64::from_bits(STALE_NAN_BITS);
    for gone in state.last.difference(&current) {
        batch.push(gone.clone(), start, stale);
    }
    state.last = current;
    let up = if err.is_none() { 1.0 } else { 0.0 };
    for (name, v) in [
        ("up", up),
        ("scrape_duration_seconds", took.as_secs_f64()),
        ("scrape_samples_scraped", total as f64),
        ("scrape_samples_post_metric_relabeling", added as f64),
        ("scrape_series_added", added_series as f64),
    ] {
        batch.push(report_labels(&t.labels, name), start, v);
    }
    (batch, err)
}

fn exemplar(e: &exposition::ExemplarText, t: i64) -> Option<Exemplar> {
    let get = |k: &str| {
        e.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let trace = hex::decode(get("trace_id")?).ok()?;
    let span = get("span_id")
        .and_then(|s| hex::decode(s).ok())
        .unwrap_or_else(|| vec![0; 8]);
    Some(Exemplar {
        trace_id: trace.try_into().ok()?,
        span_id: span.try_into().ok()?,
        value: e.value,
        t: e.timestamp.unwrap_or(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::parse;

    fn target(yaml: &str) -> LoopTarget {
        let c = parse(yaml, std::path::Path::new("/")).unwrap();
        LoopTarget {
            job: Arc::new(c.jobs[0].clone()),
            labels: Labels::from_pairs([("job", "node"), ("instance", "h:9100"), ("zone", "a")]),
            url: String::new(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            health: Default::default(),
            forced_error: Default::default(),
        }
    }

    fn body(s: &str) -> Result<(String, Vec<u8>), String> {
        Ok(("text/plain".into(), s.as_bytes().to_vec()))
    }

    fn names(b: &Batch) -> Vec<String> {
        b.series.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn labels_staleness_and_synthetic_series() {
        let t = target("scrape_configs: [{job_name: node}]");
        let mut st = ScrapeState::default();
        let (b, err) = build_batch(
            &t,
            &mut st,
            1000,
            Duration::from_millis(5),
            body("a 1\nb{job=\"x\",exported_job=\"y\"} 2\n"),
        );
        assert!(err.is_none());
        let n = names(&b);
        assert!(
            n.contains(&"a{instance=\"h:9100\", job=\"node\", zone=\"a\"}".to_string()),
            "{n:?}"
        );
        // Prometheus: the clash becomes exported_exported_job because exported_job is taken.
        assert!(n.contains(&"b{exported_exported_job=\"x\", exported_job=\"y\", instance=\"h:9100\", job=\"node\", zone=\"a\"}".to_string()), "{n:?}");
        assert!(
            n.contains(&"up{instance=\"h:9100\", job=\"node\", zone=\"a\"}".to_string()),
            "{n:?}"
        );
        // `a` goes away: a staleness marker.
        let (b, _) = build_batch(
            &t,
            &mut st,
            16000,
            Duration::ZERO,
            body("b{job=\"x\",exported_job=\"y\"} 3\n"),
        );
        let a = b
            .series
            .iter()
            .position(|l| l.metric_name() == Some("a"))
            .unwrap();
        assert!(
            b.samples
                .iter()
                .any(|s| s.0 == a as u32 && crate::tsdb::is_stale(s.2))
        );
        // Down: up 0, the rest stale.
        let (b, err) = build_batch(&t, &mut st, 31000, Duration::ZERO, Err("refused".into()));
        assert_eq!(err.as_deref(), Some("refused"));
        assert_eq!(
            b.samples
                .iter()
                .filter(|s| crate::tsdb::is_stale(s.2))
                .count(),
            1
        );
    }

    #[test]
    fn honor_labels_metric_relabeling_and_limits() {
        let t = target(
            "scrape_configs: [{job_name: node, honor_labels: true, metric_relabel_configs: [{source_labels: [__name__], regex: 'drop_.*', action: drop}]}]",
        );
        let (b, _) = build_batch(
            &t,
            &mut ScrapeState::default(),
            1,
            Duration::ZERO,
            body("b{job=\"x\"} 2\ndrop_me 1\n"),
        );
        assert_eq!(b.series[0].get("job"), Some("x"));
        assert!(b.series.iter().all(|l| l.metric_name() != Some("drop_me")));
        let scraped = b
            .series
            .iter()
            .position(|l| l.metric_name() == Some("scrape_samples_post_metric_relabeling"))
            .unwrap();
        assert!(
            b.samples
                .iter()
                .any(|s| s.0 == scraped as u32 && s.2 == 1.0)
        );
        let t = target("scrape_configs: [{job_name: node, sample_limit: 1}]");
        let (b, err) = build_batch(
            &t,
            &mut ScrapeState::default(),
            1,
            Duration::ZERO,
            body("a 1\nb 2\n"),
        );
        assert_eq!(err.as_deref(), Some("sample limit exceeded"));
        assert!(b.series.iter().all(|l| l.metric_name() != Some("a")));
        let t = target("scrape_configs: [{job_name: node, label_limit: 3}]");
        let (_, err) = build_batch(
            &t,
            &mut ScrapeState::default(),
            1,
            Duration::ZERO,
            body("a{x=\"1\"} 1\n"),
        );
        assert!(err.unwrap().starts_with("label_limit exceeded"));
        let t = target("scrape_configs: [{job_name: node, honor_timestamps: false}]");
        let (b, _) = build_batch(
            &t,
            &mut ScrapeState::default(),
            5,
            Duration::ZERO,
            body("a 1 123\n"),
        );
        assert_eq!(b.samples[0].1, 5);
    }
}
