//! The ingest and storage tables the overview and status pages share.

use super::*;
use crate::ui::state::counts;

/// Accepted items per second (over about the last minute) and since start, per signal.
pub(super) fn ingest_table(st: &UiState) -> Vec<(String, String)> {
    let rates = st.rates.rates();
    let c = counts(&st.metrics.ingest);
    ["Spans", "Metric points", "Log records", "Rejected items"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let r = rates.map_or("–".into(), |r| format!("{:.1}", r[i]));
            (n.to_string(), format!("{r} /s, {} since start", c[i]))
        })
        .collect()
}

/// The stores' sizes on disk and in memory.
pub(super) fn storage_table(m: &crate::ui::state::Counters) -> Vec<(String, String)> {
    let b = |v: &std::sync::atomic::AtomicU64| bytes(v.load(Relaxed) as f64);
    vec![
        (
            "Spans and logs (SQLite)".into(),
            b(&m.ingest.database_bytes),
        ),
        ("Search index (Tantivy)".into(), b(&m.ingest.index_bytes)),
        ("Metrics head (memory)".into(), b(&m.tsdb.head_bytes)),
        (
            "Metrics blocks".into(),
            format!(
                "{} in {} blocks",
                b(&m.tsdb.block_bytes),
                m.tsdb.blocks.load(Relaxed)
            ),
        ),
        ("Metrics WAL".into(), b(&m.tsdb.wal_bytes)),
        (
            "Active series".into(),
            m.tsdb.head_series.load(Relaxed).to_string(),
        ),
    ]
}
