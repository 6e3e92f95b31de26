//! The tag query language for trace and log search, a superset of Jaeger's exact `key=value`
//! matching (jaeger#684 asked for more):
//!
//! | clause          | matches a span whose tags ...                                  |
//! |-----------------|-----------------------------------------------------------------|
//! | `k=v`           | include `k` with value `v` (text form, as Jaeger compares)      |
//! | `k=v*` `k=a?c`  | include `k` with a value matching the glob (`*`, `?`)          |
//! | `k!=v`          | do not include `k=v` (absent, or another value)                 |
//! | `k=~re` `k!~re` | include / do not include `k` with a value matching `re` (whole) |
//! | `k>n` `k>=n` `k<n` `k<=n` | include numeric `k` compared with the number `n`      |
//! | `k` / `!k`      | include / do not include `k` at all                             |
//!
//! Clauses are separated by spaces (logfmt); keys and values may be double-quoted with `\"` and
//! `\\` escapes. The JSON form Jaeger's UI and Grafana send, `{"k":"v"}`, means exact matches;
//! there, a key ending in `!`, `>` or `<` (what Grafana's logfmt parser makes of `k!=v`, `k>=v`,
//! `k<=v`) or a value starting with `~` carries the operator. All clauses must hold.

/// Longest tag query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// Most clauses accepted in one query.
pub const MAX_CLAUSES: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Exact(String),
    /// A regular expression matched against the whole value.
    Regex(String),
    Exists,
    Number(Cmp, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagFilter {
    pub key: String,
    pub negated: bool,
    pub matcher: Match,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TagQueryError {
    #[error("tag query is longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    #[error("tag query has more than {MAX_CLAUSES} clauses")]
    TooManyClauses,
    #[error("tag query: {0} at byte {1}")]
    Syntax(&'static str, usize),
    #[error("tag query: {0:?} is not a number")]
    NotANumber(String),
    #[error("tag query: invalid regular expression {0:?}: {1}")]
    Regex(String, String),
    #[error("tags must be a JSON object of strings: {0}")]
    Json(String),
}

/// Parses the logfmt form.
pub fn parse(text: &str) -> Result<Vec<TagFilter>, TagQueryError> {
    if text.len() > MAX_QUERY_LEN {
        return Err(TagQueryError::TooLong);
    }
    let mut p = Parser { s: text, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_space();
        if p.pos >= p.s.len() {
            break;
        }
        if out.len() >= MAX_CLAUSES {
            return Err(TagQueryError::TooManyClauses);
        }
        out.push(p.clause()?);
    }
    Ok(out)
}

/// Parses Jaeger's JSON form, `{"key":"value", ...}`.
pub fn parse_json(text: &str) -> Result<Vec<TagFilter>, TagQueryError> {
    if text.len() > MAX_QUERY_LEN {
        return Err(TagQueryError::TooLong);
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| TagQueryError::Json(e.to_string()))?;
    if map.len() > MAX_CLAUSES {
        return Err(TagQueryError::TooManyClauses);
    }
    let mut out = Vec::new();
    for (key, value) in map {
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => return Err(TagQueryError::Json(format!("value of {key:?} is {other}"))),
        };
        let filter = if let Some(k) = key.strip_suffix('!') {
            match value.strip_prefix('~') {
                Some(re) => regex_filter(k, true, re)?,
                None => value_filter(k, true, &value),
            }
        } else if let Some(k) = key.strip_suffix('>') {
            number_filter(k, Cmp::Ge, &value)?
        } else if let Some(k) = key.strip_suffix('<') {
            number_filter(k, Cmp::Le, &value)?
        } else if let Some(re) = value.strip_prefix('~') {
            regex_filter(&key, false, re)?
        } else {
            TagFilter {
                key,
                negated: false,
                matcher: Match::Exact(value),
            }
        };
        out.push(filter);
    }
    Ok(out)
}

/// Jaeger's `tag=key:value` parameter form.
pub fn parse_colon_pair(text: &str) -> Result<TagFilter, TagQueryError> {
    let (k, v) = text
        .split_once(':')
        .ok_or(TagQueryError::Syntax("expected key:value", 0))?;
    Ok(TagFilter {
        key: k.to_string(),
        negated: false,
        matcher: Match::Exact(v.to_string()),
    })
}

fn value_filter(key: &str, negated: bool, value: &str) -> TagFilter {
    let matcher = if value.contains(['*', '?']) {
        Match::Regex(glob_to_regex(value))
    } else {
        Match::Exact(value.to_string())
    };
    TagFilter {
        key: key.to_string(),
        negated,
        matcher,
    }
}

fn regex_filter(key: &str, negated: bool, re: &str) -> Result<TagFilter, TagQueryError> {
    check_regex(re)?;
    Ok(TagFilter {
        key: key.to_string(),
        negated,
        matcher: Match::Regex(re.to_string()),
    })
}

fn number_filter(key: &str, cmp: Cmp, value: &str) -> Result<TagFilter, TagQueryError> {
    let n: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| !n.is_nan())
        .ok_or_else(|| TagQueryError::NotANumber(value.to_string()))?;
    Ok(TagFilter {
        key: key.to_string(),
        negated: false,
        matcher: Match::Number(cmp, n),
    })
}

/// Compiles the regex with size limits so a hostile pattern fails fast instead of blowing up.
pub fn check_regex(re: &str) -> Result<(), TagQueryError> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map(|_| ())
        .map_err(|e| TagQueryError::Regex(re.to_string(), e.to_string()))
}

pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() * 2);
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

const OPERATOR_CHARS: &[char] = &['=', '!', '<', '>', '~'];

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// A bare word (stops at whitespace and, for keys, at operator characters) or a quoted string.
    fn word(&mut self, is_key: bool) -> Result<String, TagQueryError> {
        if self.peek() == Some('"') {
            let start = self.pos;
            self.pos += 1;
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => return Err(TagQueryError::Syntax("unterminated quote", start)),
                    Some('"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some('\\') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c) => {
                                out.push(c);
                                self.pos += c.len_utf8();
                            }
                            None => return Err(TagQueryError::Syntax("dangling escape", self.pos)),
                        }
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += c.len_utf8();
                    }
                }
            }
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '"' || (is_key && OPERATOR_CHARS.contains(&c)) {
                break;
            }
            self.pos += c.len_utf8();
        }
        Ok(self.s[start..self.pos].to_string())
    }

    fn clause(&mut self) -> Result<TagFilter, TagQueryError> {
        let start = self.pos;
        let absent = self.eat("!");
        let key = self.word(true)?;
        if key.is_empty() {
            return Err(TagQueryError::Syntax("expected a tag key", start));
        }
        let at_end = self.peek().is_none_or(char::is_whitespace);
        if at_end {
            return Ok(TagFilter {
                key,
                negated: absent,
                matcher: Match::Exists,
            });
        }
        if absent {
            return Err(TagQueryError::Syntax(
                "`!key` takes no operator; use key!=value",
                start,
            ));
        }
        let op_pos = self.pos;
        let op = ["!=", "=~", "!~", ">=", "<=", "=", ">", "<"]
            .into_iter()
            .find(|op| self.eat(op))
            .ok_or(TagQueryError::Syntax("expected an operator", op_pos))?;
        let value = self.word(false)?;
        match op {
            "=" => Ok(value_filter(&key, false, &value)),
            "!=" => Ok(value_filter(&key, true, &value)),
            "=~" => regex_filter(&key, false, &value),
            "!~" => regex_filter(&key, true, &value),
            ">" => number_filter(&key, Cmp::Gt, &value),
            ">=" => number_filter(&key, Cmp::Ge, &value),
            "<" => number_filter(&key, Cmp::Lt, &value),
            _ => number_filter(&key, Cmp::Le, &value),
        }
    }
}

/// Evaluates filters against a tag list (used where the index cannot answer, and in tests).
pub fn matches(filters: &[TagFilter], tags: &[(String, crate::traces::model::TagValue)]) -> bool {
    filters.iter().all(|f| {
        let hit = tags.iter().any(|(k, v)| {
            k == &f.key
                && match &f.matcher {
                    Match::Exact(want) => &v.as_text() == want,
                    Match::Regex(re) => regex::Regex::new(&format!("^(?:{re})$"))
                        .is_ok_and(|r| r.is_match(&v.as_text())),
                    Match::Exists => true,
                    Match::Number(cmp, n) => v.as_f64().is_some_and(|x| match cmp {
                        Cmp::Gt => x > *n,
                        Cmp::Ge => x >= *n,
                        Cmp::Lt => x < *n,
                        Cmp::Le => x <= *n,
                    }),
                }
        });
        hit != f.negated
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, negated: bool, matcher: Match) -> TagFilter {
        TagFilter {
            key: key.into(),
            negated,
            matcher,
        }
    }

    #[test]
    fn logfmt_table() {
        let cases: Vec<(&str, Result<Vec<TagFilter>, TagQueryError>)> = vec![
            ("", Ok(vec![])),
            (
                "error=true",
                Ok(vec![f("error", false, Match::Exact("true".into()))]),
            ),
            (
                "http.status_code>=500 http.method!=GET",
                Ok(vec![
                    f("http.status_code", false, Match::Number(Cmp::Ge, 500.0)),
                    f("http.method", true, Match::Exact("GET".into())),
                ]),
            ),
            ("db.system", Ok(vec![f("db.system", false, Match::Exists)])),
            ("!db.system", Ok(vec![f("db.system", true, Match::Exists)])),
            (
                "http.url=~\"https?://.*/api\"",
                Ok(vec![f(
                    "http.url",
                    false,
                    Match::Regex("https?://.*/api".into()),
                )]),
            ),
            (
                "peer!~10\\..*",
                Ok(vec![f("peer", true, Match::Regex("10\\..*".into()))]),
            ),
            (
                "user=al*",
                Ok(vec![f("user", false, Match::Regex("al.*".into()))]),
            ),
            (
                "\"key with space\"=\"va\\\"l\"",
                Ok(vec![f(
                    "key with space",
                    false,
                    Match::Exact("va\"l".into()),
                )]),
            ),
            (
                "latency<0.25",
                Ok(vec![f("latency", false, Match::Number(Cmp::Lt, 0.25))]),
            ),
            ("a>b", Err(TagQueryError::NotANumber("b".into()))),
            ("=x", Err(TagQueryError::Syntax("expected a tag key", 0))),
            (
                "\"open",
                Err(TagQueryError::Syntax("unterminated quote", 0)),
            ),
            (
                "!a=b",
                Err(TagQueryError::Syntax(
                    "`!key` takes no operator; use key!=value",
                    0,
                )),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), want, "{input}");
        }
        assert!(matches!(parse("a=~(("), Err(TagQueryError::Regex(..))));
        assert!(matches!(
            parse(&"a ".repeat(100)),
            Err(TagQueryError::TooManyClauses)
        ));
    }

    #[test]
    fn json_table() {
        let got = parse_json(
            r#"{"error":"true","http.status_code>":"500","method!":"GET","url":"~/api/.*"}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                f("error", false, Match::Exact("true".into())),
                f("http.status_code", false, Match::Number(Cmp::Ge, 500.0)),
                f("method", true, Match::Exact("GET".into())),
                f("url", false, Match::Regex("/api/.*".into())),
            ]
        );
        assert!(parse_json("[1]").is_err());
        assert!(parse_json(r#"{"a":{"b":1}}"#).is_err());
    }

    #[test]
    fn evaluation() {
        use crate::traces::model::TagValue;
        let tags = vec![
            ("http.status_code".to_string(), TagValue::I64(503)),
            ("http.method".to_string(), TagValue::Str("POST".into())),
        ];
        assert!(matches(&parse("http.status_code>=500").unwrap(), &tags));
        assert!(matches(&parse("http.status_code=503").unwrap(), &tags));
        assert!(!matches(&parse("http.status_code<500").unwrap(), &tags));
        assert!(matches(
            &parse("http.method!=GET !db.system").unwrap(),
            &tags
        ));
        assert!(matches(&parse("http.method=P*").unwrap(), &tags));
        assert!(!matches(&parse("http.method=~GE.").unwrap(), &tags));
    }
}
