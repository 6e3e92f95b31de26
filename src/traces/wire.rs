//! Stored span chunks read in place (issue 25): the protobuf encoding of `TracesData` walked
//! field by field, without decoding it into owned messages. The indexer takes each span's
//! terms straight from the bytes (no allocation per attribute, nothing to free afterwards), and
//! a trace fetch decodes only the spans of the traces it wants instead of a whole chunk.
//!
//! Only the wire format is read here (varints, fixed 32/64-bit values, length-delimited
//! fields); every length is checked against what is left, so damaged bytes give a
//! [`WireError`], never a panic. A field that occurs more than once keeps its last value, as
//! prost decodes it.

use super::model;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed span chunk: {0}")]
pub struct WireError(&'static str);

impl WireError {
    pub fn new(what: &'static str) -> WireError {
        WireError(what)
    }
}

/// One field's value as the wire format gives it.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in the order they are encoded: `(number, value)`.
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(WireError("truncated varint"));
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WireError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.buf.len())
            .ok_or(WireError("field longer than its message"))?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0)
            .ok_or(WireError("bad field number"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            _ => return Err(WireError("unsupported wire type")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.buf = &[];
        }
        Some(field)
    }
}

fn text(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError("string is not UTF-8"))
}

/// Where a span sits: the encodings of its resource and scope (`None` when absent), and which
/// resource and scope of the chunk they are, counted from 0 (to cache what is derived from them).
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub resource: Option<&'a [u8]>,
    pub scope: Option<&'a [u8]>,
    pub resource_ord: usize,
    pub scope_ord: usize,
}

/// Calls `f` with every span's encoding in a `TracesData` encoding, in order, with its place.
pub fn for_each_span<'a, E: From<WireError>>(
    traces_data: &'a [u8],
    mut f: impl FnMut(&Place<'a>, &'a [u8]) -> Result<(), E>,
) -> Result<(), E> {
    let (mut resource_ord, mut scope_ord) = (0, 0);
    for field in Fields::new(traces_data) {
        let (1, Value::Bytes(rs)) = field? else {
            continue;
        };
        let resource = last_bytes(rs, 1)?;
        for field in Fields::new(rs) {
            let (2, Value::Bytes(ss)) = field? else {
                continue;
            };
            let scope = last_bytes(ss, 1)?;
            let place = Place {
                resource,
                scope,
                resource_ord,
                scope_ord,
            };
            for field in Fields::new(ss) {
                if let (2, Value::Bytes(span)) = field? {
                    f(&place, span)?;
                }
            }
            scope_ord += 1;
        }
        resource_ord += 1;
    }
    Ok(())
}

/// The last length-delimited field `number` of a message (`None` when it has none).
fn last_bytes(message: &[u8], number: u32) -> Result<Option<&[u8]>, WireError> {
    let mut last = None;
    for field in Fields::new(message) {
        if let (n, Value::Bytes(b)) = field?
            && n == number
        {
            last = Some(b);
        }
    }
    Ok(last)
}

/// A span's trace id (empty when it has none), read without the rest of the span.
pub fn trace_id(span: &[u8]) -> Result<&[u8], WireError> {
    Ok(last_bytes(span, 1)?.unwrap_or_default())
}

/// An attribute value as encoded (`AnyValue`).
#[derive(Debug, Clone, Copy)]
pub enum AnyRef<'a> {
    /// No value set.
    None,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    StrIndex(i32),
    /// An array or key-value list: the whole `AnyValue` encoding, decoded when needed.
    Nested(&'a [u8]),
}

impl<'a> AnyRef<'a> {
    pub fn parse(any_value: &'a [u8]) -> Result<AnyRef<'a>, WireError> {
        let mut v = AnyRef::None;
        for field in Fields::new(any_value) {
            v = match field? {
                (1, Value::Bytes(b)) => AnyRef::Str(text(b)?),
                (2, Value::Varint(x)) => AnyRef::Bool(x != 0),
                (3, Value::Varint(x)) => AnyRef::Int(x as i64),
                (4, Value::Fixed64(x)) => AnyRef::Double(f64::from_bits(x)),
                (5 | 6, Value::Bytes(_)) => AnyRef::Nested(any_value),
                (7, Value::Bytes(b)) => AnyRef::Bytes(b),
                (8, Value::Varint(x)) => AnyRef::StrIndex(x as i32),
                _ => v,
            };
        }
        Ok(v)
    }

    /// The JSON of a nested value, as [`model::any_to_json`] writes it.
    pub fn nested_json(any_value: &[u8]) -> Result<String, WireError> {
        use prost::Message as _;
        let v = opentelemetry_proto::tonic::common::v1::AnyValue::decode(any_value)
            .map_err(|_| WireError("undecodable nested value"))?;
        Ok(model::any_to_json(&v).to_string())
    }
}

/// One attribute: its key and value.
fn key_value(kv: &[u8]) -> Result<(&str, AnyRef<'_>), WireError> {
    let (mut key, mut value) = ("", AnyRef::None);
    for field in Fields::new(kv) {
        match field? {
            (1, Value::Bytes(b)) => key = text(b)?,
            (2, Value::Bytes(b)) => value = AnyRef::parse(b)?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// The attributes of a message whose attributes are field `number` (a span's are 9, an
/// event's 3).
fn attributes<'a>(
    message: &'a [u8],
    number: u32,
    f: &mut impl FnMut(&'a str, AnyRef<'a>),
) -> Result<(), WireError> {
    for field in Fields::new(message) {
        if let (n, Value::Bytes(kv)) = field?
            && n == number
        {
            let (k, v) = key_value(kv)?;
            f(k, v);
        }
    }
    Ok(())
}

/// A scope's name and version.
pub fn scope_name_version(scope: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut name, mut version) = ("", "");
    for field in Fields::new(scope) {
        match field? {
            (1, Value::Bytes(b)) => name = text(b)?,
            (2, Value::Bytes(b)) => version = text(b)?,
            _ => {}
        }
    }
    Ok((name, version))
}

/// What search needs of a span, borrowed from its encoding.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanRef<'a> {
    raw: &'a [u8],
    pub trace_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub trace_state: &'a str,
    pub status_code: i32,
    pub status_message: &'a str,
    pub dropped_attributes: u32,
    pub dropped_events: u32,
    pub dropped_links: u32,
}

impl<'a> SpanRef<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<SpanRef<'a>, WireError> {
        let mut s = SpanRef {
            raw,
            ..Default::default()
        };
        for field in Fields::new(raw) {
            match field? {
                (1, Value::Bytes(b)) => s.trace_id = b,
                (3, Value::Bytes(b)) => s.trace_state = text(b)?,
                (5, Value::Bytes(b)) => s.name = text(b)?,
                (6, Value::Varint(x)) => s.kind = x as i32,
                (7, Value::Fixed64(x)) => s.start = x,
                (8, Value::Fixed64(x)) => s.end = x,
                (10, Value::Varint(x)) => s.dropped_attributes = x as u32,
                (12, Value::Varint(x)) => s.dropped_events = x as u32,
                (14, Value::Varint(x)) => s.dropped_links = x as u32,
                (15, Value::Bytes(status)) => {
                    for field in Fields::new(status) {
                        match field? {
                            (2, Value::Bytes(b)) => s.status_message = text(b)?,
                            (3, Value::Varint(x)) => s.status_code = x as i32,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// The span's own attributes, then its events' attributes.
    pub fn attributes(&self, mut f: impl FnMut(&'a str, AnyRef<'a>)) -> Result<(), WireError> {
        attributes(self.raw, 9, &mut f)?;
        for field in Fields::new(self.raw) {
            if let (11, Value::Bytes(event)) = field? {
                attributes(event, 3, &mut f)?;
            }
        }
        Ok(())
    }

    /// The tags a span has besides its attributes, as [`model::span_extra_tags`] lists them.
    pub fn extras(&self, scope: (&'a str, &'a str)) -> model::SpanExtras<'a> {
        model::SpanExtras {
            scope_name: scope.0,
            scope_version: scope.1,
            kind: self.kind,
            status_code: self.status_code,
            status_message: self.status_message,
            trace_state: self.trace_state,
            dropped: [
                self.dropped_attributes,
                self.dropped_events,
                self.dropped_links,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, TracesData, span::Event,
    };
    use prost::Message as _;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn sample() -> TracesData {
        let span = |n: u8| Span {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            name: format!("op{n}"),
            kind: 2,
            start_time_unix_nano: 1_000 + u64::from(n),
            end_time_unix_nano: 5_000,
            trace_state: "k=v".into(),
            attributes: vec![
                kv("s", any_value::Value::StringValue("é".into())),
                kv("i", any_value::Value::IntValue(-7)),
                kv("d", any_value::Value::DoubleValue(2.5)),
                kv("b", any_value::Value::BoolValue(true)),
                kv("x", any_value::Value::BytesValue(vec![0xab, 1])),
                kv(
                    "a",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        }],
                    }),
                ),
                KeyValue {
                    key: "none".into(),
                    value: None,
                    ..Default::default()
                },
            ],
            events: vec![Event {
                name: "e".into(),
                attributes: vec![kv("ev", any_value::Value::StringValue("1".into()))],
                ..Default::default()
            }],
            dropped_links_count: 3,
            status: Some(Status {
                code: 2,
                message: "bad".into(),
            }),
            ..Default::default()
        };
        TracesData {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv(
                            "service.name",
                            any_value::Value::StringValue("a".into()),
                        )],
                        ..Default::default()
                    }),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "lib".into(),
                                version: "1.0".into(),
                                ..Default::default()
                            }),
                            spans: vec![span(1), span(2)],
                            ..Default::default()
                        },
                        ScopeSpans {
                            scope: None,
                            spans: vec![span(3)],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(4)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn walks_spans_as_prost_decodes_them() {
        let data = sample();
        let raw = data.encode_to_vec();
        let mut seen = Vec::new();
        for_each_span(&raw, |place, span| -> Result<(), WireError> {
            let decoded = Span::decode(span).unwrap();
            let s = SpanRef::parse(span)?;
            assert_eq!(s.trace_id, decoded.trace_id.as_slice());
            assert_eq!(trace_id(span)?, decoded.trace_id.as_slice());
            assert_eq!(s.name, decoded.name);
            assert_eq!(s.kind, decoded.kind);
            assert_eq!(
                (s.start, s.end),
                (1_000 + u64::from(decoded.trace_id[0]), 5_000)
            );
            assert_eq!((s.status_code, s.status_message), (2, "bad"));
            assert_eq!((s.trace_state, s.dropped_links), ("k=v", 3));
            let mut attrs = Vec::new();
            s.attributes(|k, v| attrs.push(format!("{k}={v:?}")))?;
            assert_eq!(attrs.len(), 8, "{attrs:?}");
            assert!(attrs.contains(&"s=Str(\"é\")".to_string()));
            assert!(attrs.contains(&"i=Int(-7)".to_string()));
            assert!(attrs.contains(&"none=None".to_string()));
            assert!(attrs.contains(&"ev=Str(\"1\")".to_string()));
            let resource = place.resource.map(|r| Resource::decode(r).unwrap());
            let scope = place
                .scope
                .map(|r| InstrumentationScope::decode(r).unwrap());
            seen.push((place.resource_ord, decoded.trace_id[0], resource, scope));
            Ok(())
        })
        .unwrap();
        let expect: Vec<_> = data
            .resource_spans
            .iter()
            .enumerate()
            .flat_map(|(i, rs)| {
                rs.scope_spans.iter().flat_map(move |ss| {
                    ss.spans
                        .iter()
                        .map(move |sp| (i, sp.trace_id[0], rs.resource.clone(), ss.scope.clone()))
                })
            })
            .collect();
        assert_eq!(seen, expect);
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let raw = sample().encode_to_vec();
        for cut in 0..raw.len() {
            let _ = for_each_span(&raw[..cut], |_, span| -> Result<(), WireError> {
                let s = SpanRef::parse(span)?;
                s.attributes(|_, _| {})
            });
        }
        assert!(for_each_span(&[0x0a, 0xff], |_, _| Ok::<_, WireError>(())).is_err());
        assert!(for_each_span(&[0x0b], |_, _| Ok::<_, WireError>(())).is_err());
        let long = [0xff; 11];
        assert!(Fields::new(&long).next().unwrap().is_err());
    }
}
