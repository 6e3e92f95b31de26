//! Alertmanager's label matchers: `name="value"`, `!=`, `=~`, `!~`, in lists such as
//! `{a="b", c=~"d.*"}` or unquoted `a=b`, as route `matchers`, inhibit rules, silences and the
//! API's `filter` parameters write them. Regexes are anchored (`^(?:re)$`).

use std::collections::BTreeMap;
use std::fmt;

/// A label set: names to values, sorted.
pub type LabelSet = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchType {
    Equal,
    NotEqual,
    Regexp,
    NotRegexp,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regexp => "=~",
            MatchType::NotRegexp => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub kind: MatchType,
    pub name: String,
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        self.kind == o.kind && self.name == o.name && self.value == o.value
    }
}

/// Longest regex source accepted in a matcher.
const MAX_PATTERN: usize = 16 << 10;

/// Compiles `^(?:re)$` with limits so that a hostile pattern cannot take memory or time.
pub fn anchored_regex(re: &str) -> Result<regex::Regex, String> {
    if re.len() > MAX_PATTERN {
        return Err(format!("regexp longer than {MAX_PATTERN} bytes"));
    }
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(4 << 20)
        .build()
        .map_err(|e| format!("error parsing regexp: {}", first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

impl Matcher {
    pub fn new(kind: MatchType, name: &str, value: &str) -> Result<Matcher, String> {
        let re = match kind {
            MatchType::Regexp | MatchType::NotRegexp => Some(anchored_regex(value)?),
            _ => None,
        };
        Ok(Matcher {
            kind,
            name: name.to_string(),
            value: value.to_string(),
            re,
        })
    }

    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::Regexp => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::NotRegexp => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the matcher matches a label set (a missing label is the empty value).
    pub fn matches_set(&self, ls: &LabelSet) -> bool {
        self.matches(ls.get(&self.name).map(String::as_str).unwrap_or(""))
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.kind, MatchType::Regexp | MatchType::NotRegexp)
    }

    pub fn is_equal(&self) -> bool {
        matches!(self.kind, MatchType::Equal | MatchType::Regexp)
    }

    /// Whether the matcher matches the empty string (silences need one that does not).
    pub fn matches_empty(&self) -> bool {
        match self.kind {
            MatchType::Equal => self.value.is_empty(),
            // Alertmanager checks the unanchored pattern here.
            MatchType::Regexp => regex::Regex::new(&self.value).is_ok_and(|r| r.is_match("")),
            _ => false,
        }
    }

    /// The API v2 JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex(),
            "isEqual": self.is_equal(),
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self
            .value
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.kind.as_str(), v)
    }
}

/// Alertmanager's sort order: name, value, then type.
pub fn sort_matchers(ms: &mut [Matcher]) {
    ms.sort_by(|a, b| {
        (a.name.as_str(), a.value.as_str(), a.kind).cmp(&(
            b.name.as_str(),
            b.value.as_str(),
            b.kind,
        ))
    });
}

/// `{a="b",c=~"d"}`.
pub fn matchers_text(ms: &[Matcher]) -> String {
    let mut s = String::from("{");
    for (i, m) in ms.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&m.to_string());
    }
    s.push('}');
    s
}

pub fn all_match(ms: &[Matcher], ls: &LabelSet) -> bool {
    ms.iter().all(|m| m.matches_set(ls))
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// Longest matcher list text accepted.
const MAX_MATCHERS_TEXT: usize = 64 << 10;

/// A comma-separated list, with optional braces; commas inside double quotes do not split.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    if s.len() > MAX_MATCHERS_TEXT {
        return Err(format!("matchers longer than {MAX_MATCHERS_TEXT} bytes"));
    }
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            ',' if !quoted => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            '"' => {
                if !escaped {
                    quoted = !quoted;
                } else {
                    escaped = false;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token.trim().to_string());
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

/// One `name op value` matcher; the value may be double-quoted with `\"`, `\\`, `\n` escapes.
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {s}");
    let t = s.trim_start();
    let name_len = t
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    if name_len == 0 {
        return Err(bad());
    }
    let name = &t[..name_len];
    let rest = t[name_len..].trim_start();
    let (kind, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchType::Regexp, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchType::NotRegexp, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchType::Equal, r)
    } else {
        return Err(bad());
    };
    let raw_full = rest.trim();
    let (raw, mut expect_quote) = match raw_full.strip_prefix('"') {
        Some(r) => (r, true),
        None => (raw_full, false),
    };
    let mut value = String::new();
    let mut escaped = false;
    let n = raw.len();
    for (i, c) in raw.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                _ => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' => {
                if i + c.len_utf8() < n {
                    escaped = true;
                    continue;
                }
                value.push('\\');
            }
            '"' => {
                if !expect_quote || i + 1 < n {
                    return Err(format!(
                        "matcher value contains unescaped double quote: {raw_full}"
                    ));
                }
                expect_quote = false;
            }
            _ => value.push(c),
        }
    }
    if expect_quote {
        return Err(format!(
            "matcher value contains unescaped double quote: {raw_full}"
        ));
    }
    debug_assert!(valid_label_name(name));
    Matcher::new(kind, name, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_as_alertmanager_does() {
        let cases: &[(&str, &str)] = &[
            (r#"{foo="bar"}"#, r#"{foo="bar"}"#),
            (r#"foo=bar,baz!~"a,b""#, r#"{foo="bar",baz!~"a,b"}"#),
            (r#"{ foo =~ "x.*" , bar != "" }"#, r#"{foo=~"x.*",bar!=""}"#),
            (r#"a="q\"uote""#, r#"{a="q\"uote"}"#),
            (r#"a=~"\\d+""#, r#"{a=~"\\d+"}"#),
            ("alertname=Watchdog", r#"{alertname="Watchdog"}"#),
        ];
        for (input, want) in cases {
            let ms = parse_matchers(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(matchers_text(&ms), *want, "{input}");
        }
        for bad in [
            r#"foo"#,
            r#"1a="b""#,
            r#"a="b"c""#,
            r#"a="open"#,
            r#"a=~"(""#,
        ] {
            assert!(parse_matchers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m = parse_matcher(r#"job=~"api|web""#).unwrap();
        assert!(m.matches("api") && !m.matches("api2"));
        let ne = parse_matcher(r#"team!="""#).unwrap();
        let mut ls = LabelSet::new();
        assert!(!ne.matches_set(&ls));
        ls.insert("team".into(), "a".into());
        assert!(ne.matches_set(&ls));
        assert!(parse_matcher(r#"a=~".*""#).unwrap().matches_empty());
        assert!(!parse_matcher(r#"a="x""#).unwrap().matches_empty());
    }
}
