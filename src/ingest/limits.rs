//! Attribute limits, as the OpenTelemetry specification allows a receiver to apply them: past the
//! count limit attributes are dropped and `dropped_attributes_count` grows; string and bytes
//! values past the length limit are truncated (on a UTF-8 boundary). Nested values count by their
//! top-level entry.

use std::sync::atomic::Ordering::Relaxed;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::telemetry::Metrics;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_attributes: usize,
    pub max_value_len: usize,
}

impl Limits {
    pub fn apply(&self, attrs: &mut Vec<KeyValue>, dropped: &mut u32, metrics: &Metrics) {
        if attrs.len() > self.max_attributes {
            let extra = attrs.len() - self.max_attributes;
            attrs.truncate(self.max_attributes);
            *dropped = dropped.saturating_add(extra as u32);
            metrics.dropped_attributes.fetch_add(extra as u64, Relaxed);
        }
        for kv in attrs.iter_mut() {
            if let Some(v) = &mut kv.value {
                self.truncate(v, metrics, 0);
            }
        }
    }

    fn truncate(&self, v: &mut AnyValue, metrics: &Metrics, depth: usize) {
        match &mut v.value {
            Some(any_value::Value::StringValue(s)) if s.len() > self.max_value_len => {
                let mut end = self.max_value_len;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                metrics.truncated_values.fetch_add(1, Relaxed);
            }
            Some(any_value::Value::BytesValue(b)) if b.len() > self.max_value_len => {
                b.truncate(self.max_value_len);
                metrics.truncated_values.fetch_add(1, Relaxed);
            }
            // Decoders already bound nesting (prost: 100 levels, serde_json: 128).
            Some(any_value::Value::ArrayValue(a)) if depth < 128 => {
                for x in &mut a.values {
                    self.truncate(x, metrics, depth + 1);
                }
            }
            Some(any_value::Value::KvlistValue(kv)) if depth < 128 => {
                for x in kv.values.iter_mut().filter_map(|kv| kv.value.as_mut()) {
                    self.truncate(x, metrics, depth + 1);
                }
            }
            _ => {}
        }
    }

    pub fn apply_span(&self, span: &mut Span, metrics: &Metrics) {
        self.apply(
            &mut span.attributes,
            &mut span.dropped_attributes_count,
            metrics,
        );
        for ev in &mut span.events {
            self.apply(
                &mut ev.attributes,
                &mut ev.dropped_attributes_count,
                metrics,
            );
        }
        for link in &mut span.links {
            self.apply(
                &mut link.attributes,
                &mut link.dropped_attributes_count,
                metrics,
            );
        }
    }

    pub fn apply_log(&self, rec: &mut LogRecord, metrics: &Metrics) {
        self.apply(
            &mut rec.attributes,
            &mut rec.dropped_attributes_count,
            metrics,
        );
        if let Some(body) = &mut rec.body {
            self.truncate(body, metrics, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::traces::model::string_kv as kv;

    #[test]
    fn drops_and_truncates() {
        let l = Limits {
            max_attributes: 2,
            max_value_len: 4,
        };
        let m = Metrics::default();
        let mut attrs = vec![kv("a", "ééé"), kv("b", "ok"), kv("c", "gone")];
        let mut dropped = 1;
        l.apply(&mut attrs, &mut dropped, &m);
        assert_eq!(attrs.len(), 2);
        assert_eq!(dropped, 2);
        assert_eq!(attrs[0], kv("a", "éé"));
        assert_eq!(attrs[1], kv("b", "ok"));
    }
}
