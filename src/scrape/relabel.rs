//! Prometheus's relabeling (`relabel_configs`, `metric_relabel_configs`): the rule type as
//! `prometheus.yml` writes it, with Prometheus 2.42's defaults and checks, and the rules applied
//! to a label set. Every action: `replace`, `keep`, `drop`, `keepequal`, `dropequal`, `hashmod`,
//! `labelmap`, `labeldrop`, `labelkeep`, `lowercase`, `uppercase`. Regexes are anchored at both
//! ends and written in RE2 syntax, which the `regex` crate shares; `$1`, `${1}`, `$name` expand
//! as Go's `Regexp.Expand` does. A label set with an empty value is the same as the label absent.
//!
//! This module knows nothing of targets or samples: it maps a label set to a label set or to
//! nothing.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

use crate::tsdb::labels::valid_label_name;

/// A label set while it is being relabelled: sorted by name, no empty values.
pub type LabelMap = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// One rule as YAML writes it; every field optional, defaults filled in by [`RawRule::build`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// A checked rule, ready to apply.
#[derive(Debug, Clone)]
pub struct Rule {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// As written (unanchored), for display.
    pub regex_text: String,
    regex: Regex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// Largest regex program a rule may compile to (untrusted config and fuzz input).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `relabelTarget` in Prometheus: a label name that may hold `$1` / `${name}` references.
fn valid_target_template(s: &str) -> bool {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("valid"))
        .is_match(s)
}

/// Compiles a relabel regex as Prometheus does: anchored `^(?:...)$`.
pub fn anchored(text: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{text})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("error parsing regexp {text:?}: {e}"))
}

impl RawRule {
    /// Fills Prometheus's defaults in and checks the rule as Prometheus 2.42's
    /// `relabel.Config.UnmarshalYAML` does.
    pub fn build(&self) -> Result<Rule, String> {
        let action = match self.action.as_deref() {
            None => Action::Replace,
            Some("") => return Err("relabel action cannot be empty".into()),
            Some(a) => Action::parse(a).ok_or_else(|| format!("unknown relabel action {a:?}"))?,
        };
        if let Some(names) = &self.source_labels {
            for n in names {
                if !valid_label_name(n) {
                    return Err(format!("{n:?} is not a valid label name"));
                }
            }
        }
        let regex_text = self.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex = anchored(&regex_text)?;
        let r = Rule {
            source_labels: self.source_labels.clone().unwrap_or_default(),
            separator: self
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex_text,
            regex,
            modulus: self.modulus.unwrap_or(0),
            target_label: self.target_label.clone().unwrap_or_default(),
            replacement: self
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        };
        use Action::*;
        let a = action.as_str();
        if r.modulus == 0 && action == HashMod {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && r.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        if matches!(
            action,
            Replace | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && !valid_target_template(&r.target_label)
        {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                r.target_label
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && r.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if action == LabelMap && !valid_target_template(&r.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                r.replacement
            ));
        }
        if action == HashMod && !valid_label_name(&r.target_label) {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                r.target_label
            ));
        }
        if matches!(action, KeepEqual | DropEqual)
            // Prometheus compares the regex by identity with its default, so any regex written
            // in the file is refused here, even "(.*)".
            && (self.regex.is_some()
                || r.modulus != 0
                || r.separator != DEFAULT_SEPARATOR
                || r.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (self.source_labels.is_some()
                || !r.target_label.is_empty()
                || r.modulus != 0
                || r.separator != DEFAULT_SEPARATOR
                || r.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(r)
    }
}

/// Sets a label; an empty value removes it (Prometheus's `labels.Builder.Set`).
fn set(out: &mut LabelMap, name: &str, value: String) {
    if value.is_empty() {
        out.remove(name);
    } else {
        out.insert(name.to_string(), value);
    }
}

/// Applies the rules in order; `None` when a rule drops the set.
pub fn process(mut labels: LabelMap, rules: &[Rule]) -> Option<LabelMap> {
    for r in rules {
        labels = apply(labels, r)?;
    }
    Some(labels)
}

fn apply(labels: LabelMap, r: &Rule) -> Option<LabelMap> {
    let val = {
        let mut v = String::new();
        for (i, n) in r.source_labels.iter().enumerate() {
            if i > 0 {
                v.push_str(&r.separator);
            }
            if let Some(x) = labels.get(n) {
                v.push_str(x);
            }
        }
        v
    };
    let get = |n: &str| labels.get(n).map(String::as_str).unwrap_or("");
    match r.action {
        Action::Drop if r.regex.is_match(&val) => None,
        Action::Keep if !r.regex.is_match(&val) => None,
        Action::DropEqual if get(&r.target_label) == val => None,
        Action::KeepEqual if get(&r.target_label) != val => None,
        Action::Drop | Action::Keep | Action::DropEqual | Action::KeepEqual => Some(labels),
        Action::Replace => {
            let Some(caps) = r.regex.captures(&val) else {
                return Some(labels);
            };
            let mut out = labels;
            let mut target = String::new();
            caps.expand(&r.target_label, &mut target);
            if !valid_label_name(&target) {
                out.remove(&r.target_label);
                return Some(out);
            }
            let mut res = String::new();
            caps.expand(&r.replacement, &mut res);
            if res.is_empty() {
                out.remove(&r.target_label);
                return Some(out);
            }
            out.insert(target, res);
            Some(out)
        }
        Action::Lowercase => {
            let mut out = labels;
            set(&mut out, &r.target_label, val.to_lowercase());
            Some(out)
        }
        Action::Uppercase => {
            let mut out = labels;
            set(&mut out, &r.target_label, val.to_uppercase());
            Some(out)
        }
        Action::HashMod => {
            let digest = Md5::digest(val.as_bytes());
            // The last 8 bytes of the digest, big-endian (Prometheus's sum64 shifts the first
            // eight out of a 64-bit word).
            let mut s: u64 = 0;
            for b in &digest[8..] {
                s = (s << 8) | u64::from(*b);
            }
            let mut out = labels;
            set(&mut out, &r.target_label, (s % r.modulus).to_string());
            Some(out)
        }
        Action::LabelMap => {
            let mut out = labels.clone();
            for (name, value) in &labels {
                if r.regex.is_match(name) {
                    let res = r.regex.replace_all(name, r.replacement.as_str());
                    set(&mut out, &res, value.clone());
                }
            }
            Some(out)
        }
        Action::LabelDrop => {
            let mut out = labels;
            out.retain(|n, _| !r.regex.is_match(n));
            Some(out)
        }
        Action::LabelKeep => {
            let mut out = labels;
            out.retain(|n, _| r.regex.is_match(n));
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        let raw: RawRule = serde_norway::from_str(yaml).unwrap();
        raw.build().unwrap()
    }

    fn set_of(pairs: &[(&str, &str)]) -> LabelMap {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn actions_as_prometheus_applies_them() {
        let l = set_of(&[("a", "foo"), ("b", "bar"), ("c", "baz")]);
        type Case<'a> = (&'a str, Option<Vec<(&'a str, &'a str)>>);
        let cases: Vec<Case> = vec![
            (
                "{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
                Some(vec![
                    ("a", "foo"),
                    ("b", "bar"),
                    ("c", "baz"),
                    ("d", "choo-choo"),
                ]),
            ),
            (
                "{source_labels: [a, b], regex: '(f.*);(.*)r', target_label: a, replacement: '${1}${2}'}",
                Some(vec![("a", "fooba"), ("b", "bar"), ("c", "baz")]),
            ),
            // No match: unchanged.
            (
                "{source_labels: [a], regex: 'x', target_label: a, replacement: y}",
                Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz")]),
            ),
            // An empty replacement deletes the target label.
            (
                "{source_labels: [a], target_label: b, replacement: ''}",
                Some(vec![("a", "foo"), ("c", "baz")]),
            ),
            (
                "{source_labels: [a], regex: 'f(o+)', target_label: 'x_${1}', replacement: v}",
                Some(vec![
                    ("a", "foo"),
                    ("b", "bar"),
                    ("c", "baz"),
                    ("x_oo", "v"),
                ]),
            ),
            ("{source_labels: [a], regex: 'fo.*', action: drop}", None),
            (
                "{source_labels: [a], regex: 'f', action: drop}",
                Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz")]),
            ),
            ("{source_labels: [a], regex: 'f', action: keep}", None),
            (
                "{source_labels: [a], target_label: b, action: keepequal}",
                None,
            ),
            (
                "{source_labels: [a], target_label: b, action: DropEqual}",
                Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz")]),
            ),
            (
                "{source_labels: [a], target_label: e, action: uppercase}",
                Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz"), ("e", "FOO")]),
            ),
            (
                "{regex: '(b|c)', action: labeldrop}",
                Some(vec![("a", "foo")]),
            ),
            (
                "{regex: '(b|c)', action: labelkeep}",
                Some(vec![("b", "bar"), ("c", "baz")]),
            ),
            (
                "{regex: '(a|b)', replacement: 'new_${1}', action: labelmap}",
                Some(vec![
                    ("a", "foo"),
                    ("b", "bar"),
                    ("c", "baz"),
                    ("new_a", "foo"),
                    ("new_b", "bar"),
                ]),
            ),
        ];
        for (yaml, want) in cases {
            let got = process(l.clone(), &[rule(yaml)]);
            let want = want.map(|v| set_of(&v));
            assert_eq!(got, want, "{yaml}");
        }
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus 2.42's relabel_test.go: "baz" gives 976 and "foo\nbar" 734 modulo 1000.
        let r = rule("{source_labels: [a], modulus: 1000, target_label: b, action: hashmod}");
        for (v, want) in [("baz", "976"), ("foo\nbar", "734")] {
            let out = process(set_of(&[("a", v)]), std::slice::from_ref(&r)).unwrap();
            assert_eq!(out.get("b").map(String::as_str), Some(want), "{v:?}");
        }
    }

    #[test]
    fn checks_as_prometheus_does() {
        for bad in [
            "{source_labels: [a]}",
            "{action: nope}",
            "{action: replace}",
            "{action: hashmod, target_label: a}",
            "{action: replace, target_label: '1bad'}",
            "{action: lowercase, target_label: a, replacement: x}",
            "{action: keepequal, target_label: a, regex: '(.*)'}",
            "{action: labeldrop, source_labels: [a]}",
            "{action: labelkeep, regex: 'a', separator: ','}",
            "{action: labelmap, replacement: '-'}",
            "{action: keep, regex: '('}",
            "{action: keep, source_labels: ['1a']}",
            "{action: keep, bogus: 1}",
        ] {
            let raw: Result<RawRule, _> = serde_norway::from_str(bad);
            let built = raw.map_err(|e| e.to_string()).and_then(|r| r.build());
            assert!(built.is_err(), "{bad} was accepted");
        }
    }
}
