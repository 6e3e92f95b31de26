//! The chunk codec: a batch of OTLP spans or log records, as stored in one SQLite row.
//!
//! Layout (documented in `migrations/README.md` beside the schema):
//! `magic "SLCK" | version u8 = 1 | signal u8 (1 spans, 2 logs) | raw_len u32 LE | zstd frame`,
//! where the zstd frame holds the protobuf encoding of `TracesData` or `LogsData`. Keeping OTLP's
//! own message means nothing OTLP carries is lost (resource, scope, dropped counts, flags ...).

use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;

const MAGIC: &[u8; 4] = b"SLCK";
const VERSION: u8 = 1;
const HEADER: usize = 10;
/// Refuse to inflate anything claiming more than this (a chunk is at most a few MiB).
const MAX_RAW: usize = 256 << 20;
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Spans = 1,
    Logs = 2,
}

impl Signal {
    pub fn from_i64(v: i64) -> Option<Signal> {
        match v {
            1 => Some(Signal::Spans),
            2 => Some(Signal::Logs),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk header is not SLCK v1")]
    Header,
    #[error("chunk holds {found:?}, expected {expected:?}")]
    Signal { expected: Signal, found: u8 },
    #[error("chunk inflate failed: {0}")]
    Inflate(std::io::Error),
    #[error("chunk protobuf decode failed: {0}")]
    Decode(#[from] prost::DecodeError),
}

fn encode(signal: Signal, raw: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL).expect("zstd compress into memory");
    let mut out = Vec::with_capacity(HEADER + compressed.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(signal as u8);
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&compressed);
    out
}

fn decode(signal: Signal, data: &[u8]) -> Result<Vec<u8>, ChunkError> {
    if data.len() < HEADER || &data[..4] != MAGIC || data[4] != VERSION {
        return Err(ChunkError::Header);
    }
    if data[5] != signal as u8 {
        return Err(ChunkError::Signal {
            expected: signal,
            found: data[5],
        });
    }
    let raw_len = u32::from_le_bytes(data[6..10].try_into().expect("4 bytes")) as usize;
    if raw_len > MAX_RAW {
        return Err(ChunkError::Header);
    }
    zstd::bulk::decompress(&data[HEADER..], raw_len).map_err(ChunkError::Inflate)
}

pub fn encode_spans(data: &TracesData) -> Vec<u8> {
    encode_spans_raw(&data.encode_to_vec())
}

/// A chunk of spans from the protobuf encoding of its `TracesData`.
pub fn encode_spans_raw(traces_data: &[u8]) -> Vec<u8> {
    encode(Signal::Spans, traces_data)
}

pub fn decode_spans(data: &[u8]) -> Result<TracesData, ChunkError> {
    Ok(TracesData::decode(inflate_spans(data)?.as_slice())?)
}

/// The protobuf encoding of a span chunk's `TracesData`, to be read in place (`traces::wire`).
pub fn inflate_spans(data: &[u8]) -> Result<Vec<u8>, ChunkError> {
    decode(Signal::Spans, data)
}

pub fn encode_logs(data: &LogsData) -> Vec<u8> {
    encode(Signal::Logs, &data.encode_to_vec())
}

pub fn decode_logs(data: &[u8]) -> Result<LogsData, ChunkError> {
    Ok(LogsData::decode(decode(Signal::Logs, data)?.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn round_trip_and_corruption() {
        let data = TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "GET /".into(),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = encode_spans(&data);
        assert_eq!(decode_spans(&bytes).unwrap(), data);
        assert!(matches!(
            decode_logs(&bytes),
            Err(ChunkError::Signal { .. })
        ));
        assert!(matches!(decode_spans(&bytes[..5]), Err(ChunkError::Header)));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(decode_spans(&flipped).is_err());
        let mut huge = bytes.clone();
        huge[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_spans(&huge), Err(ChunkError::Header)));
    }
}
