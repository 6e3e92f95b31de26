//! Differential test against a real Prometheus 2.42 (issue 4): the same generated samples are
//! backfilled into Prometheus with `promtool tsdb create-blocks-from openmetrics` and appended
//! to Sightline's store; a corpus of instant and range queries runs on both over HTTP, and
//! the answers must agree series by series and point by point (relative tolerance 1e-9).
//! `promtool query instant|range` must print the same against both. Needs Debian's
//! `prometheus` package (`scripts/test` installs it); a missing binary fails the test.

mod common;

use std::process::Command;

use common::promdiff::{Dataset, Prometheus, compare, generate_mixed, load_sightline, post};

/// Instant and range queries, written the way dashboards and people write them.
const QUERIES: &[&str] = &[
    // Selectors, matchers, modifiers.
    "demo_requests_total",
    "demo_temperature_celsius{job=\"api\"}",
    "demo_requests_total{code!=\"200\", instance=~\"i[01]\"}",
    "{__name__=~\"demo_t.*\"}",
    "demo_flaky_total",
    "demo_requests_total offset 10m",
    "demo_temperature_celsius offset -5m",
    "demo_requests_total @ 1700003600",
    "demo_temperature_celsius @ 1700003600.5 offset 1m",
    "demo_sometimes_nan",
    "demo_tiny",
    "demo_huge",
    "demo_latency_seconds_bucket{le=\"+Inf\"}",
    // Counter functions.
    "rate(demo_requests_total[5m])",
    "rate(demo_requests_total[1m])",
    "irate(demo_requests_total[5m])",
    "increase(demo_requests_total[30m])",
    "increase(demo_flaky_total[2m])",
    "rate(demo_flaky_total[10m])",
    "delta(demo_temperature_celsius[10m])",
    "idelta(demo_temperature_celsius[5m])",
    "deriv(demo_temperature_celsius[15m])",
    "predict_linear(demo_temperature_celsius[30m], 3600)",
    "resets(demo_requests_total[1h])",
    "changes(demo_temperature_celsius[10m])",
    "holt_winters(demo_temperature_celsius[10m], 0.3, 0.6)",
    "rate(demo_requests_total[5m] offset 30m)",
    "rate(demo_requests_total[5m] @ 1700005000)",
    // Over time.
    "avg_over_time(demo_temperature_celsius[10m])",
    "sum_over_time(demo_temperature_celsius[5m])",
    "min_over_time(demo_temperature_celsius[30m])",
    "max_over_time(demo_sometimes_nan[5m])",
    "count_over_time(demo_flaky_total[10m])",
    "last_over_time(demo_flaky_total[10m])",
    "quantile_over_time(0.9, demo_temperature_celsius[20m])",
    "stddev_over_time(demo_temperature_celsius[10m])",
    "stdvar_over_time(demo_tiny[10m])",
    "present_over_time(demo_flaky_total[1m])",
    "absent_over_time(demo_flaky_total{instance=\"i0\"}[3m])",
    // Aggregations.
    "sum(rate(demo_requests_total[5m]))",
    "sum by (job) (rate(demo_requests_total[5m]))",
    "sum without (instance) (rate(demo_requests_total[5m]))",
    "avg by (job) (demo_temperature_celsius)",
    "min(demo_temperature_celsius) by (instance)",
    "max by (job, code) (demo_requests_total)",
    "count by (__name__) ({__name__=~\"demo_.*\"})",
    "group by (job) (demo_requests_total)",
    "stddev by (job) (demo_temperature_celsius)",
    "stdvar(demo_temperature_celsius)",
    "topk(3, rate(demo_requests_total[5m]))",
    "bottomk by (job) (2, demo_temperature_celsius)",
    "quantile by (job) (0.75, demo_temperature_celsius)",
    "count_values(\"value\", round(demo_temperature_celsius))",
    "sum(demo_sometimes_nan)",
    "avg(demo_huge)",
    // Histograms.
    "histogram_quantile(0.5, sum by (le) (rate(demo_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.9, sum by (job, le) (rate(demo_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.99, rate(demo_latency_seconds_bucket[10m]))",
    "histogram_quantile(0.5, demo_latency_seconds_bucket)",
    "sum(rate(demo_latency_seconds_sum[5m])) / sum(rate(demo_latency_seconds_count[5m]))",
    // Binary operators and matching.
    "sum by (job) (rate(demo_requests_total{code=\"500\"}[5m])) / sum by (job) (rate(demo_requests_total[5m]))",
    "demo_temperature_celsius > 25",
    "demo_temperature_celsius > bool 25",
    "30 < demo_temperature_celsius",
    "demo_temperature_celsius - 20 * 2 ^ 2 % 7",
    "demo_requests_total and on (instance) demo_temperature_celsius > 24",
    "demo_requests_total unless on (job, instance) demo_temperature_celsius > 26",
    "demo_flaky_total or on (instance) demo_temperature_celsius{job=\"db\"}",
    "demo_requests_total * on (job, instance) group_left demo_temperature_celsius",
    "demo_temperature_celsius / on (job, instance) group_right demo_requests_total",
    "rate(demo_requests_total[5m]) / ignoring (code) group_left sum without (code) (rate(demo_requests_total[5m]))",
    "demo_latency_seconds_sum / demo_latency_seconds_count",
    "demo_requests_total == bool on (job, instance, code) demo_requests_total",
    "-demo_temperature_celsius",
    "1 + 2 * 3 - 4 / 5",
    "2 ^ 3 ^ 2",
    "demo_temperature_celsius atan2 10",
    // Functions.
    "abs(demo_temperature_celsius - 25)",
    "ceil(demo_temperature_celsius)",
    "floor(demo_temperature_celsius)",
    "round(demo_temperature_celsius, 0.5)",
    "clamp(demo_temperature_celsius, 22, 28)",
    "clamp_min(demo_temperature_celsius, 25)",
    "clamp_max(demo_temperature_celsius, 25)",
    "exp(demo_temperature_celsius / 10)",
    "ln(demo_temperature_celsius)",
    "log2(demo_requests_total)",
    "log10(demo_huge)",
    "sqrt(abs(demo_temperature_celsius))",
    "sgn(demo_temperature_celsius - 25)",
    "time()",
    "timestamp(demo_flaky_total)",
    "vector(1)",
    "scalar(sum(demo_temperature_celsius))",
    "scalar(demo_temperature_celsius)",
    "absent(nosuch{job=\"x\"})",
    "absent(demo_flaky_total{instance=\"i1\"})",
    "label_replace(demo_temperature_celsius, \"host\", \"$1-x\", \"instance\", \"i(.*)\")",
    "label_join(demo_temperature_celsius, \"key\", \"/\", \"job\", \"instance\")",
    "sort(demo_temperature_celsius)",
    "sort_desc(rate(demo_requests_total[5m]))",
    "hour()",
    "minute(timestamp(demo_flaky_total))",
    "day_of_week()",
    "day_of_month(vector(1700003600))",
    "days_in_month()",
    "month()",
    "year(timestamp(demo_tiny))",
    // Subqueries.
    "max_over_time(rate(demo_requests_total[5m])[30m:1m])",
    "avg_over_time(demo_temperature_celsius[10m:])",
    "min_over_time(sum(demo_temperature_celsius)[20m:2m] offset 5m)",
    "rate(demo_requests_total[10m:30s])",
    "max_over_time(demo_temperature_celsius[5m:1m] @ 1700005000)",
    "sum_over_time(deriv(demo_temperature_celsius[5m])[15m:45s])",
    // Errors both must raise.
    "label_replace(demo_temperature_celsius, \"job\", \"x\", \"job\", \".*\")",
    "demo_requests_total + on (job) demo_temperature_celsius",
    "demo_temperature_celsius * on (job) group_left demo_requests_total",
];

const T0: i64 = 1_700_000_000;

fn instant_times() -> Vec<String> {
    [
        "1699999940",
        "1700000030",
        "1700001800.5",
        "1700005400",
        "1700007200",
        "1700010795",
        "1700010920",
        "1700011400",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ranges() -> Vec<(i64, i64, &'static str)> {
    vec![
        (T0 + 600, T0 + 10_200, "60"),
        (T0 + 3600, T0 + 5400, "15s"),
        (T0, T0 + 10_800, "7m"),
        (T0 + 5000, T0 + 6000, "37"),
    ]
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    format!("exit {:?}\n{}", out.status.code(), lines.join("\n"))
}

#[test]
fn answers_match_prometheus_2_42() {
    let data: Dataset = generate_mixed(42);
    let prom = Prometheus::start(&data);
    let dir = tempfile::tempdir().unwrap();
    load_sightline(&data, dir.path());
    let sl = common::Child::spawn(dir.path());
    let (pu, su) = (prom.url(), format!("http://127.0.0.1:{}", sl.http));

    let mut failures = Vec::new();
    let mut compared = 0;
    for q in QUERIES {
        for t in instant_times() {
            let form = [("query", q.to_string()), ("time", t.clone())];
            let p = post(&format!("{pu}/api/v1/query"), &form);
            let s = post(&format!("{su}/api/v1/query"), &form);
            compared += 1;
            if let Err(e) = compare(&p, &s) {
                failures.push(format!("instant {q} @ {t}: {e}"));
            }
        }
        for (start, end, step) in ranges() {
            let form = [
                ("query", q.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
            ];
            let p = post(&format!("{pu}/api/v1/query_range"), &form);
            let s = post(&format!("{su}/api/v1/query_range"), &form);
            compared += 1;
            if let Err(e) = compare(&p, &s) {
                failures.push(format!("range {q} [{start}..{end} step {step}]: {e}"));
            }
        }
    }
    // The answers must not all be empty or errors: the corpus has to exercise the data.
    let nonempty = QUERIES
        .iter()
        .filter(|q| {
            let v = post(
                &format!("{su}/api/v1/query"),
                &[("query", q.to_string()), ("time", "1700007200".into())],
            );
            v["status"] == "success" && v["data"]["result"].as_array().is_none_or(|a| !a.is_empty())
        })
        .count();
    assert!(
        nonempty >= QUERIES.len() - 8,
        "only {nonempty} of {} queries had data",
        QUERIES.len()
    );

    // Byte for byte, where the order of series is defined (selectors, matrices, scalars).
    for (path, form) in [
        (
            "query",
            vec![("query", "demo_sometimes_nan"), ("time", "1700007200")],
        ),
        (
            "query",
            vec![
                ("query", "demo_temperature_celsius"),
                ("time", "1700007200.123"),
            ],
        ),
        (
            "query",
            vec![("query", "demo_huge"), ("time", "1700007200")],
        ),
        (
            "query",
            vec![("query", "scalar(demo_tiny)"), ("time", "1700007200")],
        ),
        (
            "query",
            vec![("query", "demo_flaky_total[2m]"), ("time", "1700007200")],
        ),
        ("query", vec![("query", "1 +"), ("time", "1700007200")]),
        (
            "query_range",
            vec![
                ("query", "rate(demo_requests_total[5m])"),
                ("start", "1700003600"),
                ("end", "1700007200"),
                ("step", "10m"),
            ],
        ),
    ] {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let get = |base: &str| {
            reqwest::blocking::get(format!("{base}/api/v1/{path}?{body}"))
                .unwrap()
                .text()
                .unwrap()
        };
        let (p, s) = (get(&pu), get(&su));
        if p != s {
            failures.push(format!("bytes differ for {path} {form:?}:\n{p}\n---\n{s}"));
        }
    }

    // promtool prints the same against both servers.
    for (q, args) in [
        (
            "sum by (job) (rate(demo_requests_total[5m]))",
            vec!["--time=1700007200"],
        ),
        ("demo_temperature_celsius", vec!["--time=1700005000"]),
        (
            "scalar(sum(demo_temperature_celsius))",
            vec!["--time=1700005000"],
        ),
    ] {
        let mut a = vec!["query", "instant"];
        a.extend(args.iter().copied());
        let mut pa = a.clone();
        pa.extend([pu.as_str(), q]);
        let mut sa = a;
        sa.extend([su.as_str(), q]);
        let (po, so) = (promtool(&pa), promtool(&sa));
        assert!(
            po.starts_with("exit Some(0)") && po.lines().count() > 1,
            "{po}"
        );
        if po != so {
            failures.push(format!("promtool query instant {q}:\n{po}\n---\n{so}"));
        }
    }
    for q in [
        "sum by (job) (rate(demo_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5m])))",
    ] {
        let args = [
            "query",
            "range",
            "--start=1700003600",
            "--end=1700007200",
            "--step=5m",
        ];
        let mut pa = args.to_vec();
        pa.extend([pu.as_str(), q]);
        let mut sa = args.to_vec();
        sa.extend([su.as_str(), q]);
        let (po, so) = (promtool(&pa), promtool(&sa));
        assert!(
            po.starts_with("exit Some(0)") && po.lines().count() > 1,
            "{po}"
        );
        if po != so {
            failures.push(format!("promtool query range {q}:\n{po}\n---\n{so}"));
        }
    }

    println!("{compared} answers compared, {} differ", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
