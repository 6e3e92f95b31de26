//! Loki's `pattern` expressions (`<ip> - - <_> "<method> <uri> <_>" <status>`), as a parser
//! stage and as a line filter (`|>`, `!>`), with Loki's checks and error wording.

use regex::Regex;

/// A `pattern` expression (`<ip> - - <_> "<method> <uri> <_>" <status>`): literals and
/// captures, compiled to one regular expression whose captures are lazy except the last.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub names: Vec<String>,
    re: Regex,
}

impl Pattern {
    fn parts(p: &str) -> Result<Vec<(bool, String)>, String> {
        let mut parts: Vec<(bool, String)> = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('<')
                && let Some(end) = r.find('>')
                && (r[..end] == *"_" || crate::tsdb::labels::valid_label_name(&r[..end]))
            {
                if let Some((true, prev)) = parts.last() {
                    return Err(format!(
                        "found consecutive capture '<{prev}><{}>': invalid expression",
                        &r[..end]
                    ));
                }
                parts.push((true, r[..end].to_string()));
                rest = &r[end + 1..];
                continue;
            }
            let c = rest.chars().next().unwrap_or(' ');
            match parts.last_mut() {
                Some((false, lit)) => lit.push(c),
                _ => parts.push((false, c.to_string())),
            }
            rest = &rest[c.len_utf8()..];
        }
        Ok(parts)
    }

    fn regex_of(parts: &[(bool, String)]) -> String {
        let last_cap = parts.iter().rposition(|(c, _)| *c);
        let mut re = String::from("(?s)^");
        for (i, (cap, text)) in parts.iter().enumerate() {
            if *cap {
                let lazy = if Some(i) == last_cap && i == parts.len() - 1 {
                    ""
                } else {
                    "?"
                };
                if text == "_" {
                    re.push_str(&format!("(?:.*{lazy})"));
                } else {
                    re.push_str(&format!("(?P<{text}>.*{lazy})"));
                }
            } else {
                re.push_str(&regex::escape(text));
            }
        }
        re
    }

    /// The named captures of `line`, or `None` when it does not match.
    pub fn captures<'l>(&self, line: &'l str) -> Option<Vec<(&str, &'l str)>> {
        let c = self.re.captures(line)?;
        Some(
            self.names
                .iter()
                .filter_map(|n| c.name(n).map(|m| (n.as_str(), m.as_str())))
                .collect(),
        )
    }

    pub fn parse(p: &str) -> Result<Pattern, String> {
        let parts = Self::parts(p)?;
        let names: Vec<String> = parts
            .iter()
            .filter(|(c, t)| *c && t != "_")
            .map(|(_, t)| t.clone())
            .collect();
        if names.is_empty() {
            return Err("at least one capture is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err(format!("duplicate capture name ({n}): invalid expression"));
            }
        }
        let re = crate::base::regex::compile_bounded(&Self::regex_of(&parts))?;
        Ok(Pattern { names, re })
    }

    /// The pattern as a line filter (`|> "<_> error <_>"`): any captures, named or not.
    pub fn filter_regex(p: &str) -> Result<Regex, String> {
        let parts = Self::parts(p)?;
        let anon: Vec<(bool, String)> = parts
            .into_iter()
            .map(|(c, t)| {
                if c {
                    (true, "_".to_string())
                } else {
                    (false, t)
                }
            })
            .collect();
        crate::base::regex::compile_bounded(&Self::regex_of(&anon))
    }
}
