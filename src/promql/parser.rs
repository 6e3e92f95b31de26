//! Hand-written lexer and recursive-descent parser for PromQL (Prometheus 2.x grammar), with
//! type checking. Errors carry the position as Prometheus writes it: `1:14: parse error: ...`.
//! Input size and nesting depth are bounded, so hostile text cannot exhaust the stack.

use crate::tsdb::{MatchOp, Matcher};

use super::ast::{AggOp, At, BinOp, Card, Expr, ValueType, VectorMatching, VectorSelector};
use super::functions;
pub use super::lexer::ParseError;
pub use super::lexer::parse_duration;
use super::lexer::{Lexer, PResult, Tok, describe};

/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 256 * 1024;
/// Deepest nesting of sub-expressions.
pub const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    lx: Lexer<'a>,
    tok: Tok,
    pos: usize,
    /// The token after `tok`, when looked at.
    ahead: Option<(Tok, usize)>,
    depth: usize,
}

/// Parses a series selector alone, as Prometheus's `ParseMetricSelector` does for the `match[]`
/// parameters of the series, labels and export endpoints: no offset, no `@`, no other
/// expression, and at least one matcher that does not match the empty string.
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(input)? {
        Expr::Selector(vs) if vs.offset == 0 && vs.at.is_none() => Ok(vs.matchers),
        _ => Err(ParseError {
            pos: 0,
            msg: "expected a series selector such as up{job=\"node\"}".into(),
            line_col: (1, 1),
        }),
    }
}

/// Parses and type-checks a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_inner(input).map_err(|(pos, msg)| {
        let pos = pos.min(input.len());
        let before = &input[..input.floor_char_boundary(pos)];
        let line = before.matches('\n').count() + 1;
        let col = pos - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ParseError {
            pos,
            msg,
            line_col: (line, col),
        }
    })
}

fn parse_inner(input: &str) -> PResult<Expr> {
    if input.len() > MAX_QUERY_BYTES {
        return Err((0, format!("query is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let mut lx = Lexer::new(input);
    let (tok, pos) = lx.next()?;
    let mut p = Parser {
        lx,
        tok,
        pos,
        ahead: None,
        depth: 0,
    };
    if p.tok == Tok::Eof {
        return Err((0, "no expression found in input".into()));
    }
    let e = p.expr(0)?;
    if p.tok != Tok::Eof {
        return Err(p.unexpected("", None));
    }
    check(&e)?;
    Ok(e)
}

fn is_ident(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(w))
}

impl Parser<'_> {
    fn advance(&mut self) -> PResult<()> {
        let (t, p) = match self.ahead.take() {
            Some(x) => x,
            None => self.lx.next()?,
        };
        self.tok = t;
        self.pos = p;
        Ok(())
    }

    fn peek(&mut self) -> PResult<&Tok> {
        if self.ahead.is_none() {
            self.ahead = Some(self.lx.next()?);
        }
        Ok(&self.ahead.as_ref().expect("just set").0)
    }

    fn unexpected(&self, ctx: &str, expected: Option<&str>) -> (usize, String) {
        let mut m = format!("unexpected {}", describe(&self.tok));
        if !ctx.is_empty() {
            m.push_str(&format!(" in {ctx}"));
        }
        if let Some(e) = expected {
            m.push_str(&format!(", expected {e}"));
        }
        (self.pos, m)
    }

    fn expect(&mut self, t: Tok, ctx: &str) -> PResult<()> {
        if self.tok == t {
            self.advance()
        } else {
            Err(self.unexpected(ctx, Some(&describe(&t))))
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((
                self.pos,
                format!("expression nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Precedence climbing over binary operators.
    fn expr(&mut self, min_prec: u8) -> PResult<Expr> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Tok::Op(op) = self.tok {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.pos;
            self.advance()?;
            let mut return_bool = false;
            if is_ident(&self.tok, "bool") {
                if !op.is_comparison() {
                    return Err((
                        self.pos,
                        "bool modifier can only be used on comparison operators".into(),
                    ));
                }
                return_bool = true;
                self.advance()?;
            }
            let matching = self.matching(op)?;
            // `^` is right-associative; everything else left.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = build_binary(op, lhs, rhs, return_bool, matching, op_pos)?;
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn matching(&mut self, op: BinOp) -> PResult<Option<VectorMatching>> {
        let on = if is_ident(&self.tok, "on") {
            true
        } else if is_ident(&self.tok, "ignoring") {
            false
        } else {
            return Ok(if op.is_set() {
                Some(VectorMatching {
                    card: Card::ManyToMany,
                    on: false,
                    labels: vec![],
                    include: vec![],
                })
            } else {
                None
            });
        };
        self.advance()?;
        let labels = self.label_list()?;
        let mut m = VectorMatching {
            card: if op.is_set() {
                Card::ManyToMany
            } else {
                Card::OneToOne
            },
            on,
            labels,
            include: vec![],
        };
        let left = is_ident(&self.tok, "group_left");
        if left || is_ident(&self.tok, "group_right") {
            if op.is_set() {
                return Err((
                    self.pos,
                    "no grouping allowed for \"and\", \"or\", \"unless\" operations".into(),
                ));
            }
            self.advance()?;
            m.card = if left {
                Card::ManyToOne
            } else {
                Card::OneToMany
            };
            if self.tok == Tok::LParen {
                m.include = self.label_list()?;
            }
            for l in &m.include {
                if m.on && m.labels.contains(l) {
                    return Err((
                        self.pos,
                        format!("label {l:?} must not occur in ON and GROUP clause at once"),
                    ));
                }
            }
        }
        Ok(Some(m))
    }

    /// `( name, name, ... )`, with an optional trailing comma.
    fn label_list(&mut self) -> PResult<Vec<String>> {
        self.expect(Tok::LParen, "grouping opts")?;
        let mut v = Vec::new();
        loop {
            match &self.tok {
                Tok::RParen => {
                    self.advance()?;
                    return Ok(v);
                }
                Tok::Ident(s) if crate::tsdb::labels::valid_label_name(s) => {
                    v.push(s.clone());
                    self.advance()?;
                }
                Tok::Op(op) if op.is_set() || *op == BinOp::Atan2 => {
                    v.push(op.as_str().to_string());
                    self.advance()?;
                }
                _ => return Err(self.unexpected("grouping opts", Some("label"))),
            }
            match self.tok {
                Tok::Comma => self.advance()?,
                Tok::RParen => {}
                _ => return Err(self.unexpected("grouping opts", Some("\",\" or \")\""))),
            }
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        if let Tok::Op(op @ (BinOp::Add | BinOp::Sub)) = self.tok {
            self.advance()?;
            self.enter()?;
            // Unary operators bind like multiplication: -a^b is -(a^b), -a*b is (-a)*b.
            let e = self.expr(BinOp::Pow.precedence())?;
            self.depth -= 1;
            let neg = op == BinOp::Sub;
            return Ok(match e {
                Expr::Number(v) => Expr::Number(if neg { -v } else { v }),
                e => {
                    let t = e.value_type();
                    if t != ValueType::Scalar && t != ValueType::Vector {
                        return Err((
                            self.pos,
                            format!(
                                "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                                t.name()
                            ),
                        ));
                    }
                    Expr::Unary {
                        neg,
                        expr: Box::new(e),
                    }
                }
            });
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let pos = self.pos;
        match self.tok.clone() {
            Tok::Number(v) => {
                self.advance()?;
                Ok(Expr::Number(v))
            }
            Tok::Str(s) => {
                self.advance()?;
                Ok(Expr::Str(s))
            }
            Tok::LParen => {
                self.advance()?;
                let e = self.expr(0)?;
                self.expect(Tok::RParen, "paren expression")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::LBrace => {
                let vs = self.selector(None, pos)?;
                Ok(Expr::Selector(vs))
            }
            Tok::Ident(name) => {
                let next = self.peek()?.clone();
                if let Some(op) = AggOp::from_name(&name)
                    && (next == Tok::LParen || is_ident(&next, "by") || is_ident(&next, "without"))
                {
                    self.advance()?;
                    return self.aggregate(op, pos);
                }
                if next == Tok::LParen {
                    let Some(func) = functions::lookup(&name) else {
                        return Err((pos, format!("unknown function with name {name:?}")));
                    };
                    self.advance()?;
                    self.advance()?;
                    let mut args = Vec::new();
                    while self.tok != Tok::RParen {
                        args.push(self.expr(0)?);
                        match self.tok {
                            Tok::Comma => self.advance()?,
                            Tok::RParen => {}
                            _ => {
                                return Err(
                                    self.unexpected("function call", Some("\",\" or \")\""))
                                );
                            }
                        }
                    }
                    self.advance()?;
                    return Ok(Expr::Call { func, args });
                }
                self.advance()?;
                let vs = self.selector(Some(name), pos)?;
                Ok(Expr::Selector(vs))
            }
            Tok::Duration(_) => Err((pos, "unexpected duration".into())),
            _ => Err(self.unexpected("", None)),
        }
    }

    fn aggregate(&mut self, op: AggOp, pos: usize) -> PResult<Expr> {
        let mut grouping = Vec::new();
        let mut without = false;
        let mut have_mod = false;
        if is_ident(&self.tok, "by") || is_ident(&self.tok, "without") {
            without = is_ident(&self.tok, "without");
            self.advance()?;
            grouping = self.label_list()?;
            have_mod = true;
        }
        self.expect(Tok::LParen, "aggregation")?;
        let mut args = Vec::new();
        while self.tok != Tok::RParen {
            args.push(self.expr(0)?);
            match self.tok {
                Tok::Comma => self.advance()?,
                Tok::RParen => {}
                _ => return Err(self.unexpected("aggregation", Some("\",\" or \")\""))),
            }
        }
        self.advance()?;
        if !have_mod && (is_ident(&self.tok, "by") || is_ident(&self.tok, "without")) {
            without = is_ident(&self.tok, "without");
            self.advance()?;
            grouping = self.label_list()?;
        }
        let want = if op.param_type().is_some() { 2 } else { 1 };
        if args.len() != want {
            return Err((
                pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().expect("counted");
        let param = args.pop().map(Box::new);
        Ok(Expr::Aggregate {
            op,
            param,
            expr: Box::new(expr),
            grouping,
            without,
        })
    }

    fn selector(&mut self, name: Option<String>, pos: usize) -> PResult<VectorSelector> {
        let mut matchers = Vec::new();
        if self.tok == Tok::LBrace {
            self.advance()?;
            loop {
                let lname = match &self.tok {
                    Tok::RBrace => break,
                    Tok::Ident(s) => s.clone(),
                    Tok::Op(op) if op.is_set() || *op == BinOp::Atan2 => op.as_str().to_string(),
                    _ => {
                        return Err(
                            self.unexpected("label matching", Some("label matching operator"))
                        );
                    }
                };
                self.advance()?;
                let op = match self.tok {
                    Tok::Assign => MatchOp::Equal,
                    Tok::Op(BinOp::Ne) => MatchOp::NotEqual,
                    Tok::Regex => MatchOp::Regex,
                    Tok::NotRegex => MatchOp::NotRegex,
                    _ => {
                        return Err(
                            self.unexpected("label matching", Some("label matching operator"))
                        );
                    }
                };
                self.advance()?;
                let vpos = self.pos;
                let Tok::Str(value) = self.tok.clone() else {
                    return Err(self.unexpected("label matching", Some("string")));
                };
                self.advance()?;
                matchers.push(Matcher::new(op, lname, value).map_err(|e| (vpos, e))?);
                match self.tok {
                    Tok::Comma => self.advance()?,
                    Tok::RBrace => {}
                    _ => return Err(self.unexpected("label matching", Some("\",\" or \"}\""))),
                }
            }
            self.advance()?;
        }
        if let Some(n) = &name {
            if matchers.iter().any(|m| m.name == "__name__") {
                return Err((
                    pos,
                    format!(
                        "metric name must not be set twice: {n:?} or {:?}",
                        matchers
                            .iter()
                            .find(|m| m.name == "__name__")
                            .map(|m| m.value.as_str())
                            .unwrap_or("")
                    ),
                ));
            }
            matchers.insert(0, Matcher::eq("__name__", n.clone()));
        }
        if matchers.is_empty() {
            return Err((
                pos,
                "vector selector must contain at least one non-empty matcher".into(),
            ));
        }
        if matchers.iter().all(|m| m.matches_empty()) {
            return Err((
                pos,
                "vector selector must contain at least one non-empty matcher".into(),
            ));
        }
        Ok(VectorSelector {
            name,
            matchers,
            offset: 0,
            at: None,
        })
    }

    /// Range brackets, subqueries, `offset` and `@`, in any order Prometheus accepts.
    fn postfix(&mut self, mut e: Expr) -> PResult<Expr> {
        loop {
            let pos = self.pos;
            match &self.tok {
                Tok::LBracket => {
                    self.advance()?;
                    let Tok::Duration(range) = self.tok else {
                        return Err(self.unexpected("subquery or range", Some("duration")));
                    };
                    self.advance()?;
                    if self.tok == Tok::Colon {
                        self.advance()?;
                        let mut step = 0;
                        if let Tok::Duration(d) = self.tok {
                            step = d;
                            self.advance()?;
                        }
                        self.expect(Tok::RBracket, "subquery")?;
                        let t = e.value_type();
                        if t != ValueType::Vector {
                            return Err((
                                pos,
                                format!(
                                    "subquery is only allowed on instant vector, got {} instead",
                                    t.name()
                                ),
                            ));
                        }
                        if range == 0 {
                            return Err((pos, "subquery range must not be zero".into()));
                        }
                        e = Expr::Subquery {
                            expr: Box::new(e),
                            range,
                            step,
                            offset: 0,
                            at: None,
                        };
                        continue;
                    }
                    self.expect(Tok::RBracket, "range")?;
                    match e {
                        Expr::Selector(vs) if vs.offset == 0 && vs.at.is_none() => {
                            if range == 0 {
                                return Err((pos, "range must not be zero".into()));
                            }
                            e = Expr::Matrix { vs, range };
                        }
                        Expr::Selector(_) => {
                            return Err((
                                pos,
                                "no offset or @ modifiers allowed before range".into(),
                            ));
                        }
                        _ => {
                            return Err((pos, "ranges only allowed for vector selectors".into()));
                        }
                    }
                }
                Tok::Ident(w) if w.eq_ignore_ascii_case("offset") => {
                    self.advance()?;
                    let neg = if self.tok == Tok::Op(BinOp::Sub) {
                        self.advance()?;
                        true
                    } else {
                        if self.tok == Tok::Op(BinOp::Add) {
                            self.advance()?;
                        }
                        false
                    };
                    let Tok::Duration(d) = self.tok else {
                        return Err(self.unexpected("offset", Some("duration")));
                    };
                    self.advance()?;
                    let d = if neg { -d } else { d };
                    let slot = match &mut e {
                        Expr::Selector(vs) | Expr::Matrix { vs, .. } => &mut vs.offset,
                        Expr::Subquery { offset, .. } => offset,
                        _ => return Err((pos, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery".into())),
                    };
                    if *slot != 0 {
                        return Err((pos, "offset may not be set multiple times".into()));
                    }
                    *slot = d;
                }
                Tok::At => {
                    self.advance()?;
                    let at = match self.tok.clone() {
                        Tok::Number(v) => {
                            self.advance()?;
                            At::Time(at_ms(v).ok_or((
                                pos,
                                "timestamp out of bounds for @ modifier".to_string(),
                            ))?)
                        }
                        Tok::Op(op @ (BinOp::Sub | BinOp::Add)) => {
                            self.advance()?;
                            let Tok::Number(v) = self.tok else {
                                return Err(self.unexpected("@", Some("timestamp")));
                            };
                            self.advance()?;
                            let v = if op == BinOp::Sub { -v } else { v };
                            At::Time(at_ms(v).ok_or((
                                pos,
                                "timestamp out of bounds for @ modifier".to_string(),
                            ))?)
                        }
                        Tok::Ident(w) if w == "start" || w == "end" => {
                            self.advance()?;
                            self.expect(Tok::LParen, "@")?;
                            self.expect(Tok::RParen, "@")?;
                            if w == "start" { At::Start } else { At::End }
                        }
                        _ => return Err(self.unexpected("@", Some("timestamp"))),
                    };
                    let slot = match &mut e {
                        Expr::Selector(vs) | Expr::Matrix { vs, .. } => &mut vs.at,
                        Expr::Subquery { at, .. } => at,
                        _ => return Err((pos, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery".into())),
                    };
                    if slot.is_some() {
                        return Err((pos, "@ <timestamp> may not be set multiple times".into()));
                    }
                    *slot = Some(at);
                }
                _ => return Ok(e),
            }
        }
    }
}

fn at_ms(v: f64) -> Option<i64> {
    let ms = (v * 1000.0).round();
    (v.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
}

fn build_binary(
    op: BinOp,
    lhs: Expr,
    rhs: Expr,
    return_bool: bool,
    mut matching: Option<VectorMatching>,
    pos: usize,
) -> PResult<Expr> {
    let (lt, rt) = (lhs.value_type(), rhs.value_type());
    for t in [lt, rt] {
        if t != ValueType::Scalar && t != ValueType::Vector {
            return Err((
                pos,
                "binary expression must contain only scalar and instant vector types".to_string(),
            ));
        }
    }
    let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
    if op.is_comparison() && !return_bool && lt == ValueType::Scalar && rt == ValueType::Scalar {
        return Err((
            pos,
            "comparisons between scalars must use BOOL modifier".into(),
        ));
    }
    if op.is_set() && !both_vectors {
        return Err((
            pos,
            format!(
                "set operator {:?} not allowed in binary scalar expression",
                op.as_str()
            ),
        ));
    }
    if !both_vectors {
        if let Some(m) = &matching
            && (m.on
                || !m.labels.is_empty()
                || m.card != Card::ManyToMany && m.card != Card::OneToOne)
        {
            return Err((
                pos,
                "vector matching only allowed between instant vectors".into(),
            ));
        }
        matching = None;
    } else if matching.is_none() {
        matching = Some(VectorMatching {
            card: Card::OneToOne,
            on: false,
            labels: vec![],
            include: vec![],
        });
    }
    Ok(Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        return_bool,
        matching,
    })
}

/// Type checks the parts the grammar alone does not: function and aggregation arguments.
fn check(e: &Expr) -> PResult<()> {
    match e {
        Expr::Number(_) | Expr::Str(_) | Expr::Selector(_) | Expr::Matrix { .. } => Ok(()),
        Expr::Paren(e) | Expr::Unary { expr: e, .. } => check(e),
        Expr::Binary { lhs, rhs, .. } => {
            check(lhs)?;
            check(rhs)
        }
        Expr::Subquery { expr, .. } => check(expr),
        Expr::Aggregate {
            op, param, expr, ..
        } => {
            if expr.value_type() != ValueType::Vector {
                return Err((
                    0,
                    format!(
                        "expected type instant vector in aggregation expression, got {}",
                        expr.value_type().name()
                    ),
                ));
            }
            if let (Some(p), Some(t)) = (param, op.param_type()) {
                if p.value_type() != t {
                    return Err((
                        0,
                        format!(
                            "expected type {} in aggregation parameter, got {}",
                            t.name(),
                            p.value_type().name()
                        ),
                    ));
                }
                check(p)?;
            }
            check(expr)
        }
        Expr::Call { func, args } => {
            let n = args.len();
            if n < func.min_args() || (!func.is_variadic() && n > func.args.len()) {
                let want = if func.optional == 0 {
                    func.args.len().to_string()
                } else if func.is_variadic() {
                    format!("at least {}", func.min_args())
                } else {
                    format!("at most {}", func.args.len())
                };
                return Err((
                    0,
                    format!(
                        "expected {want} argument(s) in call to {:?}, got {n}",
                        func.name
                    ),
                ));
            }
            for (i, a) in args.iter().enumerate() {
                let want = func.arg_type(i).expect("count checked");
                let got = a.value_type();
                if got != want {
                    return Err((
                        0,
                        format!(
                            "expected type {} in call to function {:?}, got {}",
                            want.name(),
                            func.name,
                            got.name()
                        ),
                    ));
                }
                check(a)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(q: &str) -> String {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
    }

    #[test]
    fn prints_canonical_form() {
        assert_eq!(
            rt("sum(rate(m[5m])) by (job)"),
            "sum by (job) (rate(m[5m]))"
        );
        assert_eq!(
            rt("a + on(x) group_left(y) b"),
            "a + on (x) group_left (y) b"
        );
        assert_eq!(
            rt("foo{b='x', a=~\"y\"} offset 1h30m"),
            "foo{a=~\"y\",b=\"x\"} offset 1h30m"
        );
        assert_eq!(
            rt("rate(foo[5m] @ 100 offset -1m)"),
            "rate(foo[5m] @ 100.000 offset -1m)"
        );
        assert_eq!(
            rt("max_over_time((a > bool 1)[10m:1m])"),
            "max_over_time((a > bool 1)[10m:1m])"
        );
        assert_eq!(rt("x[1h:]"), "x[1h:]");
        assert_eq!(rt("-1"), "-1");
        assert_eq!(rt("0x1F + 1e3 + Inf # comment"), "31 + 1000 + +Inf");
        assert_eq!(rt("topk(3, x) without (a)"), "topk without (a) (3, x)");
        assert_eq!(rt("{__name__=~\"a.*\"}"), "{__name__=~\"a.*\"}");
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(rt("2 ^ 3 ^ 2"), "2 ^ 3 ^ 2");
        match parse("2 ^ 3 ^ 2").unwrap() {
            Expr::Binary { rhs, .. } => {
                assert!(matches!(*rhs, Expr::Binary { op: BinOp::Pow, .. }))
            }
            e => panic!("{e:?}"),
        }
        match parse("1 - 2 - 3").unwrap() {
            Expr::Binary { lhs, .. } => {
                assert!(matches!(*lhs, Expr::Binary { op: BinOp::Sub, .. }))
            }
            e => panic!("{e:?}"),
        }
        match parse("a or b and c").unwrap() {
            Expr::Binary { op, .. } => assert_eq!(op, BinOp::Or),
            e => panic!("{e:?}"),
        }
        // Unary minus binds looser than ^.
        match parse("-a ^ 2").unwrap() {
            Expr::Unary { expr, .. } => {
                assert!(matches!(*expr, Expr::Binary { op: BinOp::Pow, .. }))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse("sum(rate(m[5m]) by").unwrap_err();
        assert!(e.to_string().starts_with("1:"), "{e}");
        assert_eq!(
            parse("foo{").unwrap_err().to_string(),
            "1:5: parse error: unexpected end of input in label matching, expected label matching operator"
        );
        assert!(parse("1 > 2").unwrap_err().to_string().contains("BOOL"));
        assert!(
            parse("rate(foo)")
                .unwrap_err()
                .to_string()
                .contains("range vector")
        );
        assert!(parse("{a=\"\"}").is_err());
        assert!(parse("nosuchfn(x)").is_err());
        assert!(parse("foo offset 5m[5m]").is_err());
        assert!(parse("\"a\" + 1").is_err());
        let deep = "(".repeat(100_000) + "1" + &")".repeat(100_000);
        assert!(parse(&deep).unwrap_err().to_string().contains("nested"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("100ms"), Some(100));
        assert_eq!(parse_duration("30m1h"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
