//! Prometheus native histograms as remote write carries them (`prometheus.Histogram` in 1.0,
//! `io.prometheus.write.v2.Histogram` in 2.0, the same fields), turned into classic histograms at
//! their own bucket boundaries, as OTLP exponential histograms are (`ingest::histogram`):
//! `<name>_bucket{le}` cumulative over the negative buckets (upper bound `-base^(i-1)`), the zero
//! bucket (upper bound `zero_threshold`) and the positive buckets (upper bound `base^i`, with
//! `base = 2^(2^-schema)`), then `+Inf`, `<name>_count` and `<name>_sum`. Custom-bucket
//! histograms (schema -53) use their `custom_values` as upper bounds. No count is lost; the
//! resolution is the histogram's own. A histogram whose `sum` is a staleness marker marks every
//! series stale. Also remote write exemplars, kept when they carry a trace id.

use crate::base::gofmt::{FloatStyle, float};
use crate::tsdb::{Exemplar, Labels, STALE_NAN_BITS};

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Count {
    #[prost(uint64, tag = "1")]
    Int(u64),
    #[prost(double, tag = "2")]
    Float(f64),
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ZeroCount {
    #[prost(uint64, tag = "6")]
    Int(u64),
    #[prost(double, tag = "7")]
    Float(f64),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(oneof = "Count", tags = "1, 2")]
    pub count: Option<Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "ZeroCount", tags = "6, 7")]
    pub zero_count: Option<ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// Most buckets one histogram may expand to (a native histogram has at most a few hundred).
const MAX_BUCKETS: usize = 4096;
const CUSTOM_SCHEMA: i32 = -53;

/// (bucket index, count) per populated bucket of one side.
fn side(spans: &[BucketSpan], deltas: &[i64], counts: &[f64]) -> Result<Vec<(i64, f64)>, String> {
    let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if total as usize > MAX_BUCKETS {
        return Err(format!("more than {MAX_BUCKETS} buckets"));
    }
    let float = !counts.is_empty();
    let n = if float { counts.len() } else { deltas.len() };
    if n as u64 != total {
        return Err(format!(
            "spans need {total} buckets but {n} counts are given"
        ));
    }
    let mut out = Vec::with_capacity(n);
    let (mut idx, mut k, mut acc) = (0i64, 0usize, 0i64);
    for (si, s) in spans.iter().enumerate() {
        if si > 0 && s.offset < 0 {
            return Err("negative span offset after the first span".into());
        }
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            let c = if float {
                counts[k]
            } else {
                acc = acc.checked_add(deltas[k]).ok_or("bucket count overflow")?;
                if acc < 0 {
                    return Err("negative bucket count".into());
                }
                acc as f64
            };
            out.push((idx, c));
            idx += 1;
            k += 1;
        }
    }
    Ok(out)
}

/// The classic series of one native histogram sample: `(labels, value)` pairs at `h.timestamp`.
pub fn to_classic(series: &Labels, h: &Histogram) -> Result<Vec<(Labels, f64)>, String> {
    let Some(name) = series.metric_name() else {
        return Err("histogram series without __name__".into());
    };
    if h.schema != CUSTOM_SCHEMA && !(-4..=8).contains(&h.schema) {
        return Err(format!(
            "histogram schema {} out of range (-4..=8, -53)",
            h.schema
        ));
    }
    let pos = side(&h.positive_spans, &h.positive_deltas, &h.positive_counts)?;
    let neg = side(&h.negative_spans, &h.negative_deltas, &h.negative_counts)?;
    let count = match h.count {
        Some(Count::Int(n)) => n as f64,
        Some(Count::Float(f)) => f,
        None => 0.0,
    };
    let zero = match h.zero_count {
        Some(ZeroCount::Int(n)) => n as f64,
        Some(ZeroCount::Float(f)) => f,
        None => 0.0,
    };
    let mut buckets: Vec<(f64, f64)> = Vec::with_capacity(pos.len() + neg.len() + 1);
    if h.schema == CUSTOM_SCHEMA {
        if !neg.is_empty() {
            return Err("custom-bucket histogram with negative buckets".into());
        }
        for (i, c) in pos {
            let le = if i >= 0 && (i as usize) < h.custom_values.len() {
                h.custom_values[i as usize]
            } else if i as usize == h.custom_values.len() {
                f64::INFINITY
            } else {
                return Err(format!("bucket {i} has no custom bound"));
            };
            buckets.push((le, c));
        }
    } else {
        let factor = (-(h.schema as f64)).exp2();
        let bound = |i: i64| (i as f64 * factor).exp2();
        for (i, c) in neg.iter().rev() {
            buckets.push((-bound(i - 1), *c));
        }
        buckets.push((h.zero_threshold.max(0.0), zero));
        for (i, c) in pos {
            buckets.push((bound(i), c));
        }
    }
    let stale = h.sum.to_bits() == STALE_NAN_BITS;
    let stale_v = f64::from_bits(STALE_NAN_BITS);
    let with = |suffix: &str, le: Option<f64>| {
        let mut pairs: Vec<(String, String)> = series
            .iter()
            .filter(|l| l.name != "__name__" && l.name != "le")
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        pairs.push(("__name__".into(), format!("{name}{suffix}")));
        if let Some(le) = le {
            pairs.push(("le".into(), float(le, FloatStyle::Label)));
        }
        Labels::from_pairs(pairs)
    };
    let mut out = Vec::with_capacity(buckets.len() + 3);
    let mut cum = 0.0;
    for (le, c) in buckets {
        cum += c;
        if le.is_infinite() {
            continue;
        }
        out.push((with("_bucket", Some(le)), if stale { stale_v } else { cum }));
    }
    out.push((
        with("_bucket", Some(f64::INFINITY)),
        if stale { stale_v } else { count },
    ));
    out.push((with("_count", None), if stale { stale_v } else { count }));
    out.push((with("_sum", None), if stale { stale_v } else { h.sum }));
    Ok(out)
}

/// An exemplar with `trace_id` (and `span_id`) labels, as the store keeps it; `None` without.
pub fn exemplar<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: f64,
    t: i64,
) -> Option<Exemplar> {
    let (mut trace, mut span) = (None, None);
    for (k, v) in labels {
        match k {
            "trace_id" | "traceID" | "traceId" => trace = hex::decode(v).ok(),
            "span_id" | "spanID" | "spanId" => span = hex::decode(v).ok(),
            _ => {}
        }
    }
    Some(Exemplar {
        trace_id: trace?.try_into().ok()?,
        span_id: span.unwrap_or_else(|| vec![0; 8]).try_into().ok()?,
        value,
        t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_to_classic() {
        // schema 0 (base 2): positive buckets 1 and 2 ((1,2] and (2,4]), then 4 ((8,16]);
        // one negative bucket 1 ([-2,-1)); zero bucket 3 at threshold 0.001.
        let h = Histogram {
            count: Some(Count::Int(10)),
            sum: 30.0,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::Int(3)),
            negative_spans: vec![BucketSpan {
                offset: 1,
                length: 1,
            }],
            negative_deltas: vec![1],
            positive_spans: vec![
                BucketSpan {
                    offset: 1,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_deltas: vec![2, 1, -2],
            ..Default::default()
        };
        let l = Labels::from_pairs([("__name__", "lat"), ("job", "a")]);
        let got: Vec<String> = to_classic(&l, &h)
            .unwrap()
            .iter()
            .map(|(l, v)| format!("{l} {v}"))
            .collect();
        assert_eq!(
            got,
            [
                "lat_bucket{job=\"a\", le=\"-1\"} 1",
                "lat_bucket{job=\"a\", le=\"0.001\"} 4",
                "lat_bucket{job=\"a\", le=\"2\"} 6",
                "lat_bucket{job=\"a\", le=\"4\"} 9",
                "lat_bucket{job=\"a\", le=\"16\"} 10",
                "lat_bucket{job=\"a\", le=\"+Inf\"} 10",
                "lat_count{job=\"a\"} 10",
                "lat_sum{job=\"a\"} 30",
            ]
        );
        let bad = Histogram {
            schema: 0,
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![1],
            ..Default::default()
        };
        assert!(to_classic(&l, &bad).is_err());
        assert!(
            to_classic(
                &l,
                &Histogram {
                    schema: 9,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }
}
