//! The Jaeger-shaped view of OTLP data that both search and the query API use, so that what a
//! search matches is exactly what a user sees: attribute values as typed tags, and the tags Jaeger
//! derives from OTLP fields (`span.kind`, `error`, `otel.status_code`, `otel.scope.name`, ...).

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

/// A typed tag value, as Jaeger's model has them.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Str(String),
    Bool(bool),
    I64(i64),
    F64(f64),
    Bytes(Vec<u8>),
}

impl TagValue {
    /// The text form that tag searches compare against (Jaeger compares tag values as strings).
    pub fn as_text(&self) -> String {
        match self {
            TagValue::Str(s) => s.clone(),
            TagValue::Bool(b) => b.to_string(),
            TagValue::I64(i) => i.to_string(),
            TagValue::F64(f) => f.to_string(),
            TagValue::Bytes(b) => hex::encode(b),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            TagValue::I64(i) => Some(*i as f64),
            TagValue::F64(f) => Some(*f),
            _ => None,
        }
    }

    pub fn jaeger_type(&self) -> &'static str {
        match self {
            TagValue::Str(_) => "string",
            TagValue::Bool(_) => "bool",
            TagValue::I64(_) => "int64",
            TagValue::F64(_) => "float64",
            TagValue::Bytes(_) => "binary",
        }
    }
}

/// Converts an OTLP value; arrays and maps become JSON text, as Jaeger's OTLP translator does.
pub fn tag_value(v: &AnyValue) -> TagValue {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => TagValue::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => TagValue::Bool(*b),
        Some(any_value::Value::IntValue(i)) => TagValue::I64(*i),
        Some(any_value::Value::DoubleValue(d)) => TagValue::F64(*d),
        Some(any_value::Value::BytesValue(b)) => TagValue::Bytes(b.clone()),
        Some(any_value::Value::ArrayValue(_)) | Some(any_value::Value::KvlistValue(_)) => {
            TagValue::Str(any_to_json(v).to_string())
        }
        // An index into a profiles string table: meaningless outside profiles.
        Some(any_value::Value::StringValueStrindex(i)) => TagValue::I64(i64::from(*i)),
        None => TagValue::Str(String::new()),
    }
}

/// OTLP `AnyValue` as plain JSON (arrays and objects), used for nested values and log bodies.
pub fn any_to_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
        None => J::Null,
    }
}

/// A log body or other value as display text: strings as they are, the rest as JSON.
pub fn any_to_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => tag_value(v).as_text(),
    }
}

pub fn attributes(kvs: &[KeyValue]) -> impl Iterator<Item = (&str, TagValue)> {
    kvs.iter().map(|kv| {
        (
            kv.key.as_str(),
            kv.value
                .as_ref()
                .map_or(TagValue::Str(String::new()), tag_value),
        )
    })
}

pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `service.name` of a resource, or `unknown_service` as the OpenTelemetry SDKs default to.
pub fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(any_to_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string())
}

/// Jaeger's lowercase name of an OTLP span kind; `None` for unspecified.
pub fn kind_name(kind: i32) -> Option<&'static str> {
    match SpanKind::try_from(kind).ok()? {
        SpanKind::Unspecified => None,
        SpanKind::Internal => Some("internal"),
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
    }
}

/// Parses a Jaeger `spanKind` parameter back to OTLP's number.
pub fn kind_from_name(name: &str) -> Option<i32> {
    Some(match name {
        "internal" => SpanKind::Internal as i32,
        "server" => SpanKind::Server as i32,
        "client" => SpanKind::Client as i32,
        "producer" => SpanKind::Producer as i32,
        "consumer" => SpanKind::Consumer as i32,
        "" | "unspecified" => SpanKind::Unspecified as i32,
        _ => return None,
    })
}

pub fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// Every tag Jaeger shows on a span: its attributes, then the tags derived from OTLP fields.
pub fn span_tags(scope: Option<&InstrumentationScope>, span: &Span) -> Vec<(String, TagValue)> {
    let mut tags: Vec<(String, TagValue)> = attributes(&span.attributes)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    tags.extend(span_extra_tags(scope, span));
    tags
}

/// What a span's tags besides its attributes are made of, borrowed from a decoded span
/// ([`SpanExtras::of`]) or from its encoding (`wire::SpanRef::extras`).
#[derive(Debug, Clone, Copy)]
pub struct SpanExtras<'a> {
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub kind: i32,
    pub status_code: i32,
    pub status_message: &'a str,
    pub trace_state: &'a str,
    /// Dropped attributes, events and links.
    pub dropped: [u32; 3],
}

/// One of those tags' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExtraValue<'a> {
    Str(&'a str),
    Bool(bool),
    I64(i64),
}

impl<'a> SpanExtras<'a> {
    pub fn of(scope: Option<&'a InstrumentationScope>, span: &'a Span) -> SpanExtras<'a> {
        let status = span.status.as_ref();
        SpanExtras {
            scope_name: scope.map_or("", |s| s.name.as_str()),
            scope_version: scope.map_or("", |s| s.version.as_str()),
            kind: span.kind,
            status_code: status.map_or(0, |s| s.code),
            status_message: status.map_or("", |s| s.message.as_str()),
            trace_state: &span.trace_state,
            dropped: [
                span.dropped_attributes_count,
                span.dropped_events_count,
                span.dropped_links_count,
            ],
        }
    }

    /// Calls `f` with each tag: the scope's name and version, `span.kind`, the status (`error`,
    /// `otel.status_code`, `otel.status_description`), `w3c.tracestate`, and the dropped counts
    /// that are not zero.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, ExtraValue<'a>)) {
        if !self.scope_name.is_empty() {
            f("otel.scope.name", ExtraValue::Str(self.scope_name));
        }
        if !self.scope_version.is_empty() {
            f("otel.scope.version", ExtraValue::Str(self.scope_version));
        }
        if let Some(kind) = kind_name(self.kind) {
            f("span.kind", ExtraValue::Str(kind));
        }
        match StatusCode::try_from(self.status_code).unwrap_or(StatusCode::Unset) {
            StatusCode::Error => {
                f("error", ExtraValue::Bool(true));
                f("otel.status_code", ExtraValue::Str("ERROR"));
                if !self.status_message.is_empty() {
                    f(
                        "otel.status_description",
                        ExtraValue::Str(self.status_message),
                    );
                }
            }
            StatusCode::Ok => f("otel.status_code", ExtraValue::Str("OK")),
            StatusCode::Unset => {}
        }
        if !self.trace_state.is_empty() {
            f("w3c.tracestate", ExtraValue::Str(self.trace_state));
        }
        let names = [
            "otel.dropped_attributes_count",
            "otel.dropped_events_count",
            "otel.dropped_links_count",
        ];
        for (k, n) in names.into_iter().zip(self.dropped) {
            if n > 0 {
                f(k, ExtraValue::I64(i64::from(n)));
            }
        }
    }
}

/// A span's tags besides its attributes (see [`SpanExtras::for_each`]), as Jaeger shows them.
pub fn span_extra_tags(
    scope: Option<&InstrumentationScope>,
    span: &Span,
) -> Vec<(String, TagValue)> {
    let mut tags = Vec::new();
    SpanExtras::of(scope, span).for_each(|k, v| {
        let v = match v {
            ExtraValue::Str(s) => TagValue::Str(s.to_string()),
            ExtraValue::Bool(b) => TagValue::Bool(b),
            ExtraValue::I64(n) => TagValue::I64(n),
        };
        tags.push((k.to_string(), v));
    });
    tags
}

/// Process tags: resource attributes other than `service.name`.
pub fn process_tags(resource: Option<&Resource>) -> Vec<(String, TagValue)> {
    resource
        .map(|r| {
            attributes(&r.attributes)
                .filter(|(k, _)| *k != "service.name")
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default()
}

/// A 16-byte trace id from bytes, `None` when the length is wrong or the id is all zeros.
pub fn trace_id(bytes: &[u8]) -> Option<[u8; 16]> {
    let id: [u8; 16] = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

pub fn span_id(bytes: &[u8]) -> Option<[u8; 8]> {
    let id: [u8; 8] = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

/// Parses a trace id given as hex; shorter ids are left-padded with zeros, as Jaeger prints
/// them without leading zeros.
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{t:0>32}");
    let mut out = [0u8; 16];
    hex::decode_to_slice(padded, &mut out).ok()?;
    Some(out)
}

/// An OTLP string attribute.
pub fn string_kv(k: &str, v: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_parsing() {
        let cases: &[(&str, bool)] = &[
            ("0123456789abcdef0123456789abcdef", true),
            ("123456789abcdef0123456789abcdef", true),
            ("ABCDEF", true),
            ("", false),
            ("xyz", false),
            ("0123456789abcdef0123456789abcdef00", false),
        ];
        for (input, ok) in cases {
            assert_eq!(parse_trace_id(input).is_some(), *ok, "{input}");
        }
        assert_eq!(
            parse_trace_id("abc").unwrap(),
            parse_trace_id("00000000000000000000000000000abc").unwrap()
        );
    }

    #[test]
    fn error_status_derives_jaeger_tags() {
        let span = Span {
            kind: SpanKind::Server as i32,
            status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        let tags = span_tags(None, &span);
        assert!(tags.contains(&("error".into(), TagValue::Bool(true))));
        assert!(tags.contains(&("span.kind".into(), TagValue::Str("server".into()))));
        assert!(tags.contains(&(
            "otel.status_description".into(),
            TagValue::Str("boom".into())
        )));
    }
}
