//! OTLP metrics -> Prometheus series, by the OpenTelemetry "Prometheus and OpenMetrics
//! compatibility" rules: names from the metric name, unit and type (`_total`, `_seconds`,
//! `_ratio` ...), labels from data-point attributes (sanitised, collisions joined with `;`),
//! `job`/`instance` from `service.namespace`/`service.name`/`service.instance.id`, the other
//! resource attributes on `target_info`, scope name and version as `otel_scope_name` /
//! `otel_scope_version`, histograms as `_bucket{le}`/`_sum`/`_count`, summaries as
//! `{quantile}`/`_sum`/`_count`, exponential histograms as classic buckets at their own bucket
//! boundaries (lossless for counts: every exponential bucket becomes one `le` bucket), the
//! `NoRecordedValue` flag as a staleness marker. Delta sums and histograms become cumulative
//! with per-stream state, bounded by `max_streams` (new streams past it are rejected) and
//! forgotten after `stream_ttl` without points. This module does not store anything.
//!
//! Series keys (issue 25): a gauge or cumulative-sum point without exemplars gets a 128-bit key
//! hashed from what names its series on the OTLP side (the resource's `job`/`instance`, the
//! scope when it labels series, the metric name, the point's attributes), with no allocation.
//! The first time a key is seen the point goes with its labels and the key
//! ([`crate::tsdb::Batch::series_keys`]); after that by key alone
//! ([`crate::tsdb::Batch::keyed`]), so a target's series are found again without building,
//! hashing or comparing label sets. Keys the store no longer knows come back and are sent
//! again with labels ([`Converter::resend`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, NumberDataPoint, SummaryDataPoint, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;

use super::histogram::{BucketPoint, exemplar_of, explicit_point, exponential_point, ms};
use super::naming::{Kind, label_name, metric_name};
use super::series_key::{Domain, KeyHasher, KnownKeys};
use crate::base::gofmt::{FloatStyle, float};
use crate::traces::model::any_to_text;
use crate::tsdb::{Batch, Exemplar, Labels, Metadata, STALE_NAN_BITS};

const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// What a conversion did, for the partial-success answer.
#[derive(Debug, Default)]
pub struct Converted {
    pub points: u64,
    pub rejected: u64,
    pub reasons: Vec<&'static str>,
}

impl Converted {
    fn reject(&mut self, why: &'static str) {
        self.rejected += 1;
        if !self.reasons.contains(&why) {
            self.reasons.push(why);
        }
    }
}

/// Attribute pairs -> sanitised label pairs; keys that collide after sanitising have their
/// values joined with `;` in the order of the original keys.
fn attr_labels(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    let mut sorted: Vec<(&str, String)> = kvs
        .iter()
        .filter(|kv| !kv.key.is_empty())
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref().map(any_to_text).unwrap_or_default(),
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in sorted {
        if v.is_empty() {
            continue;
        }
        let name = label_name(k);
        match out.get_mut(&name) {
            Some(existing) => {
                existing.push(';');
                existing.push_str(&v);
            }
            None => {
                out.insert(name, v);
            }
        }
    }
    out
}

/// Cumulative state for one delta stream.
enum Acc {
    Sum {
        total: f64,
    },
    Buckets {
        counts: BTreeMap<OrdF64, f64>,
        sum: f64,
        count: f64,
    },
}

struct Stream {
    acc: Acc,
    last_t: u64,
    seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
#[allow(clippy::derive_ord_xor_partial_ord)]
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// How a conversion names series.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Every series by its labels.
    Labels,
    /// Keyable points by key once their key was sent with labels; the rest by labels.
    Keyed,
    /// Only the keyable points whose key is in the set, by labels (and key); nothing else, and
    /// no delta state touched.
    Resend(&'a HashSet<u128>),
}

/// OTLP -> series converter with the delta-to-cumulative state.
pub struct Converter {
    streams: Mutex<HashMap<u64, Stream>>,
    /// Keys sent with labels (the store has likely registered them).
    known: KnownKeys,
    pub max_streams: usize,
    pub stream_ttl: Duration,
    pub scope_labels: bool,
}

/// Labels shared by a resource's series.
struct ResourceCtx {
    job: Option<String>,
    instance: Option<String>,
    info: Option<BTreeMap<String, String>>,
}

fn resource_ctx(r: Option<&Resource>) -> ResourceCtx {
    let attrs = r.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
    let get = |k: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref())
            .map(any_to_text)
            .filter(|s| !s.is_empty())
    };
    let name = get("service.name");
    let ns = get("service.namespace");
    let job = match (ns, name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n),
        (Some(ns), None) => Some(format!("{ns}/unknown_service")),
        (None, None) => None,
    };
    let instance = get("service.instance.id");
    let others: Vec<KeyValue> = attrs
        .iter()
        .filter(|kv| {
            !matches!(
                kv.key.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            )
        })
        .cloned()
        .collect();
    let info = (!others.is_empty()).then(|| attr_labels(&others));
    ResourceCtx {
        job,
        instance,
        info,
    }
}

fn number(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

struct Ctx<'a> {
    res: &'a ResourceCtx,
    scope: Option<&'a InstrumentationScope>,
    scope_labels: bool,
    now_ms: i64,
    mode: Mode<'a>,
    /// Hash of everything besides the name and attributes that goes into a series' labels.
    seed: u128,
}

/// The key seed of a resource and scope: `job`, `instance`, and the scope when it labels series.
fn key_seed(res: &ResourceCtx, scope: Option<&InstrumentationScope>, scope_labels: bool) -> u128 {
    let mut h = KeyHasher::new(Domain::Otlp);
    for v in [&res.job, &res.instance] {
        match v {
            Some(v) => h.field(v.as_bytes()),
            None => h.raw(&[0xff; 4]),
        }
    }
    match scope.filter(|_| scope_labels) {
        Some(s) => {
            h.field(s.name.as_bytes());
            h.field(s.version.as_bytes());
        }
        None => h.raw(&[0xfe; 4]),
    }
    h.finish()
}

/// A point's series key: `None` when an attribute value is not a scalar (its label text is
/// then built the long way).
fn point_key(seed: u128, name: &str, attrs: &[KeyValue]) -> Option<u128> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let mut h = KeyHasher::new(Domain::Otlp);
    h.raw(&seed.to_le_bytes());
    h.field(name.as_bytes());
    for kv in attrs {
        h.field(kv.key.as_bytes());
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            None => h.raw(&[0]),
            Some(Value::StringValue(s)) => {
                h.raw(&[1]);
                h.field(s.as_bytes());
            }
            Some(Value::IntValue(i)) => {
                h.raw(&[2]);
                h.raw(&i.to_le_bytes());
            }
            Some(Value::DoubleValue(d)) => {
                h.raw(&[3]);
                h.raw(&d.to_bits().to_le_bytes());
            }
            Some(Value::BoolValue(b)) => h.raw(&[4, *b as u8]),
            Some(_) => return None,
        }
    }
    Some(h.finish())
}

impl Ctx<'_> {
    /// The label set for `name` with the point's attributes and `extra` (le, quantile).
    fn labels(
        &self,
        name: &str,
        attrs: &BTreeMap<String, String>,
        extra: Option<(&str, String)>,
    ) -> Labels {
        let mut pairs: Vec<(String, String)> =
            attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if self.scope_labels
            && let Some(s) = self.scope
        {
            pairs.push(("otel_scope_name".into(), s.name.clone()));
            pairs.push(("otel_scope_version".into(), s.version.clone()));
        }
        if let Some(j) = &self.res.job {
            pairs.push(("job".into(), j.clone()));
        }
        if let Some(i) = &self.res.instance {
            pairs.push(("instance".into(), i.clone()));
        }
        if let Some((k, v)) = extra {
            pairs.push((k.into(), v));
        }
        pairs.push(("__name__".into(), name.into()));
        Labels::from_pairs(pairs)
    }
}

impl Converter {
    pub fn new(max_streams: usize, stream_ttl: Duration, scope_labels: bool) -> Converter {
        Converter {
            streams: Mutex::new(HashMap::new()),
            known: KnownKeys::default(),
            max_streams,
            stream_ttl,
            scope_labels,
        }
    }

    pub fn streams(&self) -> usize {
        self.streams.lock().len()
    }

    /// Converts a whole export into `out`, every series by its labels.
    pub fn convert(&self, req: &ExportMetricsServiceRequest, out: &mut Batch) -> Converted {
        self.convert_as(req, out, Mode::Labels)
    }

    /// Converts a whole export into `out`, naming series the store knows by key.
    pub fn convert_keyed(&self, req: &ExportMetricsServiceRequest, out: &mut Batch) -> Converted {
        self.convert_as(req, out, Mode::Keyed)
    }

    /// The keyed points of `req` whose key the store did not know, again, with their labels:
    /// nothing else of the export (it is stored already).
    pub fn resend(
        &self,
        req: &ExportMetricsServiceRequest,
        unknown: &HashSet<u128>,
        out: &mut Batch,
    ) {
        self.known.forget(unknown);
        self.convert_as(req, out, Mode::Resend(unknown));
    }

    fn convert_as(
        &self,
        req: &ExportMetricsServiceRequest,
        out: &mut Batch,
        mode: Mode,
    ) -> Converted {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut c = Converted::default();
        let mut streams = self.streams.lock();
        let mut known = self.known.lock();
        let now = Instant::now();
        let ttl = self.stream_ttl;
        if streams.len() >= self.max_streams {
            streams.retain(|_, s| now.duration_since(s.seen) < ttl);
        }
        for rm in &req.resource_metrics {
            let res = resource_ctx(rm.resource.as_ref());
            let mut newest: Option<i64> = None;
            for sm in &rm.scope_metrics {
                let scope = sm.scope.as_ref().filter(|s| !s.name.is_empty());
                let ctx = Ctx {
                    res: &res,
                    scope,
                    scope_labels: self.scope_labels,
                    now_ms,
                    mode,
                    seed: match mode {
                        Mode::Labels => 0,
                        _ => key_seed(&res, scope, self.scope_labels),
                    },
                };
                for m in &sm.metrics {
                    let (before, before_keyed) = (out.samples.len(), out.keyed.len());
                    self.metric(m, &ctx, out, &mut c, &mut streams, &mut known, now);
                    let t = out.samples[before..].iter().map(|s| s.1);
                    if let Some(t) = t.chain(out.keyed[before_keyed..].iter().map(|s| s.1)).max() {
                        newest = Some(newest.map_or(t, |n: i64| n.max(t)));
                    }
                }
            }
            if matches!(mode, Mode::Resend(_)) {
                continue;
            }
            if let (Some(info), Some(t)) = (&res.info, newest) {
                let ctx = Ctx {
                    res: &res,
                    scope: None,
                    scope_labels: false,
                    now_ms,
                    mode: Mode::Labels,
                    seed: 0,
                };
                out.push(ctx.labels("target_info", info, None), t, 1.0);
                out.metadata.push((
                    "target_info".into(),
                    Metadata {
                        kind: "gauge".into(),
                        help: "Target metadata".into(),
                        unit: String::new(),
                    },
                ));
            }
        }
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn metric(
        &self,
        m: &opentelemetry_proto::tonic::metrics::v1::Metric,
        ctx: &Ctx,
        out: &mut Batch,
        c: &mut Converted,
        streams: &mut HashMap<u64, Stream>,
        known: &mut HashSet<u128>,
        now: Instant,
    ) {
        let Some(data) = &m.data else {
            return;
        };
        if let Mode::Resend(_) = ctx.mode {
            // Only gauges and cumulative sums are ever sent by key.
            let keyable = match data {
                Data::Gauge(_) => true,
                Data::Sum(s) => s.aggregation_temporality != AggregationTemporality::Delta as i32,
                _ => false,
            };
            if !keyable {
                return;
            }
        }
        let (kind, prom_type, points) = match data {
            Data::Gauge(g) => (Kind::Gauge, "gauge", g.data_points.len()),
            Data::Sum(s) if s.is_monotonic => (Kind::Counter, "counter", s.data_points.len()),
            Data::Sum(s) => (Kind::Gauge, "gauge", s.data_points.len()),
            Data::Histogram(h) => (Kind::Histogram, "histogram", h.data_points.len()),
            Data::ExponentialHistogram(h) => (Kind::Histogram, "histogram", h.data_points.len()),
            Data::Summary(s) => (Kind::Summary, "summary", s.data_points.len()),
        };
        c.points += points as u64;
        let name = metric_name(&m.name, &m.unit, kind);
        if name.is_empty() {
            (0..points).for_each(|_| c.reject("metric name is empty"));
            return;
        }
        if !matches!(ctx.mode, Mode::Resend(_)) {
            out.metadata.push((
                name.clone(),
                Metadata {
                    kind: prom_type.into(),
                    help: m.description.clone(),
                    unit: m.unit.clone(),
                },
            ));
        }
        let is_delta = |t: i32| t == AggregationTemporality::Delta as i32;
        match data {
            Data::Gauge(g) => {
                for p in &g.data_points {
                    self.number_point(p, &name, ctx, out, c, None, known);
                }
            }
            Data::Sum(s) => {
                let delta = is_delta(s.aggregation_temporality);
                for p in &s.data_points {
                    let state = delta.then_some((&mut *streams, now));
                    self.number_point(p, &name, ctx, out, c, state, known);
                }
            }
            Data::Histogram(h) => {
                let points = h.data_points.iter().map(|p| explicit_point(p, ctx.now_ms));
                let delta = is_delta(h.aggregation_temporality);
                self.bucket_points(&name, points, ctx, out, c, delta.then_some((streams, now)));
            }
            Data::ExponentialHistogram(h) => {
                let points = h
                    .data_points
                    .iter()
                    .map(|p| exponential_point(p, ctx.now_ms));
                let delta = is_delta(h.aggregation_temporality);
                self.bucket_points(&name, points, ctx, out, c, delta.then_some((streams, now)));
            }
            Data::Summary(s) => {
                for p in &s.data_points {
                    self.summary_point(p, &name, ctx, out);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn number_point(
        &self,
        p: &NumberDataPoint,
        name: &str,
        ctx: &Ctx,
        out: &mut Batch,
        c: &mut Converted,
        delta: Option<(&mut HashMap<u64, Stream>, Instant)>,
        known: &mut HashSet<u128>,
    ) {
        // Delta points keep their labels (their stream state is keyed by them); so do points
        // with exemplars, which refer to their series by index.
        let key = match ctx.mode {
            Mode::Labels => None,
            _ if delta.is_some() || !p.exemplars.is_empty() => None,
            _ => point_key(ctx.seed, name, &p.attributes),
        };
        if let Mode::Resend(unknown) = ctx.mode
            && !key.is_some_and(|k| unknown.contains(&k))
        {
            return;
        }
        let known_key = key.filter(|k| matches!(ctx.mode, Mode::Keyed) && known.contains(k));
        let t = ms(p.time_unix_nano, ctx.now_ms);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let mut v = if stale {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            match number(p) {
                Some(v) => v,
                None => {
                    c.reject("number data point without a value");
                    return;
                }
            }
        };
        if let Some(k) = known_key {
            out.keyed.push((k, t, v));
            return;
        }
        let attrs = attr_labels(&p.attributes);
        let labels = ctx.labels(name, &attrs, None);
        if let (Some((streams, now)), false) = (delta, stale) {
            let key = labels.hash64();
            let full = streams.len() >= self.max_streams;
            match streams.get_mut(&key) {
                Some(s) => {
                    if p.time_unix_nano <= s.last_t {
                        c.reject("delta point not newer than the previous one of its stream");
                        return;
                    }
                    if let Acc::Sum { total } = &mut s.acc {
                        *total += v;
                        v = *total;
                    }
                    s.last_t = p.time_unix_nano;
                    s.seen = now;
                }
                None if full => {
                    c.reject("too many delta streams to convert to cumulative (metrics.delta_max_streams)");
                    return;
                }
                None => {
                    streams.insert(
                        key,
                        Stream {
                            acc: Acc::Sum { total: v },
                            last_t: p.time_unix_nano,
                            seen: now,
                        },
                    );
                }
            }
        }
        let i = out.series_index(labels);
        out.samples.push((i, t, v));
        if let Some(k) = key {
            out.series_keys.push((i, k));
            known.insert(k);
        }
        if let Some(e) = p
            .exemplars
            .iter()
            .rev()
            .find_map(|e| exemplar_of(e, ctx.now_ms))
        {
            out.exemplars.push((i, e));
        }
    }

    /// Histogram points of either kind; those that cannot be read are rejected with the reason.
    fn bucket_points<'a>(
        &self,
        name: &str,
        points: impl Iterator<Item = Result<BucketPoint<'a>, &'static str>>,
        ctx: &Ctx,
        out: &mut Batch,
        c: &mut Converted,
        mut delta: Option<(&mut HashMap<u64, Stream>, Instant)>,
    ) {
        for p in points {
            match p {
                Ok(point) => {
                    let state = delta.as_mut().map(|(s, now)| (&mut **s, *now));
                    self.buckets_point(name, point, ctx, out, c, state);
                }
                Err(why) => c.reject(why),
            }
        }
    }

    fn buckets_point(
        &self,
        name: &str,
        point: BucketPoint,
        ctx: &Ctx,
        out: &mut Batch,
        c: &mut Converted,
        delta: Option<(&mut HashMap<u64, Stream>, Instant)>,
    ) {
        let BucketPoint {
            attributes,
            time_nanos,
            flags,
            mut buckets,
            sum,
            mut count,
            exemplars,
        } = point;
        let attrs = attr_labels(attributes);
        let t = ms(time_nanos, ctx.now_ms);
        let stale = flags & FLAG_NO_RECORDED_VALUE != 0;
        let mut sum = sum;
        if let (Some((streams, now)), false) = (delta, stale) {
            let key = ctx.labels(name, &attrs, None).hash64();
            let full = streams.len() >= self.max_streams;
            match streams.get_mut(&key) {
                Some(s) => {
                    if time_nanos <= s.last_t {
                        c.reject("delta point not newer than the previous one of its stream");
                        return;
                    }
                    if let Acc::Buckets {
                        counts,
                        sum: total_sum,
                        count: total_count,
                    } = &mut s.acc
                    {
                        for (le, n) in &buckets {
                            *counts.entry(OrdF64(*le)).or_insert(0.0) += n;
                        }
                        *total_sum += sum.unwrap_or(0.0);
                        *total_count += count;
                        buckets = counts.iter().map(|(k, v)| (k.0, *v)).collect();
                        sum = sum.map(|_| *total_sum);
                        count = *total_count;
                    }
                    s.last_t = time_nanos;
                    s.seen = now;
                }
                None if full => {
                    c.reject("too many delta streams to convert to cumulative (metrics.delta_max_streams)");
                    return;
                }
                None => {
                    streams.insert(
                        key,
                        Stream {
                            acc: Acc::Buckets {
                                counts: buckets.iter().map(|(k, v)| (OrdF64(*k), *v)).collect(),
                                sum: sum.unwrap_or(0.0),
                                count,
                            },
                            last_t: time_nanos,
                            seen: now,
                        },
                    );
                }
            }
        }
        let stale_v = f64::from_bits(STALE_NAN_BITS);
        let bucket_name = format!("{name}_bucket");
        // The latest exemplar of each bucket (index `buckets.len()` is `+Inf`).
        let mut per_bucket: HashMap<usize, Exemplar> = HashMap::new();
        for e in &exemplars {
            let k = buckets
                .iter()
                .position(|b| e.value <= b.0)
                .unwrap_or(buckets.len());
            per_bucket.insert(k, *e);
        }
        let mut cum = 0.0;
        for (k, (le, n)) in buckets.iter().enumerate() {
            cum += n;
            let l = ctx.labels(
                &bucket_name,
                &attrs,
                Some(("le", float(*le, FloatStyle::Label))),
            );
            let i = out.series_index(l);
            out.samples.push((i, t, if stale { stale_v } else { cum }));
            if let Some(e) = per_bucket.get(&k) {
                out.exemplars.push((i, *e));
            }
        }
        let l = ctx.labels(&bucket_name, &attrs, Some(("le", "+Inf".into())));
        let i = out.series_index(l);
        out.samples
            .push((i, t, if stale { stale_v } else { count }));
        if let Some(e) = per_bucket.get(&buckets.len()) {
            out.exemplars.push((i, *e));
        }
        if sum.is_some() || stale {
            out.push(
                ctx.labels(&format!("{name}_sum"), &attrs, None),
                t,
                if stale { stale_v } else { sum.unwrap_or(0.0) },
            );
        }
        out.push(
            ctx.labels(&format!("{name}_count"), &attrs, None),
            t,
            if stale { stale_v } else { count },
        );
    }

    fn summary_point(&self, p: &SummaryDataPoint, name: &str, ctx: &Ctx, out: &mut Batch) {
        let attrs = attr_labels(&p.attributes);
        let t = ms(p.time_unix_nano, ctx.now_ms);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let val = |v: f64| {
            if stale {
                f64::from_bits(STALE_NAN_BITS)
            } else {
                v
            }
        };
        for q in &p.quantile_values {
            out.push(
                ctx.labels(
                    name,
                    &attrs,
                    Some(("quantile", float(q.quantile, FloatStyle::Label))),
                ),
                t,
                val(q.value),
            );
        }
        out.push(
            ctx.labels(&format!("{name}_sum"), &attrs, None),
            t,
            val(p.sum),
        );
        out.push(
            ctx.labels(&format!("{name}_count"), &attrs, None),
            t,
            val(p.count as f64),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;

    #[test]
    fn names_follow_the_compatibility_rules() {
        let cases = [
            (
                "worker.read.crashes",
                "",
                Kind::Counter,
                "worker_read_crashes_total",
            ),
            (
                "http.server.duration",
                "s",
                Kind::Histogram,
                "http_server_duration_seconds",
            ),
            (
                "system.memory.usage",
                "By",
                Kind::Gauge,
                "system_memory_usage_bytes",
            ),
            ("cpu.utilization", "1", Kind::Gauge, "cpu_utilization_ratio"),
            (
                "cpu.utilization",
                "1",
                Kind::Counter,
                "cpu_utilization_total",
            ),
            ("requests", "{requests}", Kind::Counter, "requests_total"),
            ("requests.total", "", Kind::Counter, "requests_total"),
            ("latency_seconds", "s", Kind::Gauge, "latency_seconds"),
            (
                "throughput",
                "By/s",
                Kind::Gauge,
                "throughput_bytes_per_second",
            ),
            ("2xx.count", "", Kind::Gauge, "_2xx_count"),
            ("temp", "Cel", Kind::Gauge, "temp_celsius"),
            (
                "foo__bar--baz",
                "ms",
                Kind::Counter,
                "foo_bar_baz_milliseconds_total",
            ),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(metric_name(name, unit, kind), want, "{name} {unit}");
        }
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("_x"), "key_x");
        assert_eq!(label_name("__x"), "__x");
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v.into()),
                ),
            }),
            ..Default::default()
        };
        let l = attr_labels(&[kv("a.b", "2"), kv("a_b", "1")]);
        assert_eq!(l.get("a_b").map(String::as_str), Some("2;1"));
        assert_eq!(float(0.005, FloatStyle::Label), "0.005");
        assert_eq!(float(1.0, FloatStyle::Label), "1");
        assert_eq!(float(1e21, FloatStyle::Label), "1e+21");
        assert_eq!(float(f64::INFINITY, FloatStyle::Label), "+Inf");
    }

    fn point_attrs() -> Vec<KeyValue> {
        vec![KeyValue {
            key: "gpu".into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "0".into(),
                    ),
                ),
            }),
            ..Default::default()
        }]
    }

    fn request(
        metrics: Vec<opentelemetry_proto::tonic::metrics::v1::Metric>,
    ) -> ExportMetricsServiceRequest {
        use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                            value: Some(
                                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                    "svc".into(),
                                ),
                            ),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// (series text, value) of every sample, values as bits to compare NaNs.
    fn samples(b: &Batch) -> Vec<(String, u64)> {
        b.samples
            .iter()
            .map(|(i, _, v)| (b.series[*i as usize].to_string(), v.to_bits()))
            .collect()
    }

    #[test]
    fn exponential_histograms_summaries_and_staleness() {
        use opentelemetry_proto::tonic::metrics::v1::{
            ExponentialHistogram, Gauge, Metric, Summary,
            exponential_histogram_data_point::Buckets, summary_data_point::ValueAtQuantile,
        };
        let c = Converter::new(10, Duration::from_secs(3600), false);
        let exp = Metric {
            name: "gpu.kernel.time".into(),
            unit: "s".into(),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: point_attrs(),
                    time_unix_nano: 1_000_000_000,
                    count: 6,
                    sum: Some(9.5),
                    scale: 0,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: 0,
                        bucket_counts: vec![2, 3],
                    }),
                    negative: None,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let summary = Metric {
            name: "rpc.latency".into(),
            unit: "ms".into(),
            data: Some(Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: 1_000_000_000,
                    count: 10,
                    sum: 55.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.99,
                        value: 9.9,
                    }],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let gone = Metric {
            name: "gpu.util".into(),
            unit: "1".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 1_000_000_000,
                    flags: FLAG_NO_RECORDED_VALUE,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let mut b = Batch::default();
        let r = c.convert(&request(vec![exp, summary, gone]), &mut b);
        assert_eq!((r.points, r.rejected), (3, 0));
        let got = samples(&b);
        let want = [
            // scale 0: base 2; zero bucket (le 0), then (1,2], (2,4] as le 2 and le 4.
            (
                "gpu_kernel_time_seconds_bucket{gpu=\"0\", job=\"svc\", le=\"0\"}",
                1.0,
            ),
            (
                "gpu_kernel_time_seconds_bucket{gpu=\"0\", job=\"svc\", le=\"2\"}",
                3.0,
            ),
            (
                "gpu_kernel_time_seconds_bucket{gpu=\"0\", job=\"svc\", le=\"4\"}",
                6.0,
            ),
            (
                "gpu_kernel_time_seconds_bucket{gpu=\"0\", job=\"svc\", le=\"+Inf\"}",
                6.0,
            ),
            ("gpu_kernel_time_seconds_sum{gpu=\"0\", job=\"svc\"}", 9.5),
            ("gpu_kernel_time_seconds_count{gpu=\"0\", job=\"svc\"}", 6.0),
            (
                "rpc_latency_milliseconds{job=\"svc\", quantile=\"0.99\"}",
                9.9,
            ),
            ("rpc_latency_milliseconds_sum{job=\"svc\"}", 55.0),
            ("rpc_latency_milliseconds_count{job=\"svc\"}", 10.0),
        ];
        for (series, v) in want.iter().map(|(s, v): &(&str, f64)| (*s, *v)) {
            assert!(
                got.contains(&(series.to_string(), v.to_bits())),
                "{series} = {v} not in {got:#?}"
            );
        }
        assert!(got.contains(&("gpu_util_ratio{job=\"svc\"}".to_string(), STALE_NAN_BITS)));
        assert_eq!(got.len(), want.len() + 1);
    }

    #[test]
    fn known_series_go_by_key() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Histogram, HistogramDataPoint, Metric, Sum,
        };
        let point = |v: f64, shard: &str| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "shard".into(),
                value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            shard.into(),
                        ),
                    ),
                }),
                ..Default::default()
            }],
            time_unix_nano: 1_700_000_000_000_000_000 + v as u64 * 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let req = |v: f64| {
            request(vec![
                Metric {
                    name: "temp".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![point(v, "a"), point(v + 1.0, "b")],
                    })),
                    ..Default::default()
                },
                Metric {
                    name: "ops".into(),
                    data: Some(Data::Sum(Sum {
                        data_points: vec![point(v, "a")],
                        aggregation_temporality: AggregationTemporality::Delta as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                },
                Metric {
                    name: "lat".into(),
                    data: Some(Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            time_unix_nano: 1_700_000_000_000_000_000,
                            count: 1,
                            bucket_counts: vec![1, 0],
                            explicit_bounds: vec![1.0],
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                },
            ])
        };
        let conv = Converter::new(100, Duration::from_secs(60), false);
        // First: every series with its labels; the gauge's two also with their keys.
        let mut b1 = Batch::default();
        conv.convert_keyed(&req(1.0), &mut b1);
        assert!(b1.keyed.is_empty());
        assert_eq!(b1.series_keys.len(), 2);
        let first = samples(&b1);
        assert!(
            first.contains(&("temp{job=\"svc\", shard=\"a\"}".into(), 1f64.to_bits())),
            "{first:?}"
        );
        // Again: the gauge by key alone (the same keys), the delta sum and the histogram by labels.
        let mut b2 = Batch::default();
        let c = conv.convert_keyed(&req(5.0), &mut b2);
        assert_eq!(c.points, 4);
        let keys: Vec<u128> = b1.series_keys.iter().map(|k| k.1).collect();
        assert_eq!(
            b2.keyed.iter().map(|k| (k.0, k.2)).collect::<Vec<_>>(),
            vec![(keys[0], 5.0), (keys[1], 6.0)]
        );
        assert!(b2.series_keys.is_empty());
        let names: Vec<String> = samples(&b2).into_iter().map(|s| s.0).collect();
        assert!(
            names.iter().any(|n| n.starts_with("ops_total")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.starts_with("lat_bucket")),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("temp")), "{names:?}");
        // The store did not know one key: only that point again, with labels and key, and
        // nothing else (the delta sum is not counted twice).
        let unknown: HashSet<u128> = [keys[1]].into();
        let mut b3 = Batch::default();
        conv.resend(&req(5.0), &unknown, &mut b3);
        assert_eq!(
            samples(&b3),
            vec![("temp{job=\"svc\", shard=\"b\"}".to_string(), 6f64.to_bits())]
        );
        assert_eq!(b3.series_keys, vec![(0, keys[1])]);
        assert!(b3.keyed.is_empty() && b3.metadata.is_empty());
        // Another resource's series with the same attributes have other keys.
        let mut other = req(1.0);
        if let Some(r) = other.resource_metrics[0].resource.as_mut() {
            r.attributes[0].value = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "svc2".into(),
                    ),
                ),
            });
        }
        let mut b4 = Batch::default();
        conv.convert_keyed(&other, &mut b4);
        assert!(b4.keyed.is_empty());
        assert_eq!(b4.series_keys.len(), 2);
        assert!(b4.series_keys.iter().all(|k| !keys.contains(&k.1)));
    }

    #[test]
    fn delta_state_is_bounded() {
        use opentelemetry_proto::tonic::metrics::v1::{Metric, Sum};
        let c = Converter::new(2, Duration::from_secs(3600), false);
        let sum = |attr: &str, t: u64, v: f64| {
            Metric {
            name: "jobs".into(),
            data: Some(Data::Sum(Sum {
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
                data_points: vec![NumberDataPoint {
                    attributes: vec![KeyValue {
                        key: "q".into(),
                        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                            value: Some(
                                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                    attr.into(),
                                ),
                            ),
                        }),
                        ..Default::default()
                    }],
                    time_unix_nano: t,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }
        };
        let mut b = Batch::default();
        c.convert(&request(vec![sum("a", 10, 1.0), sum("b", 10, 1.0)]), &mut b);
        c.convert(&request(vec![sum("a", 20, 2.0)]), &mut b);
        // A third stream does not fit; a repeated or older point is refused.
        let r = c.convert(&request(vec![sum("c", 20, 5.0), sum("a", 20, 9.0)]), &mut b);
        assert_eq!(r.rejected, 2, "{:?}", r.reasons);
        let got = samples(&b);
        assert_eq!(
            got[2],
            (
                "jobs_total{job=\"svc\", q=\"a\"}".to_string(),
                3.0f64.to_bits()
            )
        );
        assert_eq!(got.len(), 3);
        assert_eq!(c.streams(), 2);
    }
}
