//! Go `text/template` as Prometheus uses it for alert labels and annotations: text and
//! `{{ actions }}` with trim markers and comments; pipelines with `|`, variables (`$x := ...`,
//! `$x = ...`), fields (`.Labels.instance`, `$labels.job`), parenthesised pipelines; `if` /
//! `else if` / `else`, `range` (with `$i, $e :=`, `else`, `break`, `continue`), `with`; Go's
//! built-in functions (`and or not len index print printf println eq ne lt le gt ge html js
//! urlquery`) and Prometheus's (`funcs.rs`). In Prometheus's dialect (alert rules) `define`,
//! `template` and `block` are parse errors, as they are useless there. Alertmanager's dialect
//! ([`TemplateSet`], notification templates) has `define`, `template` and `block`,
//! Alertmanager's functions (`toUpper toLower title join match safeHtml reReplaceAll
//! stringSlice`) and the methods its data carries (`.SortedPairs`, `.Names`, `.Values`,
//! `.Remove`, `.Firing`, `.Resolved`); its HTML mode escapes every printed value except
//! `safeHtml`'s, as Go's html/template does in text (not in attributes or scripts). Not
//! supported anywhere: `call`.
//!
//! Parsing (`parse.rs`) and execution (`exec.rs`) are bounded: template text is limited in size,
//! execution in steps and in output bytes, so a template cannot take the process down. This
//! module knows nothing of rules or PromQL: `query` goes through the [`QueryFn`] the caller
//! passes.

mod args;
mod exec;
mod funcs;
mod loki_funcs;
mod parse;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

pub use exec::Limits;
pub use funcs::{go_format_float, humanize, humanize_duration};
use parse::Node;

/// Longest template text accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 << 10;

/// Go's template errors: `template: NAME:LINE: msg` when parsing, `template: NAME:LINE:COL:
/// executing "NAME" at <CALL>: msg` when a function fails while executing.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub name: String,
    pub line: usize,
    /// 0-based byte column of the failing call (execution errors only).
    pub col: Option<usize>,
    pub msg: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.col {
            Some(c) => write!(f, "template: {}:{}:{c}: {}", self.name, self.line, self.msg),
            None => write!(f, "template: {}:{}: {}", self.name, self.line, self.msg),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A value templates work with: Go's dynamic values, reduced to what alert templates see.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(Rc<BTreeMap<String, Value>>),
    List(Rc<Vec<Value>>),
    /// A query result row: `.Labels` and `.Value`.
    Sample(Rc<Sample>),
    /// Text marked safe for HTML (`safeHtml`): printed as it is in HTML mode.
    Html(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Value {
    pub fn str_map(m: &BTreeMap<String, String>) -> Value {
        Value::Map(Rc::new(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
        ))
    }

    /// Go's `truth`: false for the zero value of its kind and for empty collections.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Sample(_) => true,
        }
    }

    /// Go's `%v`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<no value>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&go_format_float(*f, 'g', None)),
            Value::Str(s) | Value::Html(s) => out.push_str(s),
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::Sample(s) => {
                out.push_str("{map[");
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{k}:{v}");
                }
                let _ = write!(out, "] {}}}", go_format_float(s.value, 'g', None));
            }
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::Map(_) => "map",
            Value::List(_) => "slice",
            Value::Sample(_) => "sample",
        }
    }
}

/// Runs a PromQL instant query for the template's `query` function at the evaluation time.
pub trait QueryFn {
    fn query(&self, expr: &str) -> Result<Vec<Sample>, String>;
}

/// No `query` available: calling it is an error (rule checks, tests without a store).
pub struct NoQuery;

impl QueryFn for NoQuery {
    fn query(&self, _expr: &str) -> Result<Vec<Sample>, String> {
        Err("query is not available here".into())
    }
}

/// Everything a template may reach besides its data.
pub struct Env<'a> {
    pub query: &'a dyn QueryFn,
    pub external_url: &'a str,
    /// The URL path prefix of `external_url` (`pathPrefix`).
    pub path_prefix: &'a str,
    pub limits: Limits,
    /// Named templates `{{template}}` may call (Alertmanager's dialect).
    pub defs: Option<&'a TemplateSet>,
    /// Escape printed values for HTML text (email bodies).
    pub escape_html: bool,
    /// LogQL's formatters: the log line and its timestamp (ns), for `__line__` and
    /// `__timestamp__`; set, Loki's functions are callable.
    pub line: Option<(&'a str, i64)>,
}

/// Named templates (Alertmanager's defaults, then the files `templates:` names), and the
/// execution of a notification field's text against them.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    defs: std::collections::HashMap<String, std::sync::Arc<Vec<Node>>>,
}

impl TemplateSet {
    /// Adds the `define`s of one text (a later definition of a name replaces the earlier).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let (_, defs) = Template::parse_dialect(name, text, funcs::Dialect::Alertmanager)?;
        for (n, body) in defs {
            self.defs.insert(n, std::sync::Arc::new(body));
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    fn get(&self, name: &str) -> Option<std::sync::Arc<Vec<Node>>> {
        self.defs.get(name).cloned()
    }

    /// Executes `text` (which may define templates of its own) with `data`; "" stays "".
    pub fn execute(&self, text: &str, data: &Value, html: bool) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let (tmpl, defs) = Template::parse_dialect("", text, funcs::Dialect::Alertmanager)?;
        let mut local;
        let set = if defs.is_empty() {
            self
        } else {
            local = self.clone();
            for (n, body) in defs {
                local.defs.insert(n, std::sync::Arc::new(body));
            }
            &local
        };
        let env = Env {
            query: &NoQuery,
            external_url: "",
            path_prefix: "",
            limits: Limits::default(),
            defs: Some(set),
            escape_html: html,
            line: None,
        };
        tmpl.execute(data, &env)
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    src: String,
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::parse_dialect(name, text, funcs::Dialect::Prometheus).map(|(t, _)| t)
    }

    /// A template of LogQL's `line_format` / `label_format`: Go's built-ins and Loki's
    /// functions; execute it with [`Env::line`] set.
    pub fn parse_loki(name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::parse_dialect(name, text, funcs::Dialect::Loki).map(|(t, _)| t)
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    fn parse_dialect(
        name: &str,
        text: &str,
        dialect: funcs::Dialect,
    ) -> Result<(Template, parse::Defs), TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError {
                name: name.to_string(),
                line: 1,
                col: None,
                msg: format!("template is longer than {MAX_TEMPLATE_BYTES} bytes"),
            });
        }
        let (nodes, defs) =
            parse::parse_with(text, dialect).map_err(|(line, msg)| TemplateError {
                name: name.to_string(),
                line,
                col: None,
                msg,
            })?;
        Ok((
            Template {
                name: name.to_string(),
                src: text.to_string(),
                nodes,
            },
            defs,
        ))
    }

    pub fn execute(&self, data: &Value, env: &Env<'_>) -> Result<String, TemplateError> {
        exec::run(&self.nodes, data, env).map_err(|(line, msg, at)| match at {
            Some((pos, text)) => {
                let before = &self.src[..pos.min(self.src.len())];
                TemplateError {
                    name: self.name.clone(),
                    line: 1 + before.matches('\n').count(),
                    col: Some(pos - before.rfind('\n').map_or(0, |i| i + 1)),
                    msg: format!("executing {:?} at <{text}>: {msg}", self.name),
                }
            }
            None => TemplateError {
                name: self.name.clone(),
                line,
                col: None,
                msg,
            },
        })
    }
}

/// An alert's label or annotation template as Prometheus expands it: with `$labels`,
/// `$externalLabels`, `$externalURL` and `$value` defined in front.
pub fn alert_text(text: &str) -> String {
    format!(
        "{{{{$labels := .Labels}}}}{{{{$externalLabels := .ExternalLabels}}}}{{{{$externalURL := .ExternalURL}}}}{{{{$value := .Value}}}}{text}"
    )
}

/// The data Prometheus gives an alert's templates (`.Labels`, `.ExternalLabels`,
/// `.ExternalURL`, `.Value`).
pub fn alert_data(
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".to_string(), Value::str_map(labels));
    m.insert(
        "ExternalLabels".to_string(),
        Value::str_map(external_labels),
    );
    m.insert(
        "ExternalURL".to_string(),
        Value::Str(external_url.to_string()),
    );
    m.insert("Value".to_string(), Value::Float(value));
    Value::Map(Rc::new(m))
}

#[cfg(test)]
mod tests;
