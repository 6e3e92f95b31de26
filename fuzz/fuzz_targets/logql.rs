//! LogQL (`/loki/api/v1/query_range` text is untrusted) and the log pipeline over untrusted
//! lines: the input's first line is the query, the rest are log lines of one stream. Parsing
//! must not panic or overflow the stack; a query that parses runs over those lines (parsers,
//! filters, templates, metric evaluation) within small limits without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::logql::eval::{Query, VecSource, run};
use sightline::logql::{Expr, Limits, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (q, rest) = s.split_once('\n').unwrap_or((s, ""));
    let Ok(expr) = parse(q) else { return };
    let entries = rest
        .lines()
        .take(64)
        .enumerate()
        .map(|(i, l)| {
            (
                1_000_000_000 * i as i64,
                l.to_string(),
                vec![("trace_id".to_string(), format!("{i:032x}"))],
            )
        })
        .collect();
    // A stream every selector that needs a label can find.
    let labels: Vec<(String, String)> = ["app", "env", "job", "level", "service_name"]
        .iter()
        .map(|k| (k.to_string(), "x".to_string()))
        .collect();
    let src = VecSource {
        streams: vec![(labels, entries)],
    };
    let is_log = matches!(expr, Expr::Log(_));
    let q = Query {
        expr,
        start: 0,
        end: 64_000_000_000,
        step: 8_000_000_000,
        instant: false,
        limit: 100,
        forward: !is_log,
    };
    let limits = Limits {
        max_series: 50,
        max_lines_scanned: 10_000,
        timeout: std::time::Duration::from_secs(2),
        max_points: 100,
        ..Limits::default()
    };
    let _ = run(&q, &src, &limits);
});
