//! Scraping Prometheus exposition endpoints, as Prometheus does: each `[[scrape]]` target is
//! fetched every `interval` (start offset spread by a hash of the target) with Prometheus's
//! Accept header, parsed (text 0.0.4 or OpenMetrics), labelled with `job` and `instance`
//! (clashing target labels become `exported_job` / `exported_instance` unless `honor_labels`),
//! stamped with the scrape's start time unless the exposition gives one, and appended with the
//! synthetic series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`. A series that disappears
//! from one scrape to the next, or every series of a target that goes down, gets a staleness
//! marker. This module does not know how samples are stored beyond [`Tsdb::append`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::exposition::{self, Format};
use crate::base::clock::now_ms;
use crate::config::ScrapeConfig;
use crate::tsdb::{Batch, Exemplar, Labels, Metadata, STALE_NAN_BITS, Tsdb};

/// Largest body accepted from a target.
pub const MAX_BODY_BYTES: usize = 64 << 20;

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Starts one task per target; they stop when `token` fires.
pub fn start(
    jobs: &[ScrapeConfig],
    db: Tsdb,
    token: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = match reqwest::Client::builder()
        .user_agent(concat!("Sightline/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the scrape HTTP client; scraping is off");
            return Vec::new();
        }
    };
    let mut tasks = Vec::new();
    for job in jobs {
        for target in &job.targets {
            let t = Target {
                job: job.clone(),
                instance: target.clone(),
                url: format!("{}://{}{}", job.scheme, target, job.path),
            };
            tasks.push(tokio::spawn(run_target(
                t,
                client.clone(),
                db.clone(),
                token.clone(),
            )));
        }
    }
    tasks
}

struct Target {
    job: ScrapeConfig,
    instance: String,
    url: String,
}

async fn run_target(t: Target, client: reqwest::Client, db: Tsdb, token: CancellationToken) {
    let interval = t.job.interval;
    // Spread targets over the interval, deterministically.
    let h = Labels::from_pairs([
        ("job", t.job.job.as_str()),
        ("instance", t.instance.as_str()),
    ])
    .hash64();
    let offset_ms = h % interval.as_millis().max(1) as u64;
    let first = interval.as_millis() as i64 - now_ms().rem_euclid(interval.as_millis() as i64)
        + offset_ms as i64;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now()
            + Duration::from_millis(first.rem_euclid(interval.as_millis() as i64) as u64),
        interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut state = ScrapeState::default();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let start = now_ms();
        let began = Instant::now();
        let result = fetch(&client, &t).await;
        let batch = build_batch(&t, &mut state, start, began.elapsed(), result);
        if let Err(e) = db.append(batch).await {
            tracing::warn!(job = %t.job.job, instance = %t.instance, error = %e, "scraped samples not stored");
        }
    }
}

async fn fetch(client: &reqwest::Client, t: &Target) -> Result<(String, Format), String> {
    let resp = client
        .get(&t.url)
        .header("Accept", ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", t.job.timeout.as_secs_f64()),
        )
        .timeout(t.job.timeout)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let format = Format::from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "body is not valid UTF-8".to_string())?;
    Ok((text, format))
}

/// What a target's last scrape stored, for staleness.
#[derive(Default)]
pub struct ScrapeState {
    last: HashSet<Labels>,
}

/// Turns one scrape's outcome into a batch: the samples, staleness markers for series that went
/// away, and the synthetic series.
fn build_batch(
    t: &Target,
    state: &mut ScrapeState,
    start: i64,
    took: Duration,
    result: Result<(String, Format), String>,
) -> Batch {
    let mut batch = Batch::default();
    let parsed = result.and_then(|(text, format)| {
        exposition::parse(&text, format).map_err(|e| format!("parse error: {e}"))
    });
    let mut current: HashSet<Labels> = HashSet::new();
    let (up, scraped) = match parsed {
        Ok(p) => {
            let n = p.samples.len();
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
                let l = target_labels(t, s.labels);
                let explicit = s.timestamp.is_some();
                let i = batch.series_index(l.clone());
                batch
                    .samples
                    .push((i, s.timestamp.unwrap_or(start), s.value));
                if let Some(e) = s.exemplar.as_ref().and_then(|e| exemplar(e, start)) {
                    batch.exemplars.push((i, e));
                }
                if !explicit {
                    current.insert(l);
                }
            }
            (1.0, n)
        }
        Err(e) => {
            tracing::debug!(job = %t.job.job, instance = %t.instance, error = %e, "scrape failed");
            (0.0, 0)
        }
    };
    let added = current.difference(&state.last).count();
    let stale = f64::from_bits(STALE_NAN_BITS);
    for gone in state.last.difference(&current) {
        batch.push(gone.clone(), start, stale);
    }
    state.last = current;
    let synth = |name: &str| {
        Labels::from_pairs([
            ("__name__", name),
            ("job", t.job.job.as_str()),
            ("instance", t.instance.as_str()),
        ])
    };
    batch.push(synth("up"), start, up);
    batch.push(synth("scrape_duration_seconds"), start, took.as_secs_f64());
    batch.push(synth("scrape_samples_scraped"), start, scraped as f64);
    batch.push(
        synth("scrape_samples_post_metric_relabeling"),
        start,
        scraped as f64,
    );
    batch.push(synth("scrape_series_added"), start, added as f64);
    batch
}

fn target_labels(t: &Target, mut labels: Vec<(String, String)>) -> Labels {
    for (key, value) in [("job", &t.job.job), ("instance", &t.instance)] {
        match labels.iter().position(|(n, _)| n == key) {
            Some(_) if t.job.honor_labels => {}
            Some(pos) => {
                let (_, v) = labels.remove(pos);
                labels.push((format!("exported_{key}"), v));
                labels.push((key.to_string(), value.clone()));
            }
            None => labels.push((key.to_string(), value.clone())),
        }
    }
    Labels::from_pairs(labels)
}

fn exemplar(e: &exposition::ExemplarText, start: i64) -> Option<Exemplar> {
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
        t: e.timestamp.unwrap_or(start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(honor: bool) -> Target {
        Target {
            job: ScrapeConfig {
                job: "node".into(),
                targets: vec!["h:9100".into()],
                interval: Duration::from_secs(15),
                timeout: Duration::from_secs(10),
                path: "/metrics".into(),
                scheme: "http".into(),
                honor_labels: honor,
            },
            instance: "h:9100".into(),
            url: String::new(),
        }
    }

    #[test]
    fn labels_staleness_and_synthetic_series() {
        let t = target(false);
        let mut st = ScrapeState::default();
        let body = "a 1\nb{job=\"x\"} 2\n".to_string();
        let b = build_batch(
            &t,
            &mut st,
            1000,
            Duration::from_millis(5),
            Ok((body, Format::Text)),
        );
        let names: Vec<String> = b.series.iter().map(|l| l.to_string()).collect();
        assert!(
            names.contains(&"a{instance=\"h:9100\", job=\"node\"}".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"b{exported_job=\"x\", instance=\"h:9100\", job=\"node\"}".to_string())
        );
        let up = b
            .series
            .iter()
            .position(|l| l.metric_name() == Some("up"))
            .unwrap();
        assert!(b.samples.iter().any(|s| s.0 == up as u32 && s.2 == 1.0));
        // Next scrape: `a` is gone -> a staleness marker for it at the scrape time.
        let b = build_batch(
            &t,
            &mut st,
            16000,
            Duration::from_millis(5),
            Ok(("b{job=\"x\"} 3\n".into(), Format::Text)),
        );
        let a = b
            .series
            .iter()
            .position(|l| l.metric_name() == Some("a"))
            .unwrap();
        assert!(
            b.samples
                .iter()
                .any(|s| s.0 == a as u32 && s.1 == 16000 && crate::tsdb::is_stale(s.2))
        );
        // Down: up=0 and everything stale.
        let b = build_batch(
            &t,
            &mut st,
            31000,
            Duration::from_millis(5),
            Err("refused".into()),
        );
        let up = b
            .series
            .iter()
            .position(|l| l.metric_name() == Some("up"))
            .unwrap();
        assert!(b.samples.iter().any(|s| s.0 == up as u32 && s.2 == 0.0));
        assert_eq!(
            b.samples
                .iter()
                .filter(|s| crate::tsdb::is_stale(s.2))
                .count(),
            1
        );
        // honor_labels keeps the target's job.
        let t = target(true);
        let b = build_batch(
            &t,
            &mut ScrapeState::default(),
            1,
            Duration::ZERO,
            Ok(("b{job=\"x\"} 2\n".into(), Format::Text)),
        );
        assert_eq!(b.series[0].get("job"), Some("x"));
    }
}
