//! Template text -> nodes. Two passes: the text is cut into plain text and actions (trim markers
//! and comments applied), each action lexed into tokens; then the actions are parsed into a tree,
//! checking variables and function names as Go's parser does. Errors carry the 1-based line.

use super::funcs;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    /// `.a.b`; empty for a lone `.`.
    Field(Vec<String>),
    /// `$name.a.b`; the name is "" for `$`.
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Pipe,
    LParen,
    /// `)` followed directly by a field chain (`(...).a.b`), possibly empty.
    RParen(Vec<String>),
    Comma,
    Decl,
    Assign,
}

#[derive(Debug, Clone)]
pub(super) enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
    /// Byte offset of the command's first token in the template text.
    pub pos: usize,
    /// The command as Go prints it in errors (`index $labels 1`).
    pub text: String,
}

#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub line: usize,
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
    /// `{{template "name" pipeline}}` (the pipeline is optional).
    Template(usize, String, Option<Pipe>),
}

use super::funcs::Dialect;

/// Named templates from `{{define}}` and `{{block}}`.
pub(super) type Defs = Vec<(String, Vec<Node>)>;

type PResult<T> = Result<T, (usize, String)>;

enum Item {
    Text(String),
    /// Line, tokens, and each token's byte offset.
    Action(usize, Vec<Tok>, Vec<usize>),
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Cuts `text` into text and lexed actions.
fn items(text: &str) -> PResult<Vec<Item>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    let line_at = |i: usize| 1 + text[..i].bytes().filter(|&c| c == b'\n').count();
    loop {
        let Some(rel) = text[pos..].find("{{") else {
            let mut t = &text[pos..];
            if trim_next {
                t = t.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            if !t.is_empty() {
                out.push(Item::Text(t.to_string()));
            }
            return Ok(out);
        };
        let open = pos + rel;
        let mut inner = open + 2;
        let trim_left = b.len() > inner + 1 && b[inner] == b'-' && is_space(b[inner + 1]);
        let mut t = &text[pos..open];
        if trim_next {
            t = t.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        if trim_left {
            t = t.trim_end_matches([' ', '\t', '\r', '\n']);
            inner += 2;
        }
        if !t.is_empty() {
            out.push(Item::Text(t.to_string()));
        }
        let line = line_at(open);
        // A comment: `{{/* ... */}}`, with optional trim markers around it.
        let after_space = inner + text[inner..].len() - text[inner..].trim_start().len();
        if text[after_space..].starts_with("/*") {
            let Some(end) = text[after_space..].find("*/") else {
                return Err((line, "unclosed comment".into()));
            };
            let mut k = after_space + end + 2;
            let rest = &text[k..];
            let (close_trim, skip) = if rest.starts_with(" -}}") {
                (true, 4)
            } else if rest.starts_with("}}") {
                (false, 2)
            } else {
                return Err((line, "comment ends before closing delimiter".into()));
            };
            k += skip;
            trim_next = close_trim;
            pos = k;
            continue;
        }
        let (toks, spans, end, trim_right) = lex_action(text, inner, line)?;
        out.push(Item::Action(line, toks, spans));
        trim_next = trim_right;
        pos = end;
    }
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn read_chain(b: &[u8], mut i: usize) -> (Vec<String>, usize) {
    let mut chain = Vec::new();
    while i < b.len() && b[i] == b'.' && i + 1 < b.len() && ident_char(b[i + 1]) {
        let s = i + 1;
        i += 1;
        while i < b.len() && ident_char(b[i]) {
            i += 1;
        }
        chain.push(String::from_utf8_lossy(&b[s..i]).into_owned());
    }
    (chain, i)
}

/// Lexes one action from `start` (after `{{` and any trim marker) to its `}}`; returns the
/// tokens, the offset after the action and whether it ends with a trim marker.
type Lexed = (Vec<Tok>, Vec<usize>, usize, bool);

fn lex_action(text: &str, start: usize, line: usize) -> PResult<Lexed> {
    let b = text.as_bytes();
    let mut i = start;
    let mut toks = Vec::new();
    let mut spans = Vec::new();
    let mut last_start = start;
    loop {
        while spans.len() < toks.len() {
            spans.push(last_start);
        }
        while i < b.len() && is_space(b[i]) {
            // ` -}}` closes with a trim marker.
            if b[i..].starts_with(b" -}}")
                || b[i..].starts_with(b"\n-}}")
                || b[i..].starts_with(b"\t-}}")
            {
                spans.resize(toks.len(), last_start);
                return Ok((toks, spans, i + 4, true));
            }
            i += 1;
        }
        if i >= b.len() {
            return Err((line, "unclosed action".into()));
        }
        if b[i..].starts_with(b"}}") {
            spans.resize(toks.len(), last_start);
            return Ok((toks, spans, i + 2, false));
        }
        let c = b[i];
        last_start = i;
        match c {
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                let (chain, j) = read_chain(b, i + 1);
                toks.push(Tok::RParen(chain));
                i = j;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Decl);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'.' if b.get(i + 1).is_none_or(|&n| !n.is_ascii_digit()) => {
                let (chain, j) = read_chain(b, i);
                if chain.is_empty() {
                    i += 1;
                } else {
                    i = j;
                }
                toks.push(Tok::Field(chain));
            }
            b'$' => {
                let s = i + 1;
                let mut j = s;
                while j < b.len() && ident_char(b[j]) {
                    j += 1;
                }
                let name = text[s..j].to_string();
                let (chain, k) = read_chain(b, j);
                toks.push(Tok::Var(name, chain));
                i = k;
            }
            b'"' => {
                let (s, j) = lex_quoted(text, i, line)?;
                toks.push(Tok::Str(s));
                i = j;
            }
            b'`' => {
                let Some(end) = text[i + 1..].find('`') else {
                    return Err((line, "unterminated raw quoted string".into()));
                };
                toks.push(Tok::Str(text[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'\'' => {
                let rest = &text[i + 1..];
                let mut chars = rest.char_indices();
                let v = match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => '\n' as i64,
                        Some((_, 't')) => '\t' as i64,
                        Some((_, '\\')) => '\\' as i64,
                        Some((_, '\'')) => '\'' as i64,
                        _ => return Err((line, "bad character constant".into())),
                    },
                    Some((_, ch)) => ch as i64,
                    None => return Err((line, "unterminated character constant".into())),
                };
                match chars.next() {
                    Some((k, '\'')) => {
                        toks.push(Tok::Int(v));
                        i += 1 + k + 1;
                    }
                    _ => return Err((line, "unterminated character constant".into())),
                }
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => {
                let s = i;
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'.'
                        || b[j] == b'_'
                        || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let word = text[s..j].replace('_', "");
                toks.push(
                    number(&word).ok_or((line, format!("bad number syntax: {:?}", &text[s..j])))?,
                );
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let s = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident(text[s..i].to_string()));
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err((line, format!("unexpected {ch:?} in command")));
            }
        }
    }
}

fn number(w: &str) -> Option<Tok> {
    let (neg, body) = match w.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bn) = lower.strip_prefix("0b") {
        i64::from_str_radix(bn, 2).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        if lower.len() > 1 && lower.starts_with('0') {
            i64::from_str_radix(&lower, 8).ok()
        } else {
            lower.parse().ok()
        }
    } else {
        None
    };
    if let Some(v) = int {
        return Some(Tok::Int(if neg { -v } else { v }));
    }
    if lower.starts_with("0x") || lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    let f: f64 = body.parse().ok()?;
    Some(Tok::Float(if neg { -f } else { f }))
}

fn lex_quoted(text: &str, start: usize, line: usize) -> PResult<(String, usize)> {
    let mut out = String::new();
    let mut it = text[start + 1..].char_indices();
    while let Some((k, c)) = it.next() {
        match c {
            '"' => return Ok((out, start + 1 + k + 1)),
            '\n' => break,
            '\\' => match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, 'a')) => out.push('\u{7}'),
                Some((_, 'b')) => out.push('\u{8}'),
                Some((_, 'f')) => out.push('\u{c}'),
                Some((_, 'v')) => out.push('\u{b}'),
                Some((_, 'x')) => {
                    let h: String = (0..2).filter_map(|_| it.next().map(|(_, c)| c)).collect();
                    let v = u8::from_str_radix(&h, 16)
                        .map_err(|_| (line, "invalid syntax in quoted string".to_string()))?;
                    out.push(v as char);
                }
                Some((_, 'u')) => {
                    let h: String = (0..4).filter_map(|_| it.next().map(|(_, c)| c)).collect();
                    let v = u32::from_str_radix(&h, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or((line, "invalid syntax in quoted string".to_string()))?;
                    out.push(v);
                }
                _ => return Err((line, "invalid syntax in quoted string".into())),
            },
            c => out.push(c),
        }
    }
    Err((line, "unterminated quoted string".into()))
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
    dialect: Dialect,
    defs: Defs,
    /// Inside a `define` (defines do not nest).
    in_define: bool,
    /// Variables in scope, innermost last; `$` is always there.
    vars: Vec<String>,
    range_depth: usize,
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(usize, Vec<Tok>, Vec<usize>),
}

/// Parses with a dialect; returns the top-level nodes and the named templates defined.
pub(super) fn parse_with(text: &str, dialect: Dialect) -> PResult<(Vec<Node>, Defs)> {
    let mut p = Parser {
        items: items(text)?,
        pos: 0,
        dialect,
        defs: Vec::new(),
        in_define: false,
        vars: vec![String::new()],
        range_depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok((nodes, p.defs)),
        Stop::End => Err((p.line(), "unexpected {{end}}".into())),
        Stop::Else(line, _, _) => Err((line, "unexpected {{else}}".into())),
    }
}

impl Parser {
    fn line(&self) -> usize {
        match self.items.get(self.pos.saturating_sub(1)) {
            Some(Item::Action(l, _, _)) => *l,
            _ => 1,
        }
    }

    fn list(&mut self) -> PResult<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let item = std::mem::replace(&mut self.items[self.pos], Item::Text(String::new()));
            self.pos += 1;
            let (line, toks, spans) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(l, t, sp) => (l, t, sp),
            };
            let kw = match toks.first() {
                Some(Tok::Ident(s)) => s.as_str(),
                _ => "",
            };
            match kw {
                "end" => {
                    if toks.len() > 1 {
                        return Err((line, "unexpected token in end".into()));
                    }
                    return Ok((nodes, Stop::End));
                }
                "else" => {
                    return Ok((
                        nodes,
                        Stop::Else(line, toks[1..].to_vec(), spans[1..].to_vec()),
                    ));
                }
                "if" | "with" => nodes.push(self.branch(kw, line, &toks[1..], &spans[1..])?),
                "range" => nodes.push(self.range(line, &toks[1..], &spans[1..])?),
                "break" | "continue" => {
                    if self.range_depth == 0 {
                        return Err((line, format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                    }
                    if toks.len() > 1 {
                        return Err((line, format!("unexpected token in {{{{{kw}}}}}")));
                    }
                    nodes.push(if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" if self.dialect != Dialect::Alertmanager => {
                    return Err((
                        line,
                        format!("{{{{{kw}}}}} is not supported in Sightline's templates"),
                    ));
                }
                "define" | "block" => {
                    let name = match toks.get(1) {
                        Some(Tok::Str(n)) => n.clone(),
                        _ => return Err((line, format!("{kw} clause: expected template name"))),
                    };
                    let pipe = if kw == "block" {
                        if toks.len() < 3 {
                            return Err((line, "block clause: missing pipeline".into()));
                        }
                        Some(self.pipe(line, &toks[2..], &spans[2..], false)?)
                    } else {
                        if toks.len() > 2 {
                            return Err((line, "unexpected token in define clause".into()));
                        }
                        if self.in_define {
                            return Err((line, "unexpected <define> in command".into()));
                        }
                        None
                    };
                    let outer_vars = std::mem::replace(&mut self.vars, vec![String::new()]);
                    let was = std::mem::replace(&mut self.in_define, true);
                    let (body, end) = self.list()?;
                    self.in_define = was;
                    self.vars = outer_vars;
                    if !matches!(end, Stop::End) {
                        return Err((line, format!("unexpected EOF in {kw}")));
                    }
                    self.defs.retain(|(n, _)| n != &name);
                    self.defs.push((name.clone(), body));
                    if kw == "block" {
                        nodes.push(Node::Template(line, name, pipe));
                    }
                }
                "template" => {
                    let name = match toks.get(1) {
                        Some(Tok::Str(n)) => n.clone(),
                        _ => {
                            return Err((
                                line,
                                "template clause: expected string; found something else".into(),
                            ));
                        }
                    };
                    let pipe = if toks.len() > 2 {
                        Some(self.pipe(line, &toks[2..], &spans[2..], false)?)
                    } else {
                        None
                    };
                    nodes.push(Node::Template(line, name, pipe));
                }
                _ => {
                    let pipe = self.pipe(line, &toks, &spans, false)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// `if` / `with`, with `else` and `else if` / `else with` chains sharing one `end`.
    fn branch(&mut self, kw: &str, line: usize, toks: &[Tok], spans: &[usize]) -> PResult<Node> {
        let mark = self.vars.len();
        let pipe = self.pipe(line, toks, spans, false)?;
        let (body, end) = self.list()?;
        let els = match end {
            Stop::Eof => return Err((line, format!("unexpected EOF in {{{{{kw}}}}}"))),
            Stop::End => Vec::new(),
            Stop::Else(l, rest, rspans) => {
                self.vars.truncate(mark + pipe.decl.len());
                match rest.first() {
                    Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                        let k = k.clone();
                        vec![self.branch(&k, l, &rest[1..], &rspans[1..])?]
                    }
                    Some(_) => return Err((l, "unexpected token in else".into())),
                    None => {
                        let (els, end) = self.list()?;
                        if !matches!(end, Stop::End) {
                            return Err((l, "expected end; found else or EOF".into()));
                        }
                        els
                    }
                }
            }
        };
        self.vars.truncate(mark);
        Ok(if kw == "if" {
            Node::If(pipe, body, els)
        } else {
            Node::With(pipe, body, els)
        })
    }

    fn range(&mut self, line: usize, toks: &[Tok], spans: &[usize]) -> PResult<Node> {
        let mark = self.vars.len();
        let pipe = self.pipe(line, toks, spans, true)?;
        self.range_depth += 1;
        let (body, end) = self.list()?;
        self.range_depth -= 1;
        let els = match end {
            Stop::Eof => return Err((line, "unexpected EOF in {{range}}".into())),
            Stop::End => Vec::new(),
            Stop::Else(l, rest, _) => {
                if !rest.is_empty() {
                    return Err((l, "unexpected token in else".into()));
                }
                let (els, end) = self.list()?;
                if !matches!(end, Stop::End) {
                    return Err((l, "expected end; found else or EOF".into()));
                }
                els
            }
        };
        self.vars.truncate(mark);
        Ok(Node::Range(pipe, body, els))
    }

    fn check_var(&self, line: usize, name: &str) -> PResult<()> {
        if self.vars.iter().any(|v| v == name) {
            Ok(())
        } else {
            Err((line, format!("undefined variable \"${name}\"")))
        }
    }

    /// A pipeline, with its declaration (`$x :=`, `$i, $e :=` in range) or assignment.
    fn pipe(
        &mut self,
        line: usize,
        toks: &[Tok],
        spans: &[usize],
        in_range: bool,
    ) -> PResult<Pipe> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut rest = toks;
        match toks {
            [
                Tok::Var(a, c1),
                Tok::Comma,
                Tok::Var(b, c2),
                Tok::Decl,
                r @ ..,
            ] if in_range && c1.is_empty() && c2.is_empty() => {
                decl = vec![a.clone(), b.clone()];
                rest = r;
            }
            [Tok::Var(a, c), Tok::Decl, r @ ..] if c.is_empty() => {
                decl = vec![a.clone()];
                rest = r;
            }
            [Tok::Var(a, c), Tok::Assign, r @ ..] if c.is_empty() => {
                self.check_var(line, a)?;
                decl = vec![a.clone()];
                assign = true;
                rest = r;
            }
            _ => {}
        }
        let cmds = self.cmds(line, rest, &spans[toks.len() - rest.len()..])?;
        if cmds.is_empty() {
            return Err((line, "missing value for command".into()));
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            line,
            decl,
            assign,
            cmds,
        })
    }

    fn cmds(&self, line: usize, toks: &[Tok], spans: &[usize]) -> PResult<Vec<Cmd>> {
        let mut cmds = Vec::new();
        let mut args = Vec::new();
        let mut i = 0;
        let mut first = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::Pipe => {
                    if args.is_empty() {
                        return Err((line, "missing command".into()));
                    }
                    cmds.push(Cmd {
                        args: std::mem::take(&mut args),
                        pos: spans.get(first).copied().unwrap_or(0),
                        text: toks_text(&toks[first..i]),
                    });
                    i += 1;
                    first = i;
                }
                Tok::LParen => {
                    let mut depth = 0;
                    let mut j = i;
                    let chain = loop {
                        match toks.get(j) {
                            Some(Tok::LParen) => depth += 1,
                            Some(Tok::RParen(c)) => {
                                depth -= 1;
                                if depth == 0 {
                                    break c.clone();
                                }
                            }
                            Some(_) => {}
                            None => return Err((line, "unclosed left paren".into())),
                        }
                        j += 1;
                    };
                    let inner = self.cmds(line, &toks[i + 1..j], &spans[i + 1..j])?;
                    if inner.is_empty() {
                        return Err((line, "missing value for parenthesized pipeline".into()));
                    }
                    args.push(Arg::Sub(
                        Box::new(Pipe {
                            line,
                            decl: Vec::new(),
                            assign: false,
                            cmds: inner,
                        }),
                        chain,
                    ));
                    i = j + 1;
                }
                Tok::RParen(_) => return Err((line, "unexpected right paren".into())),
                Tok::Comma | Tok::Decl | Tok::Assign => {
                    return Err((line, "unexpected token in operand".into()));
                }
                Tok::Field(c) => {
                    args.push(Arg::Field(c.clone()));
                    i += 1;
                }
                Tok::Var(n, c) => {
                    self.check_var(line, n)?;
                    args.push(Arg::Var(n.clone(), c.clone()));
                    i += 1;
                }
                Tok::Str(s) => {
                    args.push(Arg::Str(s.clone()));
                    i += 1;
                }
                Tok::Int(v) => {
                    args.push(Arg::Int(*v));
                    i += 1;
                }
                Tok::Float(v) => {
                    args.push(Arg::Float(*v));
                    i += 1;
                }
                Tok::Ident(name) => {
                    args.push(match name.as_str() {
                        "true" => Arg::Bool(true),
                        "false" => Arg::Bool(false),
                        "nil" => Arg::Nil,
                        "if" | "else" | "end" | "range" | "with" | "define" | "template"
                        | "block" | "break" | "continue" => {
                            return Err((line, format!("unexpected <{name}> in command")));
                        }
                        f if funcs::exists(f, self.dialect) => Arg::Func(f.to_string()),
                        f => return Err((line, format!("function {f:?} not defined"))),
                    });
                    i += 1;
                }
            }
        }
        if !args.is_empty() {
            cmds.push(Cmd {
                args,
                pos: spans.get(first).copied().unwrap_or(0),
                text: toks_text(&toks[first..]),
            });
        } else if !cmds.is_empty() {
            return Err((line, "missing command".into()));
        }
        for c in &cmds {
            if matches!(c.args[0], Arg::Nil) {
                return Err((line, "nil is not a command".into()));
            }
        }
        Ok(cmds)
    }
}

/// Tokens back to text, as Go's nodes print themselves in error messages.
fn toks_text(toks: &[Tok]) -> String {
    let chain = |c: &[String]| c.iter().map(|f| format!(".{f}")).collect::<String>();
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        let glue = i > 0 && !matches!(t, Tok::RParen(_)) && !matches!(toks[i - 1], Tok::LParen);
        if glue {
            out.push(' ');
        }
        match t {
            Tok::Ident(s) => out.push_str(s),
            Tok::Field(c) if c.is_empty() => out.push('.'),
            Tok::Field(c) => out.push_str(&chain(c)),
            Tok::Var(n, c) => out.push_str(&format!("${n}{}", chain(c))),
            Tok::Str(s) => out.push_str(&format!("{s:?}")),
            Tok::Int(v) => out.push_str(&v.to_string()),
            Tok::Float(v) => out.push_str(&v.to_string()),
            Tok::Pipe => out.push('|'),
            Tok::LParen => out.push('('),
            Tok::RParen(c) => out.push_str(&format!("){}", chain(c))),
            Tok::Comma => out.push(','),
            Tok::Decl => out.push_str(":="),
            Tok::Assign => out.push('='),
        }
    }
    out
}
