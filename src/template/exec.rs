//! Executes parsed templates with Go's semantics (dot, variables scoped to their block, `range`
//! over lists, maps and integers, `with`), bounded in steps and output.

use super::parse::{Arg, Cmd, Node, Pipe};
use super::{Env, Value, funcs};

/// Bounds on one execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes, commands and loop iterations, together.
    pub max_steps: u64,
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 100_000,
            max_output_bytes: 1 << 20,
        }
    }
}

type XResult<T> = Result<T, (usize, String)>;

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Deepest nesting of `{{template}}` calls.
const MAX_DEPTH: usize = 100;

struct Ex<'a, 'e> {
    env: &'a Env<'e>,
    steps: u64,
    depth: usize,
    out: String,
    vars: Vec<(String, Value)>,
    /// Where a function call failed: the command's offset and text (Go names them).
    err_at: Option<(usize, String)>,
}

/// An execution error: line, message, and the failing call's offset and text when a function
/// failed.
pub(super) type RunError = (usize, String, Option<(usize, String)>);

pub(super) fn run(nodes: &[Node], data: &Value, env: &Env<'_>) -> Result<String, RunError> {
    let mut ex = Ex {
        env,
        steps: 0,
        depth: 0,
        out: String::new(),
        vars: vec![(String::new(), data.clone())],
        err_at: None,
    };
    match ex.walk(nodes, data) {
        Ok(_) => Ok(ex.out),
        Err((line, msg)) => Err((line, msg, ex.err_at.take())),
    }
}

impl Ex<'_, '_> {
    fn step(&mut self, line: usize) -> XResult<()> {
        self.steps += 1;
        if self.steps > self.env.limits.max_steps {
            return Err((
                line,
                format!(
                    "template stopped after {} steps (the limit)",
                    self.env.limits.max_steps
                ),
            ));
        }
        if self.out.len() > self.env.limits.max_output_bytes {
            return Err((
                line,
                format!(
                    "template output passed {} bytes (the limit)",
                    self.env.limits.max_output_bytes
                ),
            ));
        }
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> XResult<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => {
                    self.step(0)?;
                    self.out.push_str(t);
                }
                Node::Action(p) => {
                    self.step(p.line)?;
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        if self.env.escape_html && !matches!(v, Value::Html(_)) {
                            let t = v.to_text();
                            self.out.push_str(&funcs::html_escape(&t));
                        } else {
                            v.write_to(&mut self.out);
                        }
                    }
                }
                Node::Template(line, name, p) => {
                    self.step(*line)?;
                    let Some(body) = self.env.defs.and_then(|d| d.get(name)) else {
                        return Err((*line, format!("no such template {name:?}")));
                    };
                    let arg = match p {
                        Some(p) => {
                            let mark = self.vars.len();
                            let v = self.pipe(p, dot)?;
                            self.vars.truncate(mark);
                            v
                        }
                        None => Value::Nil,
                    };
                    if self.depth >= MAX_DEPTH {
                        return Err((
                            *line,
                            format!("exceeded maximum template depth ({MAX_DEPTH})"),
                        ));
                    }
                    // A called template sees only its argument: `$` is the argument.
                    let saved =
                        std::mem::replace(&mut self.vars, vec![(String::new(), arg.clone())]);
                    self.depth += 1;
                    let r = self.walk(&body, &arg);
                    self.depth -= 1;
                    self.vars = saved;
                    r?;
                }
                Node::If(p, then, els) | Node::With(p, then, els) => {
                    self.step(p.line)?;
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let is_with = matches!(n, Node::With(..));
                    let flow = if v.truth() {
                        if is_with {
                            self.walk(then, &v)?
                        } else {
                            self.walk(then, dot)?
                        }
                    } else {
                        self.walk(els, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(p, body, els) => {
                    self.step(p.line)?;
                    self.range(p, body, els, dot)?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, p: &Pipe, body: &[Node], els: &[Node], dot: &Value) -> XResult<()> {
        // The declared variables are bound per element, not to the pipeline's value.
        let head = Pipe {
            line: p.line,
            decl: Vec::new(),
            assign: false,
            cmds: p.cmds.clone(),
        };
        let v = self.pipe(&head, dot)?;
        let elems: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, e)| (Value::Str(k.clone()), e.clone()))
                .collect(),
            Value::Int(n) => {
                if *n > self.env.limits.max_steps as i64 {
                    return Err((p.line, format!("range over {n} is past the step limit")));
                }
                (0..(*n).max(0))
                    .map(|i| (Value::Int(i), Value::Int(i)))
                    .collect()
            }
            Value::Nil => Vec::new(),
            other => {
                return Err((
                    p.line,
                    format!("range can't iterate over {}", other.to_text()),
                ));
            }
        };
        let mark = self.vars.len();
        if elems.is_empty() {
            self.walk(els, dot)?;
        }
        for (k, e) in elems {
            self.step(p.line)?;
            self.vars.truncate(mark);
            match p.decl.as_slice() {
                [one] => self.vars.push((one.clone(), e.clone())),
                [a, b] => {
                    self.vars.push((a.clone(), k));
                    self.vars.push((b.clone(), e.clone()));
                }
                _ => {}
            }
            match self.walk(body, &e)? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> XResult<Value> {
        let mut prev: Option<Value> = None;
        for c in &p.cmds {
            self.step(p.line)?;
            prev = Some(self.cmd(p.line, c, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Nil);
        if p.assign {
            let name = &p.decl[0];
            match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v.clone(),
                None => return Err((p.line, format!("undefined variable: ${name}"))),
            }
        } else if let [one] = p.decl.as_slice() {
            self.vars.push((one.clone(), v.clone()));
        }
        Ok(v)
    }

    fn cmd(&mut self, line: usize, c: &Cmd, dot: &Value, prev: Option<Value>) -> XResult<Value> {
        if let Arg::Func(name) = &c.args[0] {
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(self.operand(line, a, dot)?);
            }
            if let Some(p) = prev {
                args.push(p);
            }
            return match funcs::call(name, args, self.env) {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.err_at = Some((c.pos, c.text.clone()));
                    Err((line, format!("error calling {name}: {e}")))
                }
            };
        }
        if c.args.len() > 1 || prev.is_some() {
            // A method with arguments at the end of a field chain (`.CommonLabels.Remove
            // .GroupLabels.Names`); the pipeline's value comes last, as Go passes it.
            let chain_end = match &c.args[0] {
                Arg::Field(ch) | Arg::Var(_, ch) => ch.last().cloned(),
                _ => None,
            };
            if let Some(m) = chain_end.filter(|m| m == "Remove") {
                let recv = match &c.args[0] {
                    Arg::Field(ch) => fields(line, dot.clone(), &ch[..ch.len() - 1])?,
                    Arg::Var(name, ch) => {
                        let v = self.var(line, name)?;
                        fields(line, v, &ch[..ch.len() - 1])?
                    }
                    _ => unreachable!("checked above"),
                };
                let mut args = Vec::new();
                for a in &c.args[1..] {
                    args.push(self.operand(line, a, dot)?);
                }
                if let Some(p) = prev {
                    args.push(p);
                }
                return method_with_args(line, &recv, &m, &args);
            }
            return Err((line, "can't give argument to non-function".into()));
        }
        self.operand(line, &c.args[0], dot)
    }

    fn var(&self, line: usize, name: &str) -> XResult<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or((line, format!("undefined variable: ${name}")))
    }

    fn operand(&mut self, line: usize, a: &Arg, dot: &Value) -> XResult<Value> {
        Ok(match a {
            Arg::Field(chain) => fields(line, dot.clone(), chain)?,
            Arg::Var(name, chain) => {
                let v = self.var(line, name)?;
                fields(line, v, chain)?
            }
            Arg::Func(name) => funcs::call(name, Vec::new(), self.env)
                .map_err(|e| (line, format!("error calling {name}: {e}")))?,
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                fields(line, v, chain)?
            }
        })
    }
}

/// `.a.b` on a value: map keys (a missing key is "", Prometheus's `missingkey=zero`), a
/// sample's `Labels` and `Value`.
fn fields(line: usize, mut v: Value, chain: &[String]) -> XResult<Value> {
    for f in chain {
        if let Some(r) = method(&v, f) {
            v = r;
            continue;
        }
        v = match &v {
            Value::Map(m) => m.get(f).cloned().unwrap_or(Value::Str(String::new())),
            Value::Sample(s) => match f.as_str() {
                "Labels" => Value::str_map(&s.labels),
                "Value" => Value::Float(s.value),
                _ => {
                    return Err((
                        line,
                        format!("can't evaluate field {f} in type *template.sample"),
                    ));
                }
            },
            Value::Nil => return Err((line, format!("nil pointer evaluating .{f}"))),
            other => {
                return Err((
                    line,
                    format!("can't evaluate field {f} in type {}", other.kind()),
                ));
            }
        };
    }
    Ok(v)
}

/// Alertmanager's data methods without arguments: on a label or annotation map
/// (`SortedPairs`, `Names`, `Values`: `alertname` first, then by name), on a pair list (`Names`,
/// `Values`) and on an alert list (`Firing`, `Resolved`). Maps of notification data are the
/// only maps these names reach; a label named like a method loses to it, as in Go.
fn method(v: &Value, name: &str) -> Option<Value> {
    use std::rc::Rc;
    let str_of = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        other => other.to_text(),
    };
    match (v, name) {
        (Value::Map(m), "SortedPairs" | "Names" | "Values") => {
            if m.values().any(|x| !matches!(x, Value::Str(_))) {
                return None;
            }
            let mut keys: Vec<&String> = m.keys().collect();
            if let Some(i) = keys.iter().position(|k| *k == "alertname") {
                let k = keys.remove(i);
                keys.insert(0, k);
            }
            Some(Value::List(Rc::new(match name {
                "Names" => keys.iter().map(|k| Value::Str((*k).clone())).collect(),
                "Values" => keys.iter().map(|k| m[*k].clone()).collect(),
                _ => keys
                    .iter()
                    .map(|k| {
                        let mut p = std::collections::BTreeMap::new();
                        p.insert("Name".to_string(), Value::Str((*k).clone()));
                        p.insert("Value".to_string(), m[*k].clone());
                        Value::Map(Rc::new(p))
                    })
                    .collect(),
            })))
        }
        (Value::List(l), "Names" | "Values") => {
            let key = if name == "Names" { "Name" } else { "Value" };
            let mut out = Vec::with_capacity(l.len());
            for e in l.iter() {
                match e {
                    Value::Map(m) => out.push(Value::Str(str_of(m.get(key)?))),
                    _ => return None,
                }
            }
            Some(Value::List(Rc::new(out)))
        }
        (Value::List(l), "Firing" | "Resolved") => {
            let want = if name == "Firing" {
                "firing"
            } else {
                "resolved"
            };
            Some(Value::List(Rc::new(
                l.iter()
                    .filter(|e| match e {
                        Value::Map(m) => m.get("Status").is_some_and(|s| str_of(s) == want),
                        _ => false,
                    })
                    .cloned()
                    .collect(),
            )))
        }
        _ => None,
    }
}

/// `KV.Remove(names)`: the map without those keys.
fn method_with_args(line: usize, recv: &Value, name: &str, args: &[Value]) -> XResult<Value> {
    match (recv, name, args) {
        (Value::Map(m), "Remove", [Value::List(keys)]) => {
            let drop: Vec<String> = keys
                .iter()
                .map(|k| match k {
                    Value::Str(s) => s.clone(),
                    other => other.to_text(),
                })
                .collect();
            Ok(Value::Map(std::rc::Rc::new(
                m.iter()
                    .filter(|(k, _)| !drop.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )))
        }
        _ => Err((
            line,
            format!("can't call method {name} with these arguments"),
        )),
    }
}
