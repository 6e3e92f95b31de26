//! The search index (Tantivy): one document per span and per log record, pointing back at the
//! SQLite chunk that stores it, and one per distinct resource: a resource's attributes (the
//! process tags) are indexed once on its own document, and each span or record carries only the
//! resource's key (`res`); a tag filter matches a span by the span's own terms or by its
//! resource's (issue 25: a span with 16 resource attributes cost 16 more terms). SQLite is the source of truth; the index is rebuildable. One
//! `IndexWriter` lives on the indexer thread and is committed on a timer; each commit carries the
//! highest chunk id it covers (its payload, the watermark), so on start the index catches up from
//! SQLite and a crash never loses searchability. Chunks stored but not yet committed here are kept
//! in [`Pending`], so a trace can be fetched by id the moment it is acknowledged.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;
use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::columnar::{BytesColumn, Column};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, RegexQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, Term,
};

use super::model::{self, TagValue};
use super::tagquery::{Cmp, Match, TagFilter};
use super::wire::{self, AnyRef, WireError};

const KIND_SPAN: u64 = 1;
const KIND_LOG: u64 = 2;
const KIND_RESOURCE: u64 = 3;
/// Separates a tag key from its value inside one term.
const SEP: char = '\u{1}';
/// Writer memory; one thread keeps the indexer on one core.
const WRITER_HEAP: usize = 64 << 20;

#[derive(Clone, Copy)]
pub struct Fields {
    kind: Field,
    chunk: Field,
    ord: Field,
    trace_id: Field,
    service: Field,
    operation: Field,
    span_kind: Field,
    start: Field,
    duration: Field,
    tag: Field,
    num: Field,
    text: Field,
    severity: Field,
    /// The resource document's key: on resources, spans and log records.
    res: Field,
    /// A resource's tags (`tag` and `num` terms in fields of their own, so finding the resources
    /// that match a filter reads resource postings only, never the spans').
    rtag: Field,
    rnum: Field,
}

fn schema() -> (Schema, Fields) {
    // No field norms anywhere: nothing is ranked by relevance (results are ordered by time), and
    // a norm costs a byte per document for every indexed field, 11 bytes a span (issue 25).
    let u64_indexed = NumericOptions::default().set_indexed();
    let u64_indexed_fast = u64_indexed.clone().set_fast();
    let u64_fast = NumericOptions::default().set_fast();
    let term = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false),
    );
    let mut b = Schema::builder();
    let fields = Fields {
        kind: b.add_u64_field("kind", u64_indexed.clone()),
        chunk: b.add_u64_field("chunk", u64_indexed_fast.clone()),
        ord: b.add_u64_field("ord", u64_fast.clone()),
        // The id's 16 bytes, not its 32 hex digits: half the term bytes to hash and store.
        trace_id: b.add_bytes_field("trace_id", BytesOptions::default().set_indexed().set_fast()),
        service: b.add_text_field("service", term.clone()),
        operation: b.add_text_field("operation", term.clone()),
        span_kind: b.add_u64_field("span_kind", u64_indexed.clone()),
        // Times, durations and severities are read from their columns only: a range query on a
        // fast field scans the column (Tantivy prefers it even when the field is indexed too),
        // so indexing them only added a near-unique term to every document (issue 25).
        start: b.add_u64_field("start", u64_fast.clone()),
        duration: b.add_u64_field("duration", u64_fast.clone()),
        tag: b.add_text_field("tag", term.clone()),
        num: b.add_text_field("num", term.clone()),
        text: b.add_text_field("text", words),
        severity: b.add_u64_field("severity", u64_fast),
        res: b.add_u64_field("res", u64_indexed_fast),
        rtag: b.add_text_field("rtag", term.clone()),
        rnum: b.add_text_field("rnum", term),
    };
    (b.build(), fields)
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("invalid search: {0}")]
    BadQuery(String),
}

/// Trace ids found in one chunk.
pub type TraceSet = Arc<HashSet<[u8; 16]>>;

/// Chunks committed to SQLite but not yet to the index, with the trace ids each holds.
#[derive(Default)]
pub struct Pending {
    chunks: Mutex<Vec<(i64, TraceSet)>>,
}

impl Pending {
    pub fn add(&self, chunk: i64, traces: TraceSet) {
        self.chunks.lock().push((chunk, traces));
    }

    pub fn chunks_with(&self, trace: &[u8; 16]) -> Vec<i64> {
        self.chunks
            .lock()
            .iter()
            .filter(|(_, t)| t.contains(trace))
            .map(|(c, _)| *c)
            .collect()
    }

    fn clear_through(&self, watermark: i64) {
        self.chunks.lock().retain(|(c, _)| *c > watermark);
    }

    pub fn len(&self) -> usize {
        self.chunks.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

/// What a trace search asks for; every part is optional but `limit`.
#[derive(Debug, Default, Clone)]
pub struct TraceSearch {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub span_kind: Option<i32>,
    pub tags: Vec<TagFilter>,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub limit: usize,
}

#[derive(Debug, Default, Clone)]
pub struct LogSearch {
    pub service: Option<String>,
    pub text: Option<String>,
    pub min_severity: Option<u64>,
    pub trace_id: Option<[u8; 16]>,
    pub tags: Vec<TagFilter>,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    pub limit: usize,
}

impl SearchIndex {
    pub fn open(dir: &Path) -> Result<(SearchIndex, IndexWriter), IndexError> {
        std::fs::create_dir_all(dir).map_err(tantivy::TantivyError::from)?;
        let (schema, fields) = schema();
        let open = |schema: Schema| -> Result<Index, IndexError> {
            let mmap = MmapDirectory::open(dir)
                .map_err(|e| tantivy::TantivyError::InvalidArgument(e.to_string()))?;
            Ok(Index::open_or_create(mmap, schema)?)
        };
        let index = match open(schema.clone()) {
            Ok(i) => i,
            Err(IndexError::Tantivy(tantivy::TantivyError::SchemaError(e))) => {
                // An index of an older layout: SQLite has every chunk, so the index is
                // rebuilt from it (the catch-up on start re-indexes from watermark 0).
                tracing::warn!(error = %e, "search index has an older layout; rebuilding it from the store");
                std::fs::remove_dir_all(dir).map_err(tantivy::TantivyError::from)?;
                std::fs::create_dir_all(dir).map_err(tantivy::TantivyError::from)?;
                open(schema)?
            }
            Err(e) => return Err(e),
        };
        let writer = index.writer_with_num_threads(1, WRITER_HEAP)?;
        // Note: the writer's single thread keeps indexing to one of the two cores.
        // Manual reload: the indexer reloads right after each commit, then drops the chunks it
        // covered from `Pending`; a delayed reload would leave a window where neither has them.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((
            SearchIndex {
                index,
                reader,
                fields,
            },
            writer,
        ))
    }

    /// A new writer, after the previous one died (its lock must be released first).
    pub fn new_writer(&self) -> tantivy::Result<IndexWriter> {
        self.index.writer_with_num_threads(1, WRITER_HEAP)
    }

    /// The highest chunk id the last commit covers (0 for a new index).
    pub fn watermark(&self) -> i64 {
        self.index
            .load_metas()
            .ok()
            .and_then(|m| m.payload)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.get("watermark").and_then(|w| w.as_i64()))
            .unwrap_or(0)
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// Live documents over all documents (deleted ones included until merged); 1 when empty.
    pub fn live_fraction(&self) -> f64 {
        let searcher = self.reader.searcher();
        let (live, all) = searcher
            .segment_readers()
            .iter()
            .fold((0u64, 0u64), |(l, a), s| {
                (l + u64::from(s.num_docs()), a + u64::from(s.max_doc()))
            });
        if all == 0 {
            1.0
        } else {
            live as f64 / all as f64
        }
    }

    pub fn fields_chunk(&self) -> Field {
        self.fields.chunk
    }

    /// Commits what the writer holds, recording `watermark`, and makes it visible to searches.
    pub fn commit(
        &self,
        writer: &mut IndexWriter,
        watermark: i64,
        pending: &Pending,
    ) -> Result<(), IndexError> {
        let mut prepared = writer.prepare_commit()?;
        prepared
            .set_payload(&serde_json::json!({ "version": 1, "watermark": watermark }).to_string());
        prepared.commit()?;
        self.reader.reload()?;
        pending.clear_through(watermark);
        Ok(())
    }

    /// Chunk ids holding spans of `trace`, as far as the index knows.
    pub fn chunks_for_trace(&self, trace: &[u8; 16]) -> Result<Vec<i64>, IndexError> {
        let q = BooleanQuery::new(vec![
            (Occur::Must, term_u64(self.fields.kind, KIND_SPAN)),
            (Occur::Must, term_bytes(self.fields.trace_id, trace)),
        ]);
        let set = self.reader.searcher().search(&q, &U64Set("chunk"))?;
        let mut v: Vec<i64> = set.into_iter().map(|c| c as i64).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Trace ids with at least one span matching every condition, newest first, at most `limit`.
    pub fn search_traces(&self, s: &TraceSearch) -> Result<Vec<[u8; 16]>, IndexError> {
        let f = self.fields;
        let mut clauses = vec![term_u64(f.kind, KIND_SPAN)];
        if let Some(svc) = &s.service {
            clauses.push(term_text(f.service, svc));
        }
        if let Some(op) = &s.operation {
            clauses.push(term_text(f.operation, op));
        }
        if let Some(k) = s.span_kind {
            clauses.push(term_u64(f.span_kind, k as u64));
        }
        if let Some(r) = range_u64(f.start, s.start_us, s.end_us) {
            clauses.push(r);
        }
        if let Some(r) = range_u64(f.duration, s.min_duration_ns, s.max_duration_ns) {
            clauses.push(r);
        }
        let query = self.with_tags(clauses, &s.tags)?;
        let searcher = self.reader.searcher();
        let limit = s.limit.max(1);
        let mut want = (limit * 8).max(256);
        loop {
            let top: Vec<(Option<u64>, DocAddress)> = searcher.search(
                &query,
                &TopDocs::with_limit(want).order_by_fast_field::<u64>("start", Order::Desc),
            )?;
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            let mut columns: HashMap<u32, Option<BytesColumn>> = HashMap::new();
            let mut bytes = Vec::with_capacity(16);
            for (_, addr) in &top {
                let col = columns.entry(addr.segment_ord).or_insert_with(|| {
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .bytes("trace_id")
                        .ok()
                        .flatten()
                });
                let Some(col) = col else { continue };
                let Some(ord) = col.term_ords(addr.doc_id).next() else {
                    continue;
                };
                bytes.clear();
                if col.ord_to_bytes(ord, &mut bytes).is_ok()
                    && let Some(id) = padded_trace_id(&bytes)
                    && seen.insert(id)
                {
                    out.push(id);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if top.len() < want {
                return Ok(out);
            }
            want *= 4;
        }
    }

    /// The query of a log search: every condition must hold.
    fn log_query(&self, s: &LogSearch) -> Result<Box<dyn Query>, IndexError> {
        let f = self.fields;
        let mut clauses = vec![term_u64(f.kind, KIND_LOG)];
        if let Some(svc) = &s.service {
            clauses.push(term_text(f.service, svc));
        }
        if let Some(t) = &s.trace_id {
            clauses.push(term_bytes(f.trace_id, t));
        }
        if let Some(r) = range_u64(f.severity, s.min_severity, None) {
            clauses.push(r);
        }
        if let Some(r) = range_u64(f.start, s.start_us, s.end_us) {
            clauses.push(r);
        }
        if let Some(text) = s.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
            parser.set_conjunction_by_default();
            let q = parser
                .parse_query(text)
                .map_err(|e| IndexError::BadQuery(format!("text query: {e}")))?;
            clauses.push(q);
        }
        self.with_tags(clauses, &s.tags)
    }

    /// Log records matching every condition, newest first: `(chunk, ordinal in chunk)`.
    pub fn search_logs(&self, s: &LogSearch) -> Result<Vec<(i64, u64)>, IndexError> {
        let query = self.log_query(s)?;
        let searcher = self.reader.searcher();
        let top: Vec<(Option<u64>, DocAddress)> = searcher.search(
            &query,
            &TopDocs::with_limit(s.limit.max(1)).order_by_fast_field::<u64>("start", Order::Desc),
        )?;
        let mut out = Vec::with_capacity(top.len());
        let mut columns: HashMap<u32, (Column<u64>, Column<u64>)> = HashMap::new();
        for (_, addr) in top {
            if let std::collections::hash_map::Entry::Vacant(e) = columns.entry(addr.segment_ord) {
                let ff = searcher.segment_reader(addr.segment_ord).fast_fields();
                e.insert((ff.u64("chunk")?, ff.u64("ord")?));
            }
            let (chunk, ord) = &columns[&addr.segment_ord];
            if let (Some(c), Some(o)) = (chunk.first(addr.doc_id), ord.first(addr.doc_id)) {
                out.push((c as i64, o));
            }
        }
        Ok(out)
    }

    /// How many log records match `s` per time bucket and severity class: `buckets` buckets of
    /// `step_us` from `start_us`, counted from the index's fast fields without reading a record.
    pub fn log_volume(
        &self,
        s: &LogSearch,
        start_us: u64,
        step_us: u64,
        buckets: usize,
    ) -> Result<Vec<[u64; LEVELS]>, IndexError> {
        let query = self.log_query(s)?;
        let searcher = self.reader.searcher();
        let collector = Volume {
            start_us,
            step_us: step_us.max(1),
            buckets,
        };
        Ok(searcher.search(&query, &collector)?)
    }

    fn with_tags(
        &self,
        mut must: Vec<Box<dyn Query>>,
        tags: &[TagFilter],
    ) -> Result<Box<dyn Query>, IndexError> {
        let mut must_not: Vec<Box<dyn Query>> = Vec::new();
        for t in tags {
            let q = self.or_resources(t)?;
            if t.negated {
                must_not.push(q);
            } else {
                must.push(q);
            }
        }
        if must.is_empty() {
            must.push(Box::new(AllQuery));
        }
        let clauses = must
            .into_iter()
            .map(|q| (Occur::Must, q))
            .chain(must_not.into_iter().map(|q| (Occur::MustNot, q)))
            .collect();
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// `q` over a span's or record's own terms, or over its resource's: the resource documents
    /// that match `q` are found first, and their keys join `q` as alternatives.
    fn or_resources(&self, t: &TagFilter) -> Result<Box<dyn Query>, IndexError> {
        let f = self.fields;
        let q = self.tag_query(t, f.tag, f.num)?;
        let on_resources = self.tag_query(t, f.rtag, f.rnum)?;
        let keys = self
            .reader
            .searcher()
            .search(&on_resources, &U64Set("res"))?;
        if keys.is_empty() {
            return Ok(q);
        }
        let mut keys: Vec<u64> = keys.into_iter().collect();
        keys.sort_unstable();
        let terms = keys.into_iter().map(|k| Term::from_field_u64(f.res, k));
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Should, q),
            (Occur::Should, Box::new(TermSetQuery::new(terms))),
        ])))
    }

    /// A tag filter over the `tag` and `num` terms of `tag` and `num` (spans' and records', or
    /// resources' fields).
    fn tag_query(
        &self,
        t: &TagFilter,
        tag: Field,
        num: Field,
    ) -> Result<Box<dyn Query>, IndexError> {
        let key = &t.key;
        Ok(match &t.matcher {
            Match::Exact(v) => term_text(tag, &format!("{key}{SEP}{v}")),
            Match::Regex(re) => regex_query(tag, key, re)?,
            Match::Exists => regex_query(tag, key, "(?s:.*)")?,
            Match::Number(cmp, n) => {
                let at = |x: f64| Term::from_field_text(num, &num_term(key, x));
                let (lo, hi) = match cmp {
                    Cmp::Gt => (Bound::Excluded(at(*n)), Bound::Included(at(f64::INFINITY))),
                    Cmp::Ge => (Bound::Included(at(*n)), Bound::Included(at(f64::INFINITY))),
                    Cmp::Lt => (
                        Bound::Included(at(f64::NEG_INFINITY)),
                        Bound::Excluded(at(*n)),
                    ),
                    Cmp::Le => (
                        Bound::Included(at(f64::NEG_INFINITY)),
                        Bound::Included(at(*n)),
                    ),
                };
                Box::new(RangeQuery::new(lo, hi))
            }
        })
    }
}

fn regex_query(field: Field, key: &str, re: &str) -> Result<Box<dyn Query>, IndexError> {
    super::tagquery::check_regex(re).map_err(|e| IndexError::BadQuery(e.to_string()))?;
    let pattern = format!("{}\\x01(?:{re})", regex::escape(key));
    RegexQuery::from_pattern(&pattern, field)
        .map(|q| Box::new(q) as Box<dyn Query>)
        .map_err(|e| IndexError::BadQuery(format!("regular expression {re:?}: {e}")))
}

fn term_u64(field: Field, v: u64) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_u64(field, v),
        IndexRecordOption::Basic,
    ))
}

fn term_bytes(field: Field, v: &[u8]) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_bytes(field, v),
        IndexRecordOption::Basic,
    ))
}

/// A 16-byte trace id from an indexed one; a shorter id is padded with leading zeros (as its
/// hex form is by [`model::parse_trace_id`]), a longer one is not a trace id.
fn padded_trace_id(bytes: &[u8]) -> Option<[u8; 16]> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let mut out = [0u8; 16];
    out[16 - bytes.len()..].copy_from_slice(bytes);
    Some(out)
}

fn term_text(field: Field, v: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, v),
        IndexRecordOption::Basic,
    ))
}

fn range_u64(field: Field, lo: Option<u64>, hi: Option<u64>) -> Option<Box<dyn Query>> {
    if lo.is_none() && hi.is_none() {
        return None;
    }
    let b = |v: Option<u64>| match v {
        Some(v) => Bound::Included(Term::from_field_u64(field, v)),
        None => Bound::Unbounded,
    };
    Some(Box::new(RangeQuery::new(b(lo), b(hi))))
}

/// `key SEP hex(sortable bits)`: lexicographic order of the hex equals numeric order.
fn num_term(key: &str, x: f64) -> String {
    let mut s = String::new();
    write_num_term(&mut s, key, x);
    s
}

/// `key SEP` and the number as 16 hex digits that sort as the numbers do.
fn write_num_term(out: &mut String, key: &str, x: f64) {
    use std::fmt::Write as _;
    let bits = x.to_bits();
    let sortable = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    let _ = write!(out, "{key}{SEP}{sortable:016x}");
}

/// Collects the distinct values of a u64 fast field over the matching documents.
struct U64Set(&'static str);

impl Collector for U64Set {
    type Fruit = HashSet<u64>;
    type Child = U64SetSegment;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<U64SetSegment> {
        Ok(U64SetSegment {
            column: segment.fast_fields().u64(self.0)?,
            out: HashSet::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashSet<u64>>) -> tantivy::Result<HashSet<u64>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

struct U64SetSegment {
    column: Column<u64>,
    out: HashSet<u64>,
}

impl SegmentCollector for U64SetSegment {
    type Fruit = HashSet<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(c) = self.column.first(doc) {
            self.out.insert(c);
        }
    }

    fn harvest(self) -> HashSet<u64> {
        self.out
    }
}

/// Severity classes of OTLP's severity numbers: unspecified, TRACE (1-4), DEBUG (5-8), INFO
/// (9-12), WARN (13-16), ERROR (17-20), FATAL (21-24).
pub const LEVELS: usize = 7;
pub const LEVEL_NAMES: [&str; LEVELS] = [
    "unknown", "trace", "debug", "info", "warn", "error", "fatal",
];

/// The class of an OTLP severity number.
pub fn level_class(severity: u64) -> usize {
    match severity {
        1..=24 => (severity as usize - 1) / 4 + 1,
        _ => 0,
    }
}

/// Counts matching log records per time bucket and severity class.
struct Volume {
    start_us: u64,
    step_us: u64,
    buckets: usize,
}

struct VolumeSegment {
    start: Column<u64>,
    severity: Column<u64>,
    origin: u64,
    step: u64,
    out: Vec<[u64; LEVELS]>,
}

impl Collector for Volume {
    type Fruit = Vec<[u64; LEVELS]>;
    type Child = VolumeSegment;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<VolumeSegment> {
        let ff = segment.fast_fields();
        Ok(VolumeSegment {
            start: ff.u64("start")?,
            severity: ff.u64("severity")?,
            origin: self.start_us,
            step: self.step_us,
            out: vec![[0; LEVELS]; self.buckets],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut out = vec![[0; LEVELS]; self.buckets];
        for f in fruits {
            for (a, b) in out.iter_mut().zip(f) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for VolumeSegment {
    type Fruit = Vec<[u64; LEVELS]>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(t) = self.start.first(doc) else {
            return;
        };
        let Some(i) = t
            .checked_sub(self.origin)
            .map(|d| (d / self.step) as usize)
            .filter(|i| *i < self.out.len())
        else {
            return;
        };
        let level = level_class(self.severity.first(doc).unwrap_or(0));
        self.out[i][level] += 1;
    }

    fn harvest(self) -> Self::Fruit {
        self.out
    }
}

/// Builds index documents; shared by the live indexer and the catch-up on start.
pub struct DocBuilder {
    pub fields: Fields,
    pub max_value_len: usize,
    /// Keys of the resource documents given to the current writer, with the resource's service
    /// name (a restart, or a new writer after a failure, indexes each resource it meets once
    /// more; a duplicate resource document matches exactly as the first).
    pub resources: Mutex<HashMap<u64, String>>,
}

/// Why a chunk's spans were not all indexed: the index failed, or the chunk is damaged.
enum SpansError {
    Index(tantivy::TantivyError),
    Chunk(WireError),
}

impl From<tantivy::TantivyError> for SpansError {
    fn from(e: tantivy::TantivyError) -> Self {
        SpansError::Index(e)
    }
}

impl From<WireError> for SpansError {
    fn from(e: WireError) -> Self {
        SpansError::Chunk(e)
    }
}

/// A resource's key: a hash of its attributes (its whole protobuf encoding).
fn resource_key(r: Option<&Resource>) -> u64 {
    use prost::Message as _;
    let bytes = r.map(|r| r.encode_to_vec()).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Reused text buffers: a tag's index terms are written here, so adding one allocates nothing.
struct TermBuf {
    term: String,
    value: String,
    /// The fields the terms go to: `tag`/`num`, or a resource's `rtag`/`rnum`.
    fields: (Field, Field),
}

impl TermBuf {
    fn new(tag: Field, num: Field) -> TermBuf {
        TermBuf {
            term: String::new(),
            value: String::new(),
            fields: (tag, num),
        }
    }
}

impl DocBuilder {
    /// The `tag` term `key SEP text` (skipped when the value is longer than the limit).
    fn tag_text(
        &self,
        doc: &mut TantivyDocument,
        to: Field,
        buf: &mut String,
        k: &str,
        text: &str,
    ) {
        if text.len() <= self.max_value_len {
            buf.clear();
            buf.push_str(k);
            buf.push(SEP);
            buf.push_str(text);
            doc.add_text(to, buf.as_str());
        }
    }

    /// The `num` term of a numeric tag (order-preserving, so ranges are term ranges).
    fn tag_num(&self, doc: &mut TantivyDocument, to: Field, buf: &mut String, k: &str, x: f64) {
        if !x.is_nan() {
            buf.clear();
            write_num_term(buf, k, x);
            doc.add_text(to, buf.as_str());
        }
    }

    /// One tag from its OTLP value, with the same text and number as [`model::tag_value`] gives.
    fn tag_any(&self, doc: &mut TantivyDocument, b: &mut TermBuf, k: &str, v: Option<&AnyValue>) {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let r = match v.and_then(|v| v.value.as_ref()) {
            None => AnyRef::None,
            Some(Value::StringValue(s)) => AnyRef::Str(s),
            Some(Value::BoolValue(x)) => AnyRef::Bool(*x),
            Some(Value::IntValue(i)) => AnyRef::Int(*i),
            Some(Value::DoubleValue(d)) => AnyRef::Double(*d),
            Some(Value::BytesValue(x)) => AnyRef::Bytes(x),
            Some(Value::StringValueStrindex(i)) => AnyRef::StrIndex(*i),
            Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => {
                let json = v
                    .map(|v| model::any_to_json(v).to_string())
                    .unwrap_or_default();
                self.tag_text(doc, b.fields.0, &mut b.term, k, &json);
                return;
            }
        };
        self.tag_ref(doc, b, k, r)
    }

    /// One tag from its value as the wire reader gives it.
    fn tag_ref(&self, doc: &mut TantivyDocument, b: &mut TermBuf, k: &str, v: AnyRef<'_>) {
        use std::fmt::Write as _;
        let TermBuf {
            term,
            value,
            fields: (tag, num),
        } = b;
        let (tag, num) = (*tag, *num);
        value.clear();
        let number = match v {
            AnyRef::Str(s) => {
                self.tag_text(doc, tag, term, k, s);
                return;
            }
            AnyRef::None => {
                self.tag_text(doc, tag, term, k, "");
                return;
            }
            AnyRef::Bool(x) => {
                self.tag_text(doc, tag, term, k, if x { "true" } else { "false" });
                return;
            }
            AnyRef::Int(i) => {
                let _ = write!(value, "{i}");
                Some(i as f64)
            }
            AnyRef::StrIndex(i) => {
                let _ = write!(value, "{i}");
                Some(f64::from(i))
            }
            AnyRef::Double(d) => {
                let _ = write!(value, "{d}");
                Some(d)
            }
            AnyRef::Bytes(bytes) => {
                for x in bytes {
                    let _ = write!(value, "{x:02x}");
                }
                None
            }
            AnyRef::Nested(any_value) => {
                // A value the wire reader took apart decodes; if not, it has no terms.
                let Ok(json) = AnyRef::nested_json(any_value) else {
                    return;
                };
                value.push_str(&json);
                None
            }
        };
        self.tag_text(doc, tag, term, k, value);
        if let Some(x) = number {
            self.tag_num(doc, num, term, k, x);
        }
    }

    /// A span's tags besides its attributes, with the terms [`Self::add_tags`] gives them.
    fn add_extras(&self, doc: &mut TantivyDocument, b: &mut TermBuf, extras: &model::SpanExtras) {
        extras.for_each(|k, v| {
            let v = match v {
                model::ExtraValue::Str(s) => AnyRef::Str(s),
                model::ExtraValue::Bool(x) => AnyRef::Bool(x),
                model::ExtraValue::I64(n) => AnyRef::Int(n),
            };
            self.tag_ref(doc, b, k, v)
        });
    }

    fn add_tags(&self, doc: &mut TantivyDocument, b: &mut TermBuf, tags: &[(String, TagValue)]) {
        for (k, v) in tags {
            match v {
                TagValue::Str(s) => self.tag_text(doc, b.fields.0, &mut b.term, k, s),
                _ => {
                    let text = v.as_text();
                    self.tag_text(doc, b.fields.0, &mut b.term, k, &text);
                    if let Some(x) = v.as_f64() {
                        self.tag_num(doc, b.fields.1, &mut b.term, k, x);
                    }
                }
            }
        }
    }

    fn add_attributes(&self, doc: &mut TantivyDocument, b: &mut TermBuf, kvs: &[KeyValue]) {
        for kv in kvs {
            self.tag_any(doc, b, &kv.key, kv.value.as_ref());
        }
    }

    /// Indexes a resource's document under `key` if the writer has not had it; returns its
    /// service name.
    fn resource_doc(
        &self,
        writer: &IndexWriter,
        key: u64,
        r: Option<&Resource>,
    ) -> tantivy::Result<String> {
        let service = model::service_name(r);
        let f = self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_u64(f.kind, KIND_RESOURCE);
        doc.add_u64(f.res, key);
        let mut rb = TermBuf::new(f.rtag, f.rnum);
        self.add_tags(&mut doc, &mut rb, &model::process_tags(r));
        writer.add_document(doc)?;
        self.resources.lock().insert(key, service.clone());
        Ok(service)
    }

    /// The key of a resource, indexing its document first if the writer has not had it.
    fn resource(&self, writer: &IndexWriter, r: Option<&Resource>) -> tantivy::Result<u64> {
        let key = resource_key(r);
        if !self.resources.lock().contains_key(&key) {
            self.resource_doc(writer, key, r)?;
        }
        Ok(key)
    }

    /// The key and service name of a resource given as its encoding (`None`: no resource),
    /// indexing its document first if the writer has not had it.
    fn resource_raw(
        &self,
        writer: &IndexWriter,
        raw: Option<&[u8]>,
    ) -> Result<(u64, String), SpansError> {
        use prost::Message as _;
        let key = xxhash_rust::xxh3::xxh3_64(raw.unwrap_or_default());
        if let Some(service) = self.resources.lock().get(&key) {
            return Ok((key, service.clone()));
        }
        let r = raw
            .map(Resource::decode)
            .transpose()
            .map_err(|_| WireError::new("undecodable resource"))?;
        Ok((key, self.resource_doc(writer, key, r.as_ref())?))
    }

    /// Indexes a chunk's spans from the protobuf encoding of its `TracesData`, read in place.
    /// The outer error is the index's (the writer is done for); the inner one says the chunk is
    /// damaged (the spans before the damage are indexed).
    pub fn add_spans(
        &self,
        writer: &IndexWriter,
        chunk: i64,
        traces_data: &[u8],
    ) -> tantivy::Result<Result<(), WireError>> {
        let f = self.fields;
        let mut ord = 0u64;
        let mut b = TermBuf::new(f.tag, f.num);
        let mut resource: Option<(usize, u64, String)> = None;
        let walked = wire::for_each_span(traces_data, |place, raw| -> Result<(), SpansError> {
            if resource.as_ref().is_none_or(|r| r.0 != place.resource_ord) {
                let (key, service) = self.resource_raw(writer, place.resource)?;
                resource = Some((place.resource_ord, key, service));
            }
            let Some((_, res, service)) = &resource else {
                unreachable!("set above")
            };
            let scope = place
                .scope
                .map(wire::scope_name_version)
                .transpose()?
                .unwrap_or(("", ""));
            let span = wire::SpanRef::parse(raw)?;
            let mut doc = TantivyDocument::new();
            doc.add_u64(f.kind, KIND_SPAN);
            doc.add_u64(f.chunk, chunk as u64);
            doc.add_u64(f.ord, ord);
            ord += 1;
            doc.add_bytes(f.trace_id, span.trace_id);
            doc.add_text(f.service, service);
            // The name is matched whole (`operation`); no search tokenises span names.
            doc.add_text(f.operation, span.name);
            doc.add_u64(f.span_kind, span.kind.max(0) as u64);
            doc.add_u64(f.start, span.start / 1000);
            doc.add_u64(f.duration, span.end.saturating_sub(span.start));
            span.attributes(|k, v| self.tag_ref(&mut doc, &mut b, k, v))?;
            self.add_extras(&mut doc, &mut b, &span.extras(scope));
            doc.add_u64(f.res, *res);
            writer.add_document(doc)?;
            Ok(())
        });
        match walked {
            Ok(()) => Ok(Ok(())),
            Err(SpansError::Chunk(e)) => Ok(Err(e)),
            Err(SpansError::Index(e)) => Err(e),
        }
    }

    pub fn add_logs(
        &self,
        writer: &IndexWriter,
        chunk: i64,
        data: &LogsData,
    ) -> tantivy::Result<()> {
        let f = self.fields;
        let mut ord = 0u64;
        let mut b = TermBuf::new(f.tag, f.num);
        for rl in &data.resource_logs {
            let service = model::service_name(rl.resource.as_ref());
            let res = self.resource(writer, rl.resource.as_ref())?;
            for sl in &rl.scope_logs {
                for rec in &sl.log_records {
                    let mut doc = TantivyDocument::new();
                    doc.add_u64(f.kind, KIND_LOG);
                    doc.add_u64(f.chunk, chunk as u64);
                    doc.add_u64(f.ord, ord);
                    ord += 1;
                    if !rec.trace_id.is_empty() {
                        doc.add_bytes(f.trace_id, &rec.trace_id);
                    }
                    doc.add_text(f.service, &service);
                    let time = if rec.time_unix_nano != 0 {
                        rec.time_unix_nano
                    } else {
                        rec.observed_time_unix_nano
                    };
                    doc.add_u64(f.start, time / 1000);
                    doc.add_u64(f.severity, rec.severity_number.max(0) as u64);
                    if let Some(body) = &rec.body {
                        doc.add_text(f.text, model::any_to_text(body));
                    }
                    self.add_attributes(&mut doc, &mut b, &rec.attributes);
                    if !rec.severity_text.is_empty() {
                        self.tag_text(&mut doc, f.tag, &mut b.term, "severity", &rec.severity_text);
                    }
                    doc.add_u64(f.res, res);
                    writer.add_document(doc)?;
                }
            }
        }
        Ok(())
    }

    pub fn delete_chunk(&self, writer: &IndexWriter, chunk: i64) {
        writer.delete_term(Term::from_field_u64(self.fields.chunk, chunk as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_an_older_layout_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The layout before resource documents: no `res` field.
            let mut b = Schema::builder();
            b.add_u64_field("kind", tantivy::schema::INDEXED | tantivy::schema::FAST);
            let index = Index::create_in_dir(dir.path(), b.build()).unwrap();
            let mut w: IndexWriter = index.writer_with_num_threads(1, 15 << 20).unwrap();
            w.commit().unwrap();
        }
        let (search, _w) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(search.watermark(), 0, "indexed again from the start");
        assert!(search.index.schema().get_field("res").is_ok());
    }

    /// Every tag a span shows (its attributes, its events', the extras, its resource's) is found
    /// by an exact search on its text, numbers by a range, and a wrong value finds nothing: the
    /// terms taken from the encoding in place are those of the decoded values.
    #[test]
    fn every_tag_of_an_encoded_span_is_searchable() {
        use opentelemetry_proto::tonic::common::v1::{
            ArrayValue, InstrumentationScope, KeyValueList, any_value::Value,
        };
        use opentelemetry_proto::tonic::trace::v1::{
            ResourceSpans, ScopeSpans, Span, Status, TracesData, span::Event,
        };
        use prost::Message as _;
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let resource = Resource {
            attributes: vec![
                kv("service.name", Value::StringValue("checkout".into())),
                kv("host.name", Value::StringValue("gpu-7".into())),
                kv("host.cores", Value::IntValue(64)),
            ],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "lib".into(),
            version: "2.1".into(),
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![7; 16],
            span_id: vec![1; 8],
            name: "GET /cart".into(),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            trace_state: "vendor=x".into(),
            attributes: vec![
                kv("http.route", Value::StringValue("/cart/{id}".into())),
                kv("http.status_code", Value::IntValue(503)),
                kv("ratio", Value::DoubleValue(0.25)),
                kv("cached", Value::BoolValue(false)),
                kv("blob", Value::BytesValue(vec![0xde, 0xad])),
                kv(
                    "list",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("a".into())),
                        }],
                    }),
                ),
                kv(
                    "map",
                    Value::KvlistValue(KeyValueList {
                        values: vec![kv("k", Value::IntValue(1))],
                    }),
                ),
                kv("idx", Value::StringValueStrindex(4)),
                KeyValue {
                    key: "empty".into(),
                    value: None,
                    ..Default::default()
                },
            ],
            events: vec![Event {
                name: "retry".into(),
                attributes: vec![kv("attempt", Value::IntValue(2))],
                ..Default::default()
            }],
            dropped_attributes_count: 5,
            status: Some(Status {
                code: 2,
                message: "upstream reset".into(),
            }),
            ..Default::default()
        };
        let mut tags: Vec<(String, TagValue)> = model::attributes(&span.attributes)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        tags.extend(model::attributes(&span.events[0].attributes).map(|(k, v)| (k.to_string(), v)));
        tags.extend(model::span_extra_tags(Some(&scope), &span));
        tags.extend(model::process_tags(Some(&resource)));
        assert_eq!(tags.len(), 9 + 1 + 8 + 2, "{tags:?}");
        let data = TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope),
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let (search, mut writer) = SearchIndex::open(dir.path()).unwrap();
        let builder = DocBuilder {
            fields: search.fields(),
            max_value_len: 4096,
            resources: Mutex::new(HashMap::new()),
        };
        builder
            .add_spans(&writer, 1, &data.encode_to_vec())
            .unwrap()
            .unwrap();
        search.commit(&mut writer, 1, &Pending::default()).unwrap();
        let find = |filter: TagFilter| {
            search
                .search_traces(&TraceSearch {
                    service: Some("checkout".into()),
                    operation: Some("GET /cart".into()),
                    span_kind: Some(3),
                    tags: vec![filter],
                    min_duration_ns: Some(250_000_000),
                    max_duration_ns: Some(250_000_000),
                    limit: 5,
                    ..Default::default()
                })
                .unwrap()
        };
        let exact = |k: &str, v: String| TagFilter {
            key: k.into(),
            negated: false,
            matcher: Match::Exact(v),
        };
        for (k, v) in &tags {
            assert_eq!(find(exact(k, v.as_text())), vec![[7; 16]], "{k}={v:?}");
            assert!(
                find(exact(k, format!("{}~", v.as_text()))).is_empty(),
                "{k}"
            );
            if let Some(x) = v.as_f64() {
                let at_least = TagFilter {
                    key: k.clone(),
                    negated: false,
                    matcher: Match::Number(Cmp::Ge, x),
                };
                assert_eq!(find(at_least), vec![[7; 16]], "{k} >= {x}");
                let above = TagFilter {
                    key: k.clone(),
                    negated: false,
                    matcher: Match::Number(Cmp::Gt, x),
                };
                assert!(find(above).is_empty(), "{k} > {x}");
            }
        }
        assert_eq!(search.chunks_for_trace(&[7; 16]).unwrap(), vec![1]);
        // A damaged chunk: the error says so, and the spans before the damage are indexed.
        let raw = data.encode_to_vec();
        let damaged = builder
            .add_spans(&writer, 2, &raw[..raw.len() - 3])
            .unwrap();
        assert!(damaged.is_err());
    }

    #[test]
    fn numeric_terms_sort_like_numbers() {
        let xs = [
            f64::NEG_INFINITY,
            -1e9,
            -2.5,
            -0.0,
            0.0,
            1e-9,
            3.0,
            500.0,
            1e300,
            f64::INFINITY,
        ];
        let terms: Vec<String> = xs.iter().map(|x| num_term("k", *x)).collect();
        let mut sorted = terms.clone();
        sorted.sort();
        assert_eq!(terms, sorted);
    }
}
