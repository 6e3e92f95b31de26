//! LogQL's lexer and recursive-descent parser. Errors read as Loki's do:
//! `parse error at line 1, col 8: syntax error: unexpected ...`.

use super::ast::*;
use super::pattern::Pattern;
use crate::template::Template;

/// Longest query text accepted (Loki has no fixed limit; this bounds parsing work).
pub const MAX_QUERY_BYTES: usize = 64 << 10;
/// Deepest nesting of parentheses and sub-expressions.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Eq,
    EqEq,
    Ne,
    Re,
    Nre,
    PipeEq,
    PipeRe,
    PipeGt,
    NotGt,
    Pipe,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Ident(String),
    Str(String),
    Num(f64),
    /// Nanoseconds.
    Dur(i64),
    Bytes(f64),
    Flag(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("IDENTIFIER {s}"),
            Tok::Str(s) => format!("STRING {s:?}"),
            Tok::Num(n) => format!("NUMBER {n}"),
            Tok::Dur(_) => "DURATION".into(),
            Tok::Bytes(_) => "BYTES".into(),
            Tok::Flag(f) => format!("flag {f}"),
            Tok::Eof => "end of input".into(),
            t => format!("{:?}", sym(t)),
        }
    }
}

fn sym(t: &Tok) -> &'static str {
    match t {
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBrack => "[",
        Tok::RBrack => "]",
        Tok::Comma => ",",
        Tok::Eq => "=",
        Tok::EqEq => "==",
        Tok::Ne => "!=",
        Tok::Re => "=~",
        Tok::Nre => "!~",
        Tok::PipeEq => "|=",
        Tok::PipeRe => "|~",
        Tok::PipeGt => "|>",
        Tok::NotGt => "!>",
        Tok::Pipe => "|",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Add => "+",
        Tok::Sub => "-",
        Tok::Mul => "*",
        Tok::Div => "/",
        Tok::Mod => "%",
        Tok::Pow => "^",
        _ => "?",
    }
}

/// A refused query, printed as Loki's `logqlmodel.ParseError` prints: with its position, or,
/// for the checks Loki makes after the grammar (line and column 0), `parse error : msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ParseError {
    /// A check made after the grammar, which Loki reports without a position.
    pub fn check(msg: impl Into<String>) -> ParseError {
        ParseError {
            line: 0,
            col: 0,
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.msg)
        } else {
            write!(
                f,
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.msg
            )
        }
    }
}

impl std::error::Error for ParseError {}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, msg: String) -> ParseError {
        let before = &self.src[..at.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = 1 + before.len() - before.rfind('\n').map_or(0, |i| i + 1);
        ParseError { line, col, msg }
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut out = Vec::new();
        loop {
            let (t, at) = self.next()?;
            let eof = t == Tok::Eof;
            out.push((t, at));
            if eof {
                return Ok(out);
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        let b = self.src.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.pos < b.len() && b[self.pos] == b'#' {
                while self.pos < b.len() && b[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        let at = self.pos;
        if at >= b.len() {
            return Ok((Tok::Eof, at));
        }
        let two = self.src.get(at..at + 2).unwrap_or("");
        let t2 = match two {
            "==" => Some(Tok::EqEq),
            "!=" => Some(Tok::Ne),
            "=~" => Some(Tok::Re),
            "!~" => Some(Tok::Nre),
            "|=" => Some(Tok::PipeEq),
            "|~" => Some(Tok::PipeRe),
            "|>" => Some(Tok::PipeGt),
            "!>" => Some(Tok::NotGt),
            ">=" => Some(Tok::Ge),
            "<=" => Some(Tok::Le),
            _ => None,
        };
        if let Some(t) = t2 {
            self.pos += 2;
            return Ok((t, at));
        }
        let c = b[at];
        let t1 = match c {
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBrack),
            b']' => Some(Tok::RBrack),
            b',' => Some(Tok::Comma),
            b'=' => Some(Tok::Eq),
            b'|' => Some(Tok::Pipe),
            b'>' => Some(Tok::Gt),
            b'<' => Some(Tok::Lt),
            b'+' => Some(Tok::Add),
            b'*' => Some(Tok::Mul),
            b'/' => Some(Tok::Div),
            b'%' => Some(Tok::Mod),
            b'^' => Some(Tok::Pow),
            _ => None,
        };
        if c == b'-' && b.get(at + 1) == Some(&b'-') {
            let end = self.src[at + 2..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
                .map_or(b.len(), |i| at + 2 + i);
            self.pos = end;
            return Ok((Tok::Flag(self.src[at..end].to_string()), at));
        }
        if c == b'-' {
            self.pos += 1;
            return Ok((Tok::Sub, at));
        }
        if let Some(t) = t1 {
            self.pos += 1;
            return Ok((t, at));
        }
        if c == b'"' || c == b'`' {
            return self.string(c).map(|s| (Tok::Str(s), at));
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(at + 1).is_some_and(u8::is_ascii_digit)) {
            return self.number().map(|t| (t, at));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let end = self.src[at..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .map_or(b.len(), |i| at + i);
            self.pos = end;
            return Ok((Tok::Ident(self.src[at..end].to_string()), at));
        }
        let ch = self.src[at..].chars().next().unwrap_or(' ');
        Err(self.err(at, format!("syntax error: unexpected character {ch:?}")))
    }

    fn string(&mut self, quote: u8) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let rest = &self.src[self.pos..];
        if quote == b'`' {
            let end = rest
                .find('`')
                .ok_or_else(|| self.err(start, "literal not terminated".into()))?;
            self.pos += end + 1;
            return Ok(rest[..end].to_string());
        }
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'a' => out.push('\x07'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'v' => out.push('\x0b'),
                        '\\' => out.push('\\'),
                        '"' => out.push('"'),
                        '\'' => out.push('\''),
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String =
                                (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                            let v = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            match v {
                                Some(ch) => out.push(ch),
                                None => {
                                    return Err(self.err(
                                        start,
                                        "invalid syntax: bad escape in string".into(),
                                    ));
                                }
                            }
                        }
                        d if d.is_digit(8) => {
                            let mut v = d.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match chars.next() {
                                    Some((_, o)) if o.is_digit(8) => {
                                        v = v * 8 + o.to_digit(8).unwrap_or(0)
                                    }
                                    _ => {
                                        return Err(self.err(
                                            start,
                                            "invalid syntax: bad escape in string".into(),
                                        ));
                                    }
                                }
                            }
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            return Err(self.err(
                                start,
                                "invalid syntax: unknown escape sequence in string".into(),
                            ));
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Err(self.err(start, "literal not terminated".into()))
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let at = self.pos;
        let rest = &self.src[at..];
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        // Scientific notation: 1e3, 2.5E-2.
        let mut end = num_end;
        let bytes = rest.as_bytes();
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut j = end + 1;
            if matches!(bytes.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                if !bytes.get(j).is_some_and(|c| c.is_ascii_alphabetic()) {
                    end = j;
                }
            }
        }
        let unit_end = rest[end..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
            .map_or(rest.len(), |i| end + i);
        let text = &rest[..unit_end];
        self.pos = at + unit_end;
        if unit_end == end {
            return text
                .parse::<f64>()
                .map(Tok::Num)
                .map_err(|_| self.err(at, format!("syntax error: invalid number {text:?}")));
        }
        if let Some(d) = crate::base::units::parse_duration(text) {
            return Ok(Tok::Dur(d.as_nanos().min(i64::MAX as u128) as i64));
        }
        if let Some(b) = parse_bytes(text) {
            return Ok(Tok::Bytes(b));
        }
        Err(self.err(
            at,
            format!("syntax error: unexpected {text:?}, expecting a number, duration or byte size"),
        ))
    }
}

/// Parses a LogQL query.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            line: 1,
            col: 1,
            msg: format!("query is longer than {MAX_QUERY_BYTES} bytes"),
        });
    }
    let toks = Lexer { src, pos: 0 }.tokens()?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected());
    }
    match e {
        Node::Log(l) => Ok(Expr::Log(l)),
        Node::Metric(m) => Ok(Expr::Metric(m)),
        Node::Range(_) => Err(p.err_at(0, "syntax error: a range vector is only valid as the argument of a range aggregation such as count_over_time".into())),
    }
}

/// Parses a stream selector alone (`{app="x"}`), as `/series` and `/labels` take them.
pub fn parse_selector(src: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(src)? {
        Expr::Log(l) if l.stages.is_empty() => Ok(l.matchers),
        _ => Err(ParseError {
            line: 1,
            col: 1,
            msg: "only a stream selector is accepted here".into(),
        }),
    }
}

enum Node {
    Log(LogExpr),
    Range(LogRange),
    Metric(MetricExpr),
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

type PResult<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].0
    }

    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err_at(&self, at: usize, msg: String) -> ParseError {
        Lexer {
            src: self.src,
            pos: 0,
        }
        .err(at, msg)
    }

    fn err(&self, msg: String) -> ParseError {
        self.err_at(self.pos(), msg)
    }

    fn unexpected(&self) -> ParseError {
        self.err(format!(
            "syntax error: unexpected {}",
            self.peek().describe()
        ))
    }

    fn expect(&mut self, t: Tok) -> PResult<()> {
        if self.peek() == &t {
            self.bump();
            Ok(())
        } else {
            Err(self.err(format!(
                "syntax error: unexpected {}, expecting {}",
                self.peek().describe(),
                sym(&t)
            )))
        }
    }

    fn ident(&mut self) -> PResult<String> {
        match self.bump() {
            Tok::Ident(s) => Ok(s),
            t => {
                self.i -= 1;
                Err(self.err(format!(
                    "syntax error: unexpected {}, expecting IDENTIFIER",
                    t.describe()
                )))
            }
        }
    }

    fn label_name(&mut self) -> PResult<String> {
        let at = self.pos();
        let n = self.ident()?;
        if !crate::tsdb::labels::valid_label_name(&n) {
            return Err(self.err_at(at, format!("invalid label name {n:?}")));
        }
        Ok(n)
    }

    fn string(&mut self) -> PResult<String> {
        match self.bump() {
            Tok::Str(s) => Ok(s),
            t => {
                self.i -= 1;
                Err(self.err(format!(
                    "syntax error: unexpected {}, expecting STRING",
                    t.describe()
                )))
            }
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::EqEq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Ident(s) if s == "and" => BinOp::And,
            Tok::Ident(s) if s == "or" => BinOp::Or,
            Tok::Ident(s) if s == "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    /// Precedence climbing over binary operators (`^` is right-associative).
    fn expr(&mut self, min_prec: u8) -> PResult<Node> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_at = self.pos();
            self.bump();
            let mut return_bool = false;
            if matches!(self.peek(), Tok::Ident(s) if s == "bool") {
                if !op.is_comparison() {
                    return Err(
                        self.err("bool modifier can only be used on comparison operators".into())
                    );
                }
                self.bump();
                return_bool = true;
            }
            let matching = self.matching()?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            let l = self.metric(lhs, op_at)?;
            let r = self.metric(rhs, op_at)?;
            if op.is_set() && (l.is_scalar() || r.is_scalar()) {
                return Err(self.err_at(
                    op_at,
                    "unexpected literal for right side of logical/set operation".into(),
                ));
            }
            if op.is_comparison() && l.is_scalar() && r.is_scalar() && !return_bool {
                return Err(self.err_at(
                    op_at,
                    "comparisons between scalars must use BOOL modifier".into(),
                ));
            }
            lhs = Node::Metric(MetricExpr::Binary {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
                return_bool,
                matching,
            });
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn metric(&self, n: Node, at: usize) -> PResult<MetricExpr> {
        match n {
            Node::Metric(m) => Ok(m),
            Node::Log(_) => Err(self.err_at(at, "unexpected type for left/right side of a binary operation: a log query is not a metric query; wrap it in a range aggregation such as count_over_time".into())),
            Node::Range(_) => Err(self.err_at(at, "syntax error: a range vector is only valid as the argument of a range aggregation".into())),
        }
    }

    fn matching(&mut self) -> PResult<VectorMatching> {
        let mut m = VectorMatching::default();
        match self.peek() {
            Tok::Ident(s) if s == "on" || s == "ignoring" => {
                m.on = s == "on";
                self.bump();
                m.labels = self.label_list()?;
            }
            _ => return Ok(m),
        }
        if let Tok::Ident(s) = self.peek().clone()
            && (s == "group_left" || s == "group_right")
        {
            self.bump();
            let inc = if self.peek() == &Tok::LParen {
                self.label_list()?
            } else {
                Vec::new()
            };
            m.group = Some((s == "group_right", inc));
        }
        Ok(m)
    }

    fn label_list(&mut self) -> PResult<Vec<String>> {
        self.expect(Tok::LParen)?;
        let mut out = Vec::new();
        while self.peek() != &Tok::RParen {
            out.push(self.label_name()?);
            if self.peek() == &Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        self.expect(Tok::RParen)?;
        Ok(out)
    }

    fn unary(&mut self) -> PResult<Node> {
        let at = self.pos();
        match self.peek().clone() {
            Tok::Sub | Tok::Add => {
                let neg = self.bump() == Tok::Sub;
                let inner = self.unary()?;
                let m = self.metric(inner, at)?;
                Ok(Node::Metric(match m {
                    MetricExpr::Literal(v) if neg => MetricExpr::Literal(-v),
                    m if neg => MetricExpr::Binary {
                        op: BinOp::Mul,
                        lhs: Box::new(MetricExpr::Literal(-1.0)),
                        rhs: Box::new(m),
                        return_bool: false,
                        matching: VectorMatching::default(),
                    },
                    m => m,
                }))
            }
            Tok::Num(v) => {
                self.bump();
                Ok(Node::Metric(MetricExpr::Literal(v)))
            }
            Tok::LBrace => self.log_or_range(),
            Tok::LParen => {
                self.bump();
                let inner = self.expr(0)?;
                self.expect(Tok::RParen)?;
                match inner {
                    Node::Log(l) if matches!(self.peek(), Tok::LBrack) => {
                        let range = self.range_tail(l)?;
                        Ok(Node::Range(range))
                    }
                    other => Ok(other),
                }
            }
            Tok::Ident(name) => {
                if let Some(op) = RangeOp::from_name(&name) {
                    self.bump();
                    return self.range_agg(op).map(Node::Metric);
                }
                if let Some(op) = AggOp::from_name(&name) {
                    self.bump();
                    return self.vector_agg(op).map(Node::Metric);
                }
                match name.as_str() {
                    "vector" => {
                        self.bump();
                        self.expect(Tok::LParen)?;
                        let v = self.number()?;
                        self.expect(Tok::RParen)?;
                        Ok(Node::Metric(MetricExpr::Vector(v)))
                    }
                    "label_replace" => {
                        self.bump();
                        self.label_replace().map(Node::Metric)
                    }
                    _ => Err(self.unexpected()),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    fn number(&mut self) -> PResult<f64> {
        let neg = if self.peek() == &Tok::Sub {
            self.bump();
            true
        } else {
            false
        };
        match self.bump() {
            Tok::Num(v) => Ok(if neg { -v } else { v }),
            t => {
                self.i -= 1;
                Err(self.err(format!(
                    "syntax error: unexpected {}, expecting NUMBER",
                    t.describe()
                )))
            }
        }
    }

    fn label_replace(&mut self) -> PResult<MetricExpr> {
        self.expect(Tok::LParen)?;
        let at = self.pos();
        let inner = self.expr(0)?;
        let inner = self.metric(inner, at)?;
        self.expect(Tok::Comma)?;
        let dst = self.string()?;
        self.expect(Tok::Comma)?;
        let replacement = self.string()?;
        self.expect(Tok::Comma)?;
        let src = self.string()?;
        self.expect(Tok::Comma)?;
        let re_at = self.pos();
        let re = self.string()?;
        self.expect(Tok::RParen)?;
        if !crate::tsdb::labels::valid_label_name(&dst) {
            return Err(self.err_at(
                at,
                format!("invalid destination label name in label_replace(): {dst}"),
            ));
        }
        let _ = re_at;
        let re = anchored(&re)
            .map_err(|e| ParseError::check(format!("invalid regex in label_replace: {e}")))?;
        Ok(MetricExpr::LabelReplace {
            inner: Box::new(inner),
            dst,
            replacement,
            src,
            re,
        })
    }

    fn grouping(&mut self) -> PResult<Option<Grouping>> {
        match self.peek() {
            Tok::Ident(s) if s == "by" || s == "without" => {
                let without = s == "without";
                self.bump();
                let labels = self.label_list()?;
                Ok(Some(Grouping { without, labels }))
            }
            _ => Ok(None),
        }
    }

    fn range_agg(&mut self, op: RangeOp) -> PResult<MetricExpr> {
        self.expect(Tok::LParen)?;
        let mut param = None;
        if op == RangeOp::QuantileOverTime {
            if matches!(self.peek(), Tok::Num(_)) {
                param = Some(self.number()?);
                self.expect(Tok::Comma)?;
            }
        } else if matches!(self.peek(), Tok::Num(_)) {
            let n = self.number()?;
            return Err(ParseError::check(format!(
                "parameter {n} not supported for operation {}",
                range_name(op)
            )));
        }
        let at = self.pos();
        let inner = self.expr(0)?;
        let range = match inner {
            Node::Range(r) => r,
            _ => {
                return Err(self.err_at(
                    at,
                    "syntax error: expected a range vector such as {app=\"x\"} [5m]".into(),
                ));
            }
        };
        self.expect(Tok::RParen)?;
        let grouping = self.grouping()?;
        if op == RangeOp::QuantileOverTime && param.is_none() {
            return Err(ParseError::check(
                "parameter required for operation quantile_over_time",
            ));
        }
        // Loki's RangeAggregationExpr.validate.
        use RangeOp::*;
        if grouping.is_some()
            && !matches!(
                op,
                AvgOverTime
                    | StddevOverTime
                    | StdvarOverTime
                    | QuantileOverTime
                    | MaxOverTime
                    | MinOverTime
                    | FirstOverTime
                    | LastOverTime
            )
        {
            return Err(ParseError::check(format!(
                "grouping not allowed for {} aggregation",
                range_name(op)
            )));
        }
        if range.unwrap.is_some() {
            if matches!(op, CountOverTime | BytesOverTime | BytesRate) {
                return Err(ParseError::check(format!(
                    "invalid aggregation {} with unwrap",
                    range_name(op)
                )));
            }
        } else if !matches!(
            op,
            BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
        ) {
            return Err(ParseError::check(format!(
                "invalid aggregation {} without unwrap",
                range_name(op)
            )));
        }
        Ok(MetricExpr::Range {
            op,
            param,
            range,
            grouping,
        })
    }

    fn vector_agg(&mut self, op: AggOp) -> PResult<MetricExpr> {
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen)?;
        let mut param = None;
        if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            let k = self.number()?;
            if k.fract() != 0.0 {
                return Err(ParseError::check(format!(
                    "invalid parameter {}({k},",
                    agg_name(op)
                )));
            }
            if k < 1.0 {
                return Err(ParseError::check(format!(
                    "invalid parameter (must be greater than 0) {}({k}",
                    agg_name(op)
                )));
            }
            param = Some(k);
            self.expect(Tok::Comma)?;
        }
        let at = self.pos();
        let inner = self.expr(0)?;
        let inner = self.metric(inner, at)?;
        self.expect(Tok::RParen)?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        Ok(MetricExpr::Agg {
            op,
            param,
            grouping,
            inner: Box::new(inner),
        })
    }

    /// `{...}` then a pipeline; a `[range]` (before or after the pipeline) makes it a range.
    fn log_or_range(&mut self) -> PResult<Node> {
        let matchers = self.selector()?;
        let mut log = LogExpr {
            matchers,
            stages: Vec::new(),
        };
        if self.peek() == &Tok::LBrack {
            let mut r = self.range_tail(log)?;
            self.pipeline(&mut r.log.stages, &mut r.unwrap)?;
            return Ok(Node::Range(r));
        }
        let mut unwrap = None;
        self.pipeline(&mut log.stages, &mut unwrap)?;
        if self.peek() == &Tok::LBrack {
            let mut r = self.range_tail(log)?;
            r.unwrap = unwrap;
            return Ok(Node::Range(r));
        }
        if unwrap.is_some() {
            return Err(
                self.err("syntax error: unwrap is only valid in a range aggregation".into())
            );
        }
        Ok(Node::Log(log))
    }

    fn range_tail(&mut self, log: LogExpr) -> PResult<LogRange> {
        self.expect(Tok::LBrack)?;
        let range_ns = match self.bump() {
            Tok::Dur(d) if d > 0 => d,
            t => {
                self.i -= 1;
                return Err(self.err(format!(
                    "syntax error: unexpected {}, expecting a duration",
                    t.describe()
                )));
            }
        };
        self.expect(Tok::RBrack)?;
        let mut offset_ns = 0;
        if matches!(self.peek(), Tok::Ident(s) if s == "offset") {
            self.bump();
            let neg = if self.peek() == &Tok::Sub {
                self.bump();
                true
            } else {
                false
            };
            offset_ns = match self.bump() {
                Tok::Dur(d) => d,
                t => {
                    self.i -= 1;
                    return Err(self.err(format!(
                        "syntax error: unexpected {}, expecting a duration",
                        t.describe()
                    )));
                }
            };
            if neg {
                offset_ns = -offset_ns;
            }
        }
        Ok(LogRange {
            log,
            range_ns,
            offset_ns,
            unwrap: None,
        })
    }

    fn selector(&mut self) -> PResult<Vec<Matcher>> {
        let at = self.pos();
        self.expect(Tok::LBrace)?;
        let mut out = Vec::new();
        while self.peek() != &Tok::RBrace {
            let name = self.label_name()?;
            let op = self.match_op()?;
            let vat = self.pos();
            let value = self.string()?;
            out.push(Matcher::new(&name, op, &value).map_err(|e| self.err_at(vat, e))?);
            if self.peek() == &Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        if out.is_empty() && self.peek() == &Tok::RBrace {
            return Err(self.err("syntax error: unexpected }, expecting IDENTIFIER".into()));
        }
        self.expect(Tok::RBrace)?;
        let _ = at;
        if !out.iter().any(|m| !m.matches("")) {
            return Err(ParseError::check(
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will",
            ));
        }
        Ok(out)
    }

    fn match_op(&mut self) -> PResult<MatchOp> {
        Ok(match self.bump() {
            Tok::Eq => MatchOp::Eq,
            Tok::Ne => MatchOp::Ne,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            t => {
                self.i -= 1;
                return Err(self.err(format!(
                    "syntax error: unexpected {}, expecting = or != or =~ or !~",
                    t.describe()
                )));
            }
        })
    }

    fn pipeline(&mut self, stages: &mut Vec<Stage>, unwrap: &mut Option<Unwrap>) -> PResult<()> {
        loop {
            let at = self.pos();
            let op = match self.peek() {
                Tok::PipeEq => Some(LineOp::Contains),
                Tok::Ne => Some(LineOp::NotContains),
                Tok::PipeRe => Some(LineOp::Match),
                Tok::Nre => Some(LineOp::NotMatch),
                Tok::PipeGt => Some(LineOp::Pattern),
                Tok::NotGt => Some(LineOp::NotPattern),
                Tok::Pipe => None,
                _ => return Ok(()),
            };
            if unwrap.is_some() && op.is_some() {
                return Err(self.err("syntax error: a line filter cannot follow unwrap".into()));
            }
            self.bump();
            if let Some(op) = op {
                stages.push(Stage::Line(self.line_filter(op, at)?));
                continue;
            }
            let kw = match self.peek() {
                Tok::Ident(s) => s.clone(),
                // A parenthesised label filter: `| (a > 1 or b = "x") and c = "y"`.
                Tok::LParen => String::new(),
                _ => return Err(self.unexpected()),
            };
            if let Some(u) = unwrap.as_mut() {
                // After unwrap only label filters may follow.
                let f = self.label_filter_or()?;
                u.filters.push(f);
                continue;
            }
            let is_stage_kw = matches!(
                self.peek_at(1),
                Tok::Pipe
                    | Tok::PipeEq
                    | Tok::PipeRe
                    | Tok::Ne
                    | Tok::Nre
                    | Tok::PipeGt
                    | Tok::NotGt
                    | Tok::LBrack
                    | Tok::RParen
                    | Tok::Eof
                    | Tok::Str(_)
                    | Tok::Ident(_)
                    | Tok::Flag(_)
                    | Tok::LParen
            );
            let stage = match kw.as_str() {
                "json" if is_stage_kw => {
                    self.bump();
                    Stage::Json(self.extractions()?)
                }
                "logfmt" if is_stage_kw => {
                    self.bump();
                    let (mut strict, mut keep_empty) = (false, false);
                    while let Tok::Flag(f) = self.peek().clone() {
                        match f.as_str() {
                            "--strict" => strict = true,
                            "--keep-empty" => keep_empty = true,
                            _ => {
                                return Err(
                                    self.err(format!("syntax error: unknown logfmt flag {f}"))
                                );
                            }
                        }
                        self.bump();
                    }
                    Stage::Logfmt {
                        strict,
                        keep_empty,
                        params: self.extractions()?,
                    }
                }
                "regexp" if is_stage_kw => {
                    self.bump();
                    let sat = self.pos();
                    let re = self.string()?;
                    let compiled = compile(&re).map_err(|e| self.err_at(sat, e))?;
                    let names: Vec<&str> = compiled.capture_names().flatten().collect();
                    if names.is_empty() {
                        return Err(ParseError::check(
                            "invalid regexp parser: at least one named capture must be supplied",
                        ));
                    }
                    for n in &names {
                        if !crate::tsdb::labels::valid_label_name(n) {
                            return Err(
                                self.err_at(sat, format!("invalid extracted label name '{n}'"))
                            );
                        }
                    }
                    Stage::Regexp(compiled)
                }
                "pattern" if is_stage_kw => {
                    self.bump();
                    let sat = self.pos();
                    let p = self.string()?;
                    Stage::Pattern(Pattern::parse(&p).map_err(|e| {
                        let _ = sat;
                        ParseError::check(format!("invalid pattern parser: {e}"))
                    })?)
                }
                "unpack" if is_stage_kw => {
                    self.bump();
                    Stage::Unpack
                }
                "decolorize" if is_stage_kw => {
                    self.bump();
                    Stage::Decolorize
                }
                "line_format" if is_stage_kw => {
                    self.bump();
                    let sat = self.pos();
                    let t = self.string()?;
                    Stage::LineFormat(
                        Template::parse_loki("line", &t)
                            .map_err(|e| self.err_at(sat, e.to_string()))?,
                    )
                }
                "label_format" if is_stage_kw => {
                    self.bump();
                    let mut out: Vec<(String, LabelFmt)> = Vec::new();
                    loop {
                        let dst = self.label_name()?;
                        self.expect(Tok::Eq)?;
                        let vat = self.pos();
                        let f = match self.bump() {
                            Tok::Ident(src) => LabelFmt::Rename(src),
                            Tok::Str(t) => LabelFmt::Template(
                                Template::parse_loki("label", &t)
                                    .map_err(|e| self.err_at(vat, e.to_string()))?,
                            ),
                            t => {
                                self.i -= 1;
                                return Err(self.err(format!(
                                    "syntax error: unexpected {}, expecting IDENTIFIER or STRING",
                                    t.describe()
                                )));
                            }
                        };
                        if out.iter().any(|(d, _)| d == &dst) {
                            return Err(self.err_at(vat, format!("multiple label name '{dst}' not allowed in a single format operation")));
                        }
                        out.push((dst, f));
                        if self.peek() == &Tok::Comma {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    Stage::LabelFormat(out)
                }
                "drop" | "keep" if is_stage_kw => {
                    self.bump();
                    let mut items = Vec::new();
                    loop {
                        let name = self.label_name()?;
                        if matches!(self.peek(), Tok::Eq | Tok::Ne | Tok::Re | Tok::Nre) {
                            let op = self.match_op()?;
                            let vat = self.pos();
                            let v = self.string()?;
                            items.push(NameOrMatcher::Matcher(
                                Matcher::new(&name, op, &v).map_err(|e| self.err_at(vat, e))?,
                            ));
                        } else {
                            items.push(NameOrMatcher::Name(name));
                        }
                        if self.peek() == &Tok::Comma {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    if kw == "drop" {
                        Stage::Drop(items)
                    } else {
                        Stage::Keep(items)
                    }
                }
                "unwrap" if is_stage_kw => {
                    self.bump();
                    let (conv, label) = match (self.peek().clone(), self.peek_at(1).clone()) {
                        (Tok::Ident(f), Tok::LParen) => {
                            let conv = match f.as_str() {
                                "duration" | "duration_seconds" => Conv::Duration,
                                "bytes" => Conv::Bytes,
                                _ => {
                                    return Err(self.err(format!(
                                        "syntax error: unknown unwrap conversion {f}"
                                    )));
                                }
                            };
                            self.bump();
                            self.bump();
                            let l = self.label_name()?;
                            self.expect(Tok::RParen)?;
                            (conv, l)
                        }
                        _ => (Conv::Plain, self.label_name()?),
                    };
                    *unwrap = Some(Unwrap {
                        label,
                        conv,
                        filters: Vec::new(),
                    });
                    continue;
                }
                _ => Stage::LabelFilter(self.label_filter_or()?),
            };
            stages.push(stage);
        }
    }

    fn line_filter(&mut self, op: LineOp, at: usize) -> PResult<LineFilter> {
        let mut needles = Vec::new();
        loop {
            if matches!(self.peek(), Tok::Ident(s) if s == "ip") {
                return Err(self.err("the ip() line filter is not supported by Sightline".into()));
            }
            needles.push(self.string()?);
            if matches!(self.peek(), Tok::Ident(s) if s == "or") {
                self.bump();
            } else {
                break;
            }
        }
        let res = match op {
            LineOp::Match | LineOp::NotMatch => needles
                .iter()
                .map(|n| compile(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err_at(at, e))?,
            LineOp::Pattern | LineOp::NotPattern => needles
                .iter()
                .map(|n| Pattern::filter_regex(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err_at(at, e))?,
            _ => Vec::new(),
        };
        Ok(LineFilter { op, needles, res })
    }

    fn extractions(&mut self) -> PResult<Vec<Extraction>> {
        let mut out = Vec::new();
        while let Tok::Ident(label) = self.peek().clone() {
            // A following stage keyword or boolean operator is not an extraction.
            if !matches!(
                self.peek_at(1),
                Tok::Eq
                    | Tok::Comma
                    | Tok::Pipe
                    | Tok::Eof
                    | Tok::RParen
                    | Tok::LBrack
                    | Tok::PipeEq
                    | Tok::PipeRe
                    | Tok::Ne
                    | Tok::Nre
            ) {
                break;
            }
            if !crate::tsdb::labels::valid_label_name(&label) {
                return Err(self.err(format!("invalid extracted label name '{label}'")));
            }
            self.bump();
            let path = if self.peek() == &Tok::Eq {
                self.bump();
                self.string()?
            } else {
                label.clone()
            };
            out.push(Extraction { label, path });
            if self.peek() == &Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        Ok(out)
    }

    fn label_filter_or(&mut self) -> PResult<LabelFilter> {
        let mut lhs = self.label_filter_and()?;
        while matches!(self.peek(), Tok::Ident(s) if s == "or") {
            self.bump();
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> PResult<LabelFilter> {
        let mut lhs = self.label_filter_prim()?;
        loop {
            match self.peek() {
                Tok::Ident(s) if s == "and" => {
                    self.bump();
                }
                Tok::Comma => {
                    self.bump();
                }
                Tok::Ident(s) if s != "or" && s != "offset" => {}
                Tok::LParen => {}
                _ => return Ok(lhs),
            }
            let rhs = self.label_filter_prim()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_filter_prim(&mut self) -> PResult<LabelFilter> {
        self.enter()?;
        if self.peek() == &Tok::LParen {
            self.bump();
            let f = self.label_filter_or()?;
            self.expect(Tok::RParen)?;
            self.depth -= 1;
            return Ok(f);
        }
        let name = self.label_name()?;
        let op_at = self.pos();
        let op = self.bump();
        let value = self.bump();
        self.depth -= 1;
        let cmp = |op: &Tok| match op {
            Tok::Eq | Tok::EqEq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            _ => None,
        };
        let num_value = |v: &Tok| match v {
            Tok::Num(n) => Some(FilterValue::Number(*n)),
            Tok::Dur(d) => Some(FilterValue::Duration(*d as f64 / 1e9)),
            Tok::Bytes(b) => Some(FilterValue::Bytes(*b)),
            _ => None,
        };
        match (&op, &value) {
            (Tok::Eq | Tok::Ne | Tok::Re | Tok::Nre, Tok::Str(s)) => {
                let mop = match op {
                    Tok::Eq => MatchOp::Eq,
                    Tok::Ne => MatchOp::Ne,
                    Tok::Re => MatchOp::Re,
                    _ => MatchOp::Nre,
                };
                Ok(LabelFilter::Str(
                    Matcher::new(&name, mop, s).map_err(|e| self.err_at(op_at, e))?,
                ))
            }
            (o, v) if cmp(o).is_some() && num_value(v).is_some() => Ok(LabelFilter::Cmp {
                name,
                op: cmp(o).unwrap_or(CmpOp::Eq),
                value: num_value(v).unwrap_or(FilterValue::Number(0.0)),
            }),
            _ => {
                self.i -= 1;
                Err(self.err(format!(
                    "syntax error: unexpected {}, expecting a label filter such as status >= 500 or level=\"error\"",
                    value.describe()
                )))
            }
        }
    }
}

pub fn range_name(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::RateCounter => "rate_counter",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
    }
}

pub fn agg_name(op: AggOp) -> &'static str {
    match op {
        AggOp::Sum => "sum",
        AggOp::Avg => "avg",
        AggOp::Min => "min",
        AggOp::Max => "max",
        AggOp::Count => "count",
        AggOp::Stddev => "stddev",
        AggOp::Stdvar => "stdvar",
        AggOp::Topk => "topk",
        AggOp::Bottomk => "bottomk",
        AggOp::Sort => "sort",
        AggOp::SortDesc => "sort_desc",
    }
}
