//! Rule files in Prometheus's format (`groups:` of `record:` / `alert:` rules), read and checked
//! as Prometheus 2.42's `rulefmt` checks them: unknown keys refused, expressions parsed, names,
//! labels, annotations and templates validated, group names unique in a file. Each error names
//! the file, the line and the group and rule it is in.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::promql::{self, Expr};
use crate::template;
use crate::tsdb::labels::{valid_label_name, valid_metric_name};

/// Largest rule file read: rule files are hand-written, so anything larger is a mistake.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// What is wrong with a rule file, in promtool's words where it has some.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Option<Vec<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Recording or alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Record,
    Alert,
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub kind: RuleKind,
    /// The recorded metric or the alert's name.
    pub name: String,
    pub expr: Expr,
    /// `for` in ms (alerts only).
    pub hold_ms: i64,
    pub keep_firing_for_ms: i64,
    /// Label templates (alerts) or values (records), sorted by name.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// 1-based line of the rule in its file, 0 when unknown.
    pub line: usize,
}

impl RuleSpec {
    /// Rules with the same kind, name, expression, `for`, labels and annotations are the same
    /// rule across a reload (Prometheus matches by name and labels and copies state).
    pub fn identity(&self) -> String {
        let mut s = format!("{:?}\u{0}{}\u{0}", self.kind, self.name);
        for (k, v) in &self.labels {
            s.push_str(k);
            s.push('\u{1}');
            s.push_str(v);
            s.push('\u{1}');
        }
        s
    }
}

/// One checked group.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub name: String,
    /// The file as configured (what `/api/v1/rules` shows as `file`).
    pub file: String,
    /// `None`: the global evaluation interval.
    pub interval_ms: Option<i64>,
    pub limit: usize,
    pub rules: Vec<RuleSpec>,
}

/// A checked file.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub path: String,
    pub groups: Vec<GroupSpec>,
}

impl RuleFile {
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

/// Reads and checks one file.
pub fn load_file(path: &Path) -> Result<RuleFile, FileError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| FileError(format!("{shown}: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError(format!(
            "{shown}: file is {} bytes, more than the {} a rule file may have",
            meta.len(),
            MAX_FILE_BYTES
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| FileError(format!("{shown}: {e}")))?;
    parse(&shown, &text).map_err(|errs| FileError(errs.join("\n")))
}

/// Parses and checks a file's text; every error found, each with the file name in front.
pub fn parse(file: &str, text: &str) -> Result<RuleFile, Vec<String>> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: None }
    } else {
        serde_norway::from_str(text).map_err(|e| vec![format!("{file}: {}", yaml_error(&e))])?
    };
    let total: usize = raw
        .groups
        .iter()
        .flatten()
        .map(|g| g.rules.as_ref().map_or(0, Vec::len))
        .sum();
    let mut positions = rule_positions(text);
    if positions.len() != total {
        positions = vec![RulePos::default(); total];
    }
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    let mut k = 0;
    for g in raw.groups.unwrap_or_default() {
        let name = g.name.unwrap_or_default();
        if name.is_empty() {
            errs.push(format!("{file}: groupname must not be empty"));
        } else if !names.insert(name.clone()) {
            errs.push(format!(
                "{file}: {name:?}: groupname: \"{name}\" is repeated in the same file"
            ));
        }
        let interval_ms = match g.interval.as_deref() {
            None => None,
            Some(s) => match promql::parse_duration(s.trim()) {
                Some(0) => None,
                Some(ms) => Some(ms),
                None => {
                    errs.push(format!(
                        "{file}: group {name:?}: not a valid duration string: {s:?}"
                    ));
                    None
                }
            },
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
            let pos = positions[k];
            k += 1;
            match check_rule(r, pos.item) {
                Ok(rule) => rules.push(rule),
                Err((rule_name, es)) => {
                    for (at, e) in es {
                        let at = match at {
                            At::Name if pos.name.0 > 0 => {
                                format!("{}:{}: ", pos.name.0, pos.name.1)
                            }
                            At::Expr if pos.expr.0 > 0 => {
                                format!("{}:{}: ", pos.expr.0, pos.expr.1)
                            }
                            _ => String::new(),
                        };
                        errs.push(format!(
                            "{file}: {at}group {name:?}, rule {}, {rule_name:?}: {e}",
                            i + 1
                        ));
                    }
                }
            }
        }
        groups.push(GroupSpec {
            name,
            file: file.to_string(),
            interval_ms,
            limit: g.limit.unwrap_or(0).max(0) as usize,
            rules,
        });
    }
    if errs.is_empty() {
        Ok(RuleFile {
            path: file.to_string(),
            groups,
        })
    } else {
        Err(errs)
    }
}

fn yaml_error(e: &serde_norway::Error) -> String {
    // "groups[0].rules[1]: unknown field `foo`, expected ... at line 7 column 9"
    let s = e.to_string();
    s.replace("`", "\"")
}

/// Which node of a rule an error points at.
#[derive(Debug, Clone, Copy)]
enum At {
    Name,
    Expr,
    None,
}

type RuleErrors = Vec<(At, String)>;

fn duration_field(what: &str, v: &Option<String>, errs: &mut RuleErrors) -> i64 {
    match v.as_deref().map(str::trim) {
        None => 0,
        Some(s) => match promql::parse_duration(s) {
            Some(ms) => ms,
            None => {
                errs.push((
                    At::None,
                    format!("{what}: not a valid duration string: {s:?}"),
                ));
                0
            }
        },
    }
}

fn check_rule(r: RawRule, line: usize) -> Result<RuleSpec, (String, RuleErrors)> {
    let mut errs: RuleErrors = Vec::new();
    let record = r.record.clone().unwrap_or_default();
    let alert = r.alert.clone().unwrap_or_default();
    let name = if record.is_empty() {
        alert.clone()
    } else {
        record.clone()
    };
    let kind = match (record.is_empty(), alert.is_empty()) {
        (false, false) => {
            errs.push((
                At::Name,
                "only one of 'record' and 'alert' must be set".into(),
            ));
            RuleKind::Record
        }
        (true, true) => {
            errs.push((At::None, "one of 'record' or 'alert' must be set".into()));
            RuleKind::Record
        }
        (false, true) => RuleKind::Record,
        (true, false) => RuleKind::Alert,
    };
    let expr_text = r.expr.clone().unwrap_or_default();
    let expr = if expr_text.trim().is_empty() {
        errs.push((At::None, "field 'expr' must be set in rule".into()));
        None
    } else {
        match promql::parse(&expr_text) {
            Ok(e) => Some(e),
            Err(e) => {
                errs.push((At::Expr, format!("could not parse expression: {e}")));
                None
            }
        }
    };
    let hold_ms = duration_field("for", &r.for_, &mut errs);
    let keep_firing_for_ms = duration_field("keep_firing_for", &r.keep_firing_for, &mut errs);
    let labels: Vec<(String, String)> = r.labels.unwrap_or_default().into_iter().collect();
    let annotations: Vec<(String, String)> =
        r.annotations.unwrap_or_default().into_iter().collect();
    if kind == RuleKind::Record && !record.is_empty() {
        if !annotations.is_empty() {
            errs.push((
                At::Name,
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if hold_ms != 0 {
            errs.push((At::Name, "invalid field 'for' in recording rule".into()));
        }
        if keep_firing_for_ms != 0 {
            errs.push((
                At::Name,
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if !valid_metric_name(&record) {
            errs.push((At::Name, format!("invalid recording rule name: {record}")));
        }
    }
    for (k, _) in &labels {
        if !valid_label_name(k) || k == "__name__" {
            errs.push((At::None, format!("invalid label name: {k}")));
        }
    }
    for (k, _) in &annotations {
        if !valid_label_name(k) {
            errs.push((At::None, format!("invalid annotation name: {k}")));
        }
    }
    if kind == RuleKind::Alert {
        let tagged = labels
            .iter()
            .map(|l| ("label", l))
            .chain(annotations.iter().map(|a| ("annotation", a)));
        for (what, (k, v)) in tagged {
            if let Err(e) =
                template::Template::parse(&format!("__alert_{name}"), &template::alert_text(v))
            {
                errs.push((At::None, format!("{what} {k:?}: {e}")));
            }
        }
    }
    match (errs.is_empty(), expr) {
        (true, Some(expr)) => Ok(RuleSpec {
            kind,
            name,
            expr,
            hold_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            line,
        }),
        _ => Err((name, errs)),
    }
}

/// Where a rule's name and expression values start (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RulePos {
    item: usize,
    name: (usize, usize),
    expr: (usize, usize),
}

const RULE_KEYS: [&str; 7] = [
    "record:",
    "alert:",
    "expr:",
    "for:",
    "keep_firing_for:",
    "labels:",
    "annotations:",
];

/// The position of each rule in file order, for block-style YAML: a rule is a sequence item
/// whose first key is a rule key; inside it, the `record:`/`alert:` and `expr:` values. Block
/// scalars (`|`, `>`) are skipped so their text cannot be mistaken for keys. The caller uses the
/// list only when it has one entry per rule.
fn rule_positions(text: &str) -> Vec<RulePos> {
    let mut out: Vec<RulePos> = Vec::new();
    let mut item_indent: Option<usize> = None;
    let mut block_indent: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if let Some(b) = block_indent {
            if body.is_empty() || indent > b {
                continue;
            }
            block_indent = None;
        }
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let (item, is_new) = match body.strip_prefix("- ") {
            Some(rest) => (rest.trim_start(), true),
            None => (body, false),
        };
        let key_indent = indent + (body.len() - item.len());
        let is_rule_key = RULE_KEYS.iter().any(|k| item.starts_with(k));
        if is_new && is_rule_key {
            out.push(RulePos {
                item: n + 1,
                ..RulePos::default()
            });
            item_indent = Some(indent);
        } else if item_indent.is_some_and(|i| indent <= i) {
            item_indent = None;
        }
        if item_indent.is_some()
            && let Some(pos) = out.last_mut()
        {
            let value_col = |key: &str| {
                let rest = &item[key.len()..];
                key_indent + key.len() + (rest.len() - rest.trim_start().len()) + 1
            };
            if item.starts_with("record:") || item.starts_with("alert:") {
                let key = if item.starts_with("record:") {
                    "record:"
                } else {
                    "alert:"
                };
                pos.name = (n + 1, value_col(key));
            } else if item.starts_with("expr:") {
                pos.expr = (n + 1, value_col("expr:"));
            }
        }
        // A block scalar starts where a value is `|` or `>` with optional modifiers.
        if let Some(p) = item.find(':') {
            let v = item[p + 1..].trim();
            let v = v.split(" #").next().unwrap_or("").trim();
            if (v.starts_with('|') || v.starts_with('>'))
                && v[1..]
                    .chars()
                    .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
            {
                block_indent = Some(key_indent);
            }
        }
    }
    out
}

/// Expands `[rules] files` patterns (relative ones against `base`) into the files they name,
/// sorted and without repeats. A pattern that is not a glob must name an existing file.
pub fn expand_patterns(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, FileError> {
    let mut out = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let text = full.display().to_string();
        let paths =
            glob::glob(&text).map_err(|e| FileError(format!("rule file pattern {p:?}: {e}")))?;
        let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        found.sort();
        if found.is_empty() && !p.contains(['*', '?', '[']) {
            return Err(FileError(format!(
                "rule file {text}: no such file (from pattern {p:?})"
            )));
        }
        out.extend(found);
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_skip_block_scalars() {
        let text = "groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n  - alert: Y\n    expr: up\n    annotations:\n      d: |\n        alert: not a rule\n        - record: nor this\n  - expr: up\n    record: z\n";
        let p = rule_positions(text);
        assert_eq!(p.iter().map(|p| p.item).collect::<Vec<_>>(), vec![4, 6, 12]);
        assert_eq!(p[0].name, (4, 13));
        assert_eq!(p[0].expr, (5, 11));
        assert_eq!(p[2].name, (13, 13));
        let f = parse("f.yml", text).unwrap();
        assert_eq!(f.rule_count(), 3);
        assert_eq!(f.groups[0].rules[2].line, 12);
    }

    #[test]
    fn errors_name_group_rule_and_position() {
        // promtool 2.42 prints these two lines for this file.
        let text = "groups:\n- name: a\n  rules:\n  - record: \"a b\"\n    expr: sum(\n";
        let errs = parse("t.yml", text).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "t.yml: 5:11: group \"a\", rule 1, \"a b\": could not parse expression"
            ),
            "{errs:?}"
        );
        assert_eq!(
            errs[1],
            "t.yml: 4:13: group \"a\", rule 1, \"a b\": invalid recording rule name: a b"
        );
        let e = parse(
            "f.yml",
            "groups:\n- name: a\n  rules:\n  - record: x\n    exp: up\n",
        )
        .unwrap_err();
        assert!(e[0].contains("unknown field \"exp\""), "{e:?}");
        assert!(e[0].contains("line 5"), "{e:?}");
    }
}
