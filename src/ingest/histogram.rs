//! OTLP histogram data points (explicit and exponential buckets) as cumulative `le` buckets,
//! validated before they become `_bucket`, `_sum` and `_count` series; exemplars and point
//! times as the store keeps them.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar as OtlpExemplar, ExponentialHistogramDataPoint, HistogramDataPoint, exemplar,
};

use crate::tsdb::Exemplar;

/// One histogram data point, explicit or exponential, as classic buckets.
pub(super) struct BucketPoint<'a> {
    pub(super) attributes: &'a [KeyValue],
    pub(super) time_nanos: u64,
    pub(super) flags: u32,
    /// (upper bound, count) per finite bucket, ascending.
    pub(super) buckets: Vec<(f64, f64)>,
    pub(super) sum: Option<f64>,
    pub(super) count: f64,
    pub(super) exemplars: Vec<Exemplar>,
}

/// Builds a point from what both OTLP histogram point types carry; `buckets` is `None` when the
/// point's buckets are malformed (`why` says how).
#[allow(clippy::too_many_arguments)]
fn point<'a>(
    attributes: &'a [KeyValue],
    time_nanos: u64,
    flags: u32,
    sum: Option<f64>,
    count: u64,
    exemplars: &[OtlpExemplar],
    buckets: Option<Vec<(f64, f64)>>,
    why: &'static str,
    now_ms: i64,
) -> Result<BucketPoint<'a>, &'static str> {
    Ok(BucketPoint {
        attributes,
        time_nanos,
        flags,
        buckets: buckets.ok_or(why)?,
        sum,
        count: count as f64,
        exemplars: exemplars
            .iter()
            .filter_map(|e| exemplar_of(e, now_ms))
            .collect(),
    })
}

pub(super) fn explicit_point(
    p: &HistogramDataPoint,
    now_ms: i64,
) -> Result<BucketPoint<'_>, &'static str> {
    let why = "histogram bucket_counts must be empty or one longer than explicit_bounds";
    let (t, f) = (p.time_unix_nano, p.flags);
    let b = explicit_buckets(p);
    point(
        &p.attributes,
        t,
        f,
        p.sum,
        p.count,
        &p.exemplars,
        b,
        why,
        now_ms,
    )
}

pub(super) fn exponential_point(
    p: &ExponentialHistogramDataPoint,
    now_ms: i64,
) -> Result<BucketPoint<'_>, &'static str> {
    let why = "exponential histogram scale out of range (-10..=20)";
    let (t, f) = (p.time_unix_nano, p.flags);
    let b = exponential_buckets(p);
    point(
        &p.attributes,
        t,
        f,
        p.sum,
        p.count,
        &p.exemplars,
        b,
        why,
        now_ms,
    )
}

/// (upper bound, count) per finite bucket of an explicit-bounds histogram; the `+Inf` bucket is
/// implied by the total count. `None` if the counts do not fit the bounds.
pub(super) fn explicit_buckets(p: &HistogramDataPoint) -> Option<Vec<(f64, f64)>> {
    if p.bucket_counts.is_empty() {
        return Some(Vec::new());
    }
    if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return None;
    }
    Some(
        p.explicit_bounds
            .iter()
            .zip(&p.bucket_counts)
            .map(|(b, n)| (*b, *n as f64))
            .collect(),
    )
}

/// Classic buckets at an exponential histogram's own boundaries: negative buckets (upper bound
/// `-base^i`), the zero bucket (upper bound `zero_threshold`), positive buckets (upper bound
/// `base^(i+1)`), ascending.
pub(super) fn exponential_buckets(p: &ExponentialHistogramDataPoint) -> Option<Vec<(f64, f64)>> {
    if !(-10..=20).contains(&p.scale) {
        return None;
    }
    let factor = (-(p.scale as f64)).exp2();
    let bound = |i: i64| (i as f64 * factor).exp2();
    let mut out = Vec::new();
    if let Some(neg) = &p.negative {
        for (k, n) in neg.bucket_counts.iter().enumerate().rev() {
            let i = neg.offset as i64 + k as i64;
            out.push((-bound(i), *n as f64));
        }
    }
    out.push((p.zero_threshold.max(0.0), p.zero_count as f64));
    if let Some(pos) = &p.positive {
        for (k, n) in pos.bucket_counts.iter().enumerate() {
            let i = pos.offset as i64 + k as i64;
            out.push((bound(i + 1), *n as f64));
        }
    }
    Some(out)
}

pub(super) fn ms(nanos: u64, now_ms: i64) -> i64 {
    if nanos == 0 {
        now_ms
    } else {
        (nanos / 1_000_000) as i64
    }
}

pub(super) fn exemplar_of(e: &OtlpExemplar, now_ms: i64) -> Option<Exemplar> {
    let value = match e.value? {
        exemplar::Value::AsDouble(d) => d,
        exemplar::Value::AsInt(i) => i as f64,
    };
    Some(Exemplar {
        trace_id: e.trace_id.as_slice().try_into().ok()?,
        span_id: e.span_id.as_slice().try_into().ok()?,
        value,
        t: ms(e.time_unix_nano, now_ms),
    })
}
