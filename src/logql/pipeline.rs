//! A log pipeline run over one entry at a time: line filters, parsers (`json`, `logfmt`,
//! `regexp`, `pattern`, `unpack`), label filters, formatters (`line_format`, `label_format`),
//! `drop`/`keep`, `decolorize`, and `unwrap`'s sample extraction, with Loki's rules: a parsed
//! label that collides with a stream label or structured metadata is named `<name>_extracted`;
//! a parser that fails sets `__error__` (`JSONParserErr`, `LogfmtParserErr`, ...) and
//! `__error_details__` and keeps the line; numeric label filters pass lines that already carry
//! an error, so only a string filter on `__error__` removes them.

use std::collections::BTreeMap;
use std::rc::Rc;

use regex::Regex;

use super::ast::*;

pub const ERR_JSON: &str = "JSONParserErr";
pub const ERR_LOGFMT: &str = "LogfmtParserErr";
pub const ERR_SAMPLE: &str = "SampleExtractionErr";
pub const ERR_LABEL_FILTER: &str = "LabelFilterErr";
pub const ERR_TEMPLATE: &str = "TemplateFormatErr";
pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Deepest JSON nesting the `json` parser walks (deeper objects are left out).
const MAX_JSON_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Stream,
    Meta,
    Parsed,
}

/// The labels of one entry as the pipeline builds them.
pub struct Row<'a> {
    pub ts: i64,
    pub line: String,
    base: &'a [(String, String)],
    labels: Vec<(String, String, Cat)>,
    pub err: Option<String>,
    pub err_details: Option<String>,
}

impl<'a> Row<'a> {
    pub fn new(
        ts: i64,
        line: &str,
        stream: &'a [(String, String)],
        meta: &[(String, String)],
    ) -> Row<'a> {
        let mut labels: Vec<(String, String, Cat)> = stream
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), Cat::Stream))
            .collect();
        for (k, v) in meta {
            if let Some(l) = labels.iter_mut().find(|l| &l.0 == k) {
                l.1 = v.clone();
            } else {
                labels.push((k.clone(), v.clone(), Cat::Meta));
            }
        }
        Row {
            ts,
            line: line.to_string(),
            base: stream,
            labels,
            err: None,
            err_details: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            ERROR_LABEL => self.err.as_deref(),
            ERROR_DETAILS_LABEL => self.err_details.as_deref(),
            _ => self
                .labels
                .iter()
                .find(|l| l.0 == name)
                .map(|l| l.1.as_str()),
        }
    }

    /// Whether a parsed label named `name` would collide (stream label or metadata).
    fn taken(&self, name: &str) -> bool {
        self.base.iter().any(|(k, _)| k == name)
            || self.labels.iter().any(|l| l.0 == name && l.2 == Cat::Meta)
    }

    fn parsed_name(&self, name: String) -> String {
        if self.taken(&name) {
            format!("{name}_extracted")
        } else {
            name
        }
    }

    fn set(&mut self, name: &str, value: String, cat: Cat) {
        if name == ERROR_LABEL {
            self.err = Some(value);
            return;
        }
        if name == ERROR_DETAILS_LABEL {
            self.err_details = Some(value);
            return;
        }
        match self.labels.iter_mut().find(|l| l.0 == name) {
            Some(l) => {
                l.1 = value;
                l.2 = cat;
            }
            None => self.labels.push((name.to_string(), value, cat)),
        }
    }

    fn set_parsed(&mut self, name: &str, value: String) {
        self.set(name, value, Cat::Parsed)
    }

    fn del(&mut self, name: &str) {
        match name {
            ERROR_LABEL => self.err = None,
            ERROR_DETAILS_LABEL => self.err_details = None,
            _ => self.labels.retain(|l| l.0 != name),
        }
    }

    fn set_err(&mut self, kind: &str, details: Option<String>) {
        if self.err.is_none() {
            self.err = Some(kind.to_string());
            if let Some(d) = details {
                self.err_details = Some(d);
            }
        }
    }

    /// The entry's labels, sorted, with the error labels when set.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .labels
            .iter()
            .filter(|l| !l.1.is_empty())
            .map(|l| (l.0.clone(), l.1.clone()))
            .collect();
        if let Some(e) = &self.err {
            out.push((ERROR_LABEL.to_string(), e.clone()));
            if let Some(d) = &self.err_details {
                out.push((ERROR_DETAILS_LABEL.to_string(), d.clone()));
            }
        }
        out.sort();
        out
    }

    /// Non-empty labels by category: (structured metadata, parsed).
    pub fn categorized(&self) -> (super::Labels, super::Labels) {
        let pick = |c: Cat| -> super::Labels {
            self.labels
                .iter()
                .filter(|l| l.2 == c && !l.1.is_empty())
                .map(|l| (l.0.clone(), l.1.clone()))
                .collect()
        };
        (pick(Cat::Meta), pick(Cat::Parsed))
    }

    fn template_data(&self) -> crate::template::Value {
        let mut m = BTreeMap::new();
        for l in &self.labels {
            m.insert(l.0.clone(), crate::template::Value::Str(l.1.clone()));
        }
        if let Some(e) = &self.err {
            m.insert(ERROR_LABEL.into(), crate::template::Value::Str(e.clone()));
        }
        crate::template::Value::Map(Rc::new(m))
    }
}

/// Runs `stages` over `row`; false when the entry is filtered out.
pub fn run(stages: &[Stage], row: &mut Row<'_>) -> bool {
    for s in stages {
        if !stage(s, row) {
            return false;
        }
    }
    true
}

fn stage(s: &Stage, row: &mut Row<'_>) -> bool {
    match s {
        Stage::Line(f) => line_filter(f, &row.line),
        Stage::Json(params) => {
            if params.is_empty() {
                json_all(row)
            } else {
                json_params(row, params)
            }
            true
        }
        Stage::Logfmt {
            strict,
            keep_empty,
            params,
        } => {
            logfmt(row, *strict, *keep_empty, params);
            true
        }
        Stage::Regexp(re) => {
            let line = row.line.clone();
            if let Some(c) = re.captures(&line) {
                for name in re.capture_names().flatten() {
                    if let Some(m) = c.name(name) {
                        let n = row.parsed_name(name.to_string());
                        row.set_parsed(&n, m.as_str().to_string());
                    }
                }
            }
            true
        }
        Stage::Pattern(p) => {
            let line = row.line.clone();
            for (name, value) in p.captures(&line).unwrap_or_default() {
                let n = row.parsed_name(name.to_string());
                row.set_parsed(&n, value.to_string());
            }
            true
        }
        Stage::Unpack => {
            unpack(row);
            true
        }
        Stage::LabelFilter(f) => label_filter(f, row),
        Stage::LineFormat(t) => {
            let data = row.template_data();
            match exec_template(t, &data, &row.line, row.ts) {
                Ok(out) => row.line = out,
                Err(e) => row.set_err(ERR_TEMPLATE, Some(e)),
            }
            true
        }
        Stage::LabelFormat(fmts) => {
            let data = row.template_data();
            for (dst, f) in fmts {
                match f {
                    LabelFmt::Rename(src) => {
                        if let Some(v) = row.get(src).map(str::to_string) {
                            let cat = row
                                .labels
                                .iter()
                                .find(|l| &l.0 == src)
                                .map_or(Cat::Parsed, |l| l.2);
                            row.del(src);
                            row.set(dst, v, cat);
                        }
                    }
                    LabelFmt::Template(t) => match exec_template(t, &data, &row.line, row.ts) {
                        Ok(v) => row.set_parsed(dst, v),
                        Err(e) => row.set_err(ERR_TEMPLATE, Some(e)),
                    },
                }
            }
            true
        }
        Stage::Drop(items) => {
            for it in items {
                match it {
                    NameOrMatcher::Name(n) => row.del(n),
                    NameOrMatcher::Matcher(m) => {
                        if row.get(&m.name).is_some_and(|v| m.matches(v)) {
                            row.del(&m.name)
                        }
                    }
                }
            }
            true
        }
        Stage::Keep(items) => {
            let keep = |name: &str, value: &str| {
                items.iter().any(|it| match it {
                    NameOrMatcher::Name(n) => n == name,
                    NameOrMatcher::Matcher(m) => m.name == name && m.matches(value),
                })
            };
            // As Loki's `KeepLabels`: `__error__` and `__error_details__` are never removed.
            row.labels.retain(|l| keep(&l.0, &l.1));
            true
        }
        Stage::Decolorize => {
            if row.line.contains('\x1b') {
                row.line = ansi().replace_all(&row.line, "").into_owned();
            }
            true
        }
    }
}

fn ansi() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])").expect("static regex")
    })
}

fn exec_template(
    t: &crate::template::Template,
    data: &crate::template::Value,
    line: &str,
    ts: i64,
) -> Result<String, String> {
    let env = crate::template::Env {
        query: &crate::template::NoQuery,
        external_url: "",
        path_prefix: "",
        limits: crate::template::Limits::default(),
        defs: None,
        escape_html: false,
        line: Some((line, ts)),
    };
    t.execute(data, &env).map_err(|e| e.to_string())
}

pub fn line_filter(f: &LineFilter, line: &str) -> bool {
    match f.op {
        LineOp::Contains => f.needles.iter().any(|n| line.contains(n.as_str())),
        LineOp::NotContains => !f.needles.iter().any(|n| line.contains(n.as_str())),
        LineOp::Match | LineOp::Pattern => f.res.iter().any(|r| r.is_match(line)),
        LineOp::NotMatch | LineOp::NotPattern => !f.res.iter().any(|r| r.is_match(line)),
    }
}

pub fn label_filter(f: &LabelFilter, row: &mut Row<'_>) -> bool {
    match f {
        LabelFilter::And(a, b) => label_filter(a, row) && label_filter(b, row),
        LabelFilter::Or(a, b) => label_filter(a, row) || label_filter(b, row),
        LabelFilter::Str(m) => m.matches(row.get(&m.name).unwrap_or("")),
        LabelFilter::Cmp { name, op, value } => {
            if row.err.is_some() {
                // Only string filters on __error__ remove lines that carry an error.
                return true;
            }
            let Some(v) = row.get(name) else {
                return false;
            };
            let (parsed, target) = match value {
                FilterValue::Number(n) => (parse_go_float(v), *n),
                FilterValue::Duration(d) => (
                    crate::base::units::parse_duration(v.trim_start_matches('+'))
                        .map(|x| x.as_secs_f64())
                        .or_else(|| {
                            v.strip_prefix('-')
                                .and_then(crate::base::units::parse_duration)
                                .map(|x| -x.as_secs_f64())
                        }),
                    *d,
                ),
                FilterValue::Bytes(b) => (super::ast::parse_bytes(v), *b),
            };
            match parsed {
                Some(x) => op.apply(x, target),
                None => {
                    let details = format!(
                        "{} parse error for label {name:?} value {v:?}",
                        kind_name(value)
                    );
                    row.set_err(ERR_LABEL_FILTER, Some(details));
                    true
                }
            }
        }
    }
}

fn kind_name(v: &FilterValue) -> &'static str {
    match v {
        FilterValue::Number(_) => "number",
        FilterValue::Duration(_) => "duration",
        FilterValue::Bytes(_) => "bytes",
    }
}

/// Go's `strconv.ParseFloat` forms, including `Inf`, `NaN`, hex floats left out.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.is_empty() || t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// The value `unwrap` extracts, or an error detail.
pub fn unwrap_value(u: &Unwrap, row: &Row<'_>) -> Result<f64, String> {
    let v = row.get(&u.label).unwrap_or("");
    let parsed = match u.conv {
        Conv::Plain => parse_go_float(v),
        Conv::Duration => crate::base::units::parse_duration(v).map(|d| d.as_secs_f64()),
        Conv::Bytes => super::ast::parse_bytes(v),
    };
    parsed.ok_or_else(|| format!("strconv.ParseFloat: parsing {v:?}: invalid syntax"))
}

/// A label name as Loki makes one from a JSON or logfmt key: characters that cannot be in a
/// label name become `_`, and a leading digit gets a `_` before it.
pub fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.trim().chars().enumerate() {
        if c.is_ascii_alphabetic() || c == '_' || (c.is_ascii_digit() && i > 0) {
            out.push(c);
        } else if c.is_ascii_digit() {
            out.push('_');
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

// ---- JSON ----

/// A JSON value as the parsers read it: scalars keep their source text (numbers as written).
enum J<'s> {
    Str(String),
    Raw(&'s str),
    Null,
    Obj(Vec<(String, J<'s>)>),
    Arr(Vec<J<'s>>),
}

struct JsonReader<'s> {
    s: &'s str,
    i: usize,
    depth: usize,
}

impl<'s> JsonReader<'s> {
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<J<'s>, String> {
        self.ws();
        let b = self.s.as_bytes();
        let Some(&c) = b.get(self.i) else {
            return Err("unexpected end of JSON input".into());
        };
        match c {
            b'{' => {
                self.depth += 1;
                if self.depth > MAX_JSON_DEPTH {
                    return Err("JSON nests too deeply".into());
                }
                self.i += 1;
                let mut out = Vec::new();
                self.ws();
                if b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(J::Obj(out));
                }
                loop {
                    self.ws();
                    if b.get(self.i) != Some(&b'"') {
                        return Err(format!("expected a key at offset {}", self.i));
                    }
                    let k = self.string()?;
                    self.ws();
                    if b.get(self.i) != Some(&b':') {
                        return Err(format!("expected ':' at offset {}", self.i));
                    }
                    self.i += 1;
                    let v = self.value()?;
                    out.push((k, v));
                    self.ws();
                    match b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(J::Obj(out));
                        }
                        _ => return Err(format!("expected ',' or '}}' at offset {}", self.i)),
                    }
                }
            }
            b'[' => {
                self.depth += 1;
                if self.depth > MAX_JSON_DEPTH {
                    return Err("JSON nests too deeply".into());
                }
                self.i += 1;
                let mut out = Vec::new();
                self.ws();
                if b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(J::Arr(out));
                }
                loop {
                    out.push(self.value()?);
                    self.ws();
                    match b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(J::Arr(out));
                        }
                        _ => return Err(format!("expected ',' or ']' at offset {}", self.i)),
                    }
                }
            }
            b'"' => Ok(J::Str(self.string()?)),
            _ => {
                let start = self.i;
                while self.i < b.len()
                    && !matches!(b[self.i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    self.i += 1;
                }
                let raw = &self.s[start..self.i];
                match raw {
                    "null" => Ok(J::Null),
                    "true" | "false" => Ok(J::Raw(raw)),
                    _ if raw.parse::<f64>().is_ok() && !raw.starts_with('+') => Ok(J::Raw(raw)),
                    _ => Err(format!("invalid value {raw:?}")),
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.s.as_bytes();
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        while self.i < b.len() {
            match b[self.i] {
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                b'"' => {
                    let raw = &self.s[start..self.i.min(self.s.len())];
                    self.i += 1;
                    if !escaped {
                        return Ok(raw.to_string());
                    }
                    return serde_json::from_str::<String>(&format!("\"{raw}\""))
                        .map_err(|e| e.to_string());
                }
                _ => self.i += 1,
            }
        }
        Err("unterminated string".into())
    }
}

fn parse_json(line: &str) -> Result<J<'_>, String> {
    let mut r = JsonReader {
        s: line,
        i: 0,
        depth: 0,
    };
    let v = r.value()?;
    r.ws();
    if r.i != line.len() {
        return Err(format!("unexpected data after the value at offset {}", r.i));
    }
    Ok(v)
}

fn scalar_text(v: &J<'_>) -> Option<String> {
    match v {
        J::Str(s) => Some(s.clone()),
        J::Raw(r) => Some(r.to_string()),
        J::Null => Some(String::new()),
        _ => None,
    }
}

fn json_all(row: &mut Row<'_>) {
    let line = row.line.clone();
    let v = match parse_json(&line) {
        Ok(J::Obj(o)) => o,
        Ok(_) => {
            row.set_err(
                ERR_JSON,
                Some("expecting json object, but it is not".into()),
            );
            return;
        }
        Err(e) => {
            row.set_err(ERR_JSON, Some(e));
            return;
        }
    };
    let mut seen = std::collections::HashSet::new();
    fn walk(
        prefix: &str,
        obj: &[(String, J<'_>)],
        row: &mut Row<'_>,
        seen: &mut std::collections::HashSet<String>,
    ) {
        for (k, v) in obj {
            let key = sanitize(k);
            if key.is_empty() {
                continue;
            }
            let full = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}_{key}")
            };
            match v {
                J::Obj(inner) => walk(&full, inner, row, seen),
                J::Arr(_) | J::Null => {}
                other => {
                    let name = row.parsed_name(full);
                    if seen.insert(name.clone())
                        && let Some(t) = scalar_text(other)
                    {
                        row.set_parsed(&name, t);
                    }
                }
            }
        }
    }
    walk("", &v, row, &mut seen);
}

/// A `json` parameter path: `a.b`, `a["b c"]`, `a[0]`, `["x"]`.
fn json_path(p: &str) -> Option<Vec<Result<String, usize>>> {
    let mut out = Vec::new();
    let mut rest = p.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            if let Some(q) = inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                out.push(Ok(q.to_string()));
            } else {
                out.push(Err(inner.parse().ok()?));
            }
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            out.push(Ok(r[..end].to_string()));
            rest = &r[end..];
        }
    }
    Some(out)
}

fn json_params(row: &mut Row<'_>, params: &[Extraction]) {
    let line = row.line.clone();
    let parsed = match parse_json(&line) {
        Ok(v) => v,
        Err(e) => {
            row.set_err(ERR_JSON, Some(e));
            for p in params {
                if row.get(&p.label).is_none() {
                    row.set_parsed(&p.label, String::new());
                }
            }
            return;
        }
    };
    for p in params {
        let mut cur = Some(&parsed);
        for step in json_path(&p.path).unwrap_or_default() {
            cur = match (cur, step) {
                (Some(J::Obj(o)), Ok(k)) => o.iter().find(|(kk, _)| *kk == k).map(|(_, v)| v),
                (Some(J::Arr(a)), Err(i)) => a.get(i),
                _ => None,
            };
        }
        let name = row.parsed_name(p.label.clone());
        let text = match cur {
            Some(J::Obj(_)) | Some(J::Arr(_)) => {
                // Objects and arrays come back as their JSON text.
                Some(raw_json(cur.unwrap_or(&J::Null)))
            }
            Some(v) => scalar_text(v),
            None => None,
        };
        row.set_parsed(&name, text.unwrap_or_default());
    }
}

fn raw_json(v: &J<'_>) -> String {
    match v {
        J::Str(s) => serde_json::to_string(s).unwrap_or_default(),
        J::Raw(r) => r.to_string(),
        J::Null => "null".into(),
        J::Obj(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap_or_default(),
                    raw_json(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
        J::Arr(a) => format!("[{}]", a.iter().map(raw_json).collect::<Vec<_>>().join(",")),
    }
}

fn unpack(row: &mut Row<'_>) {
    let line = row.line.clone();
    let obj = match parse_json(&line) {
        Ok(J::Obj(o)) => o,
        Ok(_) => {
            row.set_err(
                ERR_JSON,
                Some("expecting json object, but it is not".into()),
            );
            return;
        }
        Err(e) => {
            row.set_err(ERR_JSON, Some(e));
            return;
        }
    };
    let mut entry = None;
    for (k, v) in obj {
        let J::Str(s) = v else { continue };
        if k == "_entry" {
            entry = Some(s);
            continue;
        }
        let name = row.parsed_name(sanitize(&k));
        if !name.is_empty() {
            row.set_parsed(&name, s);
        }
    }
    if let Some(e) = entry {
        row.line = e;
    }
}

// ---- logfmt ----

/// Splits a logfmt line into `(key, value)` pairs as go-logfmt decodes them; Err on a
/// malformed pair (the pairs before it are kept).
fn logfmt_pairs(line: &str) -> (Vec<(String, String)>, Option<String>) {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        if i == ks {
            return (
                out,
                Some(format!(
                    "logfmt syntax error at pos {}: unexpected '{}'",
                    i + 1,
                    b[i] as char
                )),
            );
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            if i < b.len() && b[i] == b'"' {
                return (
                    out,
                    Some(format!(
                        "logfmt syntax error at pos {}: unexpected '\"'",
                        i + 1
                    )),
                );
            }
            out.push((key.to_string(), String::new()));
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            let vs = i;
            i += 1;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return (
                    out,
                    Some(format!(
                        "logfmt syntax error at pos {}: unterminated quoted value",
                        i + 1
                    )),
                );
            }
            i += 1;
            let raw = &line[vs..i];
            let v = if escaped {
                serde_json::from_str::<String>(raw)
                    .unwrap_or_else(|_| raw[1..raw.len() - 1].to_string())
            } else {
                raw[1..raw.len() - 1].to_string()
            };
            out.push((key.to_string(), v));
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    return (
                        out,
                        Some(format!(
                            "logfmt syntax error at pos {}: unexpected '{}'",
                            i + 1,
                            b[i] as char
                        )),
                    );
                }
                i += 1;
            }
            out.push((key.to_string(), line[vs..i].to_string()));
        }
    }
    (out, None)
}

fn logfmt(row: &mut Row<'_>, strict: bool, keep_empty: bool, params: &[Extraction]) {
    let line = row.line.clone();
    let (pairs, err) = logfmt_pairs(&line);
    if !params.is_empty() {
        for p in params {
            let v = pairs
                .iter()
                .find(|(k, _)| *k == p.path)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let name = row.parsed_name(p.label.clone());
            row.set_parsed(&name, v);
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for (k, v) in pairs {
            let key = sanitize(&k);
            if key.is_empty() {
                continue;
            }
            let name = row.parsed_name(key);
            if v.is_empty() && !keep_empty {
                continue;
            }
            if seen.insert(name.clone()) {
                row.set_parsed(&name, v);
            }
        }
    }
    if strict && let Some(e) = err {
        row.set_err(ERR_LOGFMT, Some(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(
        q: &str,
        stream: &[(&str, &str)],
        line: &str,
    ) -> Option<(Vec<(String, String)>, String)> {
        let stream: Vec<(String, String)> = stream
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let super::super::ast::Expr::Log(l) = super::super::parser::parse(q).unwrap() else {
            panic!("not a log query")
        };
        let mut row = Row::new(0, line, &stream, &[]);
        if run(&l.stages, &mut row) {
            Some((row.labels(), row.line.clone()))
        } else {
            None
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn json_flattens_and_renames_collisions() {
        let (l, _) = run_on(
            r#"{app="a"} | json"#,
            &[("app", "a")],
            r#"{"app":"x","req":{"method":"GET","status":200,"ok":true},"tags":[1,2],"n":null,"a-b":"c"}"#,
        )
        .unwrap();
        assert_eq!(
            l,
            labels(&[
                ("app", "a"),
                ("app_extracted", "x"),
                ("req_method", "GET"),
                ("req_status", "200"),
                ("req_ok", "true"),
                ("a_b", "c")
            ])
        );
        let (l, _) = run_on(r#"{app="a"} | json"#, &[("app", "a")], "not json").unwrap();
        assert!(
            l.iter()
                .any(|(k, v)| k == "__error__" && v == "JSONParserErr"),
            "{l:?}"
        );
    }

    #[test]
    fn json_parameters_follow_paths() {
        let (l, _) = run_on(
            r#"{app="a"} | json m="req.method", first="list[0]", obj="req", missing="nope""#,
            &[("app", "a")],
            r#"{"req":{"method":"GET"},"list":["x","y"]}"#,
        )
        .unwrap();
        assert_eq!(
            l,
            labels(&[
                ("app", "a"),
                ("m", "GET"),
                ("first", "x"),
                ("obj", r#"{"method":"GET"}"#)
            ])
        );
    }

    #[test]
    fn logfmt_and_filters() {
        let q = r#"{app="a"} | logfmt | status >= 500 and duration > 1s"#;
        assert!(run_on(q, &[("app", "a")], "status=503 duration=1.5s msg=\"x y\"").is_some());
        assert!(run_on(q, &[("app", "a")], "status=503 duration=500ms").is_none());
        assert!(run_on(q, &[("app", "a")], "status=200 duration=5s").is_none());
        // A value that is not a number marks the line instead of dropping it.
        let (l, _) = run_on(q, &[("app", "a")], "status=oops duration=5s").unwrap();
        assert!(
            l.iter()
                .any(|(k, v)| k == "__error__" && v == "LabelFilterErr")
        );
        let (l, _) = run_on(r#"{app="a"} | logfmt"#, &[("app", "a")], "a=1 b= c").unwrap();
        assert_eq!(l, labels(&[("app", "a"), ("a", "1")]));
        let (l, _) = run_on(
            r#"{app="a"} | logfmt --keep-empty"#,
            &[("app", "a")],
            "a=1 b= c",
        )
        .unwrap();
        assert_eq!(
            l,
            labels(&[("app", "a"), ("a", "1"), ("b", ""), ("c", "")])
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect::<Vec<_>>()
        );
        let (l, _) = run_on(
            r#"{app="a"} | logfmt --strict"#,
            &[("app", "a")],
            "a=1 b=\"unterminated",
        )
        .unwrap();
        assert!(
            l.iter()
                .any(|(k, v)| k == "__error__" && v == "LogfmtParserErr")
        );
    }

    #[test]
    fn pattern_regexp_and_formats() {
        let (l, line) = run_on(
            r#"{app="a"} | pattern "<ip> - <_> \"<method> <uri> <_>\" <status> <size>" | line_format "{{.method}} {{.uri | upper}}""#,
            &[("app", "a")],
            r#"10.0.0.1 - - "GET /api/v1 HTTP/1.1" 200 512"#,
        )
        .unwrap();
        assert_eq!(line, "GET /API/V1");
        assert_eq!(
            l,
            labels(&[
                ("app", "a"),
                ("ip", "10.0.0.1"),
                ("method", "GET"),
                ("uri", "/api/v1"),
                ("status", "200"),
                ("size", "512")
            ])
        );
        let (l, _) = run_on(
            r#"{app="a"} | regexp "(?P<verb>\\w+) (?P<path>\\S+)" | label_format p=path, v="{{.verb}}!" | drop verb"#,
            &[("app", "a")],
            "POST /x",
        )
        .unwrap();
        assert_eq!(l, labels(&[("app", "a"), ("p", "/x"), ("v", "POST!")]));
        let (l, _) = run_on(
            r#"{app="a", env="p"} | keep app"#,
            &[("app", "a"), ("env", "p")],
            "x",
        )
        .unwrap();
        assert_eq!(l, labels(&[("app", "a")]));
    }

    #[test]
    fn line_filters_and_decolorize() {
        assert!(
            run_on(
                r#"{a="b"} |= "err" or "warn" != "debug""#,
                &[("a", "b")],
                "a warn"
            )
            .is_some()
        );
        assert!(
            run_on(
                r#"{a="b"} |= "err" or "warn" != "debug""#,
                &[("a", "b")],
                "warn debug"
            )
            .is_none()
        );
        assert!(run_on(r#"{a="b"} |~ "(?i)ERROR""#, &[("a", "b")], "an error").is_some());
        assert!(
            run_on(
                r#"{a="b"} |> "<_> level=error <_>""#,
                &[("a", "b")],
                "x level=error y"
            )
            .is_some()
        );
        assert!(
            run_on(
                r#"{a="b"} !> "<_> level=error <_>""#,
                &[("a", "b")],
                "x level=error y"
            )
            .is_none()
        );
        let (_, line) = run_on(
            r#"{a="b"} | decolorize"#,
            &[("a", "b")],
            "\x1b[31mred\x1b[0m",
        )
        .unwrap();
        assert_eq!(line, "red");
    }

    #[test]
    fn sanitizes_keys() {
        assert_eq!(sanitize("a.b-c"), "a_b_c");
        assert_eq!(sanitize("1abc"), "_1abc");
    }
}
