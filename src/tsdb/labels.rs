//! Label sets and matchers: a series is named by its sorted label set (`__name__` included), and
//! queries pick series with Prometheus's four matcher kinds. This module owns validation of names
//! and the matching rules; it knows nothing about storage.

use std::fmt;

use regex::Regex;

/// The most labels a stored series may have (the head keeps their ids in 16-bit-sized room).
pub const MAX_LABELS: usize = 1000;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A label set, sorted by name, names unique, no empty values (an empty value means "absent").
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a set from pairs in any order: empty values are dropped, the last of a repeated
    /// name wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .filter(|l| !l.value.is_empty())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        // Keep the last of each name: reverse-dedup keeps the first of the reversed order.
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        Labels(out)
    }

    /// Wraps labels already sorted by name with unique names and non-empty values.
    pub fn from_sorted(v: Vec<Label>) -> Labels {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Labels(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// 64-bit hash of the set (names and values with separators, eight bytes at a step); used
    /// to find a series and to spread work, never as an identity on its own. Not persisted.
    pub fn hash64(&self) -> u64 {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        for l in &self.0 {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xfe);
        }
        h.finish()
    }

    /// Why this set cannot be stored, if it cannot: it needs a valid metric name and label
    /// names, and at most [`MAX_LABELS`] labels.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self.metric_name() {
            None => return Err("series has no metric name"),
            Some(n) if !valid_metric_name(n) => return Err("invalid metric name"),
            _ => {}
        }
        if self.0.iter().any(|l| !valid_label_name(&l.name)) {
            return Err("invalid label name");
        }
        if self.0.len() > MAX_LABELS {
            return Err("more than 1,000 labels");
        }
        Ok(())
    }
}

impl Labels {
    /// Go's `labels.Labels.String()`: every label, `__name__` included, as
    /// `{__name__="x", a="b"}` (what Prometheus's error messages print).
    pub fn go_string(&self) -> String {
        let inner: Vec<String> = self
            .0
            .iter()
            .map(|l| {
                format!(
                    "{}={}",
                    l.name,
                    crate::base::gofmt::quote(&l.value, crate::base::gofmt::QuoteStyle::Go)
                )
            })
            .collect();
        format!("{{{}}}", inner.join(", "))
    }
}

impl fmt::Display for Labels {
    /// Prometheus's form: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        f.write_str(name)?;
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher. Regexes are fully anchored, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, String> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    pub fn eq(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher::new(MatchOp::Equal, name, value).expect("equality matchers always build")
    }

    /// Whether a label value (empty when the label is absent) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether a series without this label is selected.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    pub fn matches_labels(&self, l: &Labels) -> bool {
        self.matches(l.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Whether a label set satisfies every matcher.
pub fn matches_all(ms: &[Matcher], l: &Labels) -> bool {
    ms.iter().all(|m| m.matches_labels(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_sort_and_drop_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(
            Labels::from_pairs([("__name__", "up"), ("job", "x")]).to_string(),
            "up{job=\"x\"}"
        );
    }

    #[test]
    fn matchers_follow_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let re = Matcher::new(MatchOp::Regex, "job", "no.*").unwrap();
        assert!(re.matches_labels(&l));
        // Anchored: a partial match is no match.
        assert!(
            !Matcher::new(MatchOp::Regex, "job", "od")
                .unwrap()
                .matches_labels(&l)
        );
        // An absent label is the empty string.
        assert!(Matcher::eq("env", "").matches_labels(&l));
        assert!(
            Matcher::new(MatchOp::NotEqual, "env", "prod")
                .unwrap()
                .matches_labels(&l)
        );
        assert!(
            !Matcher::new(MatchOp::NotRegex, "job", "n.*")
                .unwrap()
                .matches_labels(&l)
        );
        assert!(Matcher::new(MatchOp::Regex, "job", "(").is_err());
        assert!(valid_metric_name("a:b_c1") && !valid_metric_name("1a"));
        assert!(valid_label_name("_x") && !valid_label_name("a:b"));
    }
}
