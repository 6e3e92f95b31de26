//! The PromQL lexer: tokens, number and duration literals, strings with Go's escapes, and the
//! error type the parser shares. Never panics on any input (fuzz target `promql_parser`).

use super::ast::BinOp;

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub pos: usize,
    pub msg: String,
    pub(super) line_col: (usize, usize),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: parse error: {}",
            self.line_col.0, self.line_col.1, self.msg
        )
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Number(f64),
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    Assign,
    Op(BinOp),
    Regex,
    NotRegex,
    Eof,
}

pub(super) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("identifier {s:?}"),
        Tok::Number(_) => "number".into(),
        Tok::Duration(_) => "duration".into(),
        Tok::Str(_) => "string".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::LBrace => "\"{\"".into(),
        Tok::RBrace => "\"}\"".into(),
        Tok::LBracket => "\"[\"".into(),
        Tok::RBracket => "\"]\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Colon => "\":\"".into(),
        Tok::At => "\"@\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Op(op) => format!("<op:{}>", op.as_str()),
        Tok::Regex => "\"=~\"".into(),
        Tok::NotRegex => "\"!~\"".into(),
        Tok::Eof => "end of input".into(),
    }
}

pub(super) struct Lexer<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub(super) fn new(input: &'a str) -> Lexer<'a> {
        Lexer {
            s: input.as_bytes(),
            src: input,
            i: 0,
        }
    }
}

pub(super) type PResult<T> = Result<T, (usize, String)>;

pub use crate::base::units::parse_prom_duration as parse_duration;

impl<'a> Lexer<'a> {
    fn peek_byte(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek_byte(0) {
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'#' {
                while let Some(c) = self.peek_byte(0) {
                    if c == b'\n' {
                        break;
                    }
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Next token and its start offset.
    pub(super) fn next(&mut self) -> PResult<(Tok, usize)> {
        self.skip_ws();
        let at = self.i;
        let Some(c) = self.peek_byte(0) else {
            return Ok((Tok::Eof, at));
        };
        let two = |l: &Self, s: &[u8]| l.s[l.i..].starts_with(s);
        let (tok, len) = match c {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b':' if !self
                .peek_byte(1)
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':') =>
            {
                (Tok::Colon, 1)
            }
            b'@' => (Tok::At, 1),
            b'+' => (Tok::Op(BinOp::Add), 1),
            b'-' => (Tok::Op(BinOp::Sub), 1),
            b'*' => (Tok::Op(BinOp::Mul), 1),
            b'/' => (Tok::Op(BinOp::Div), 1),
            b'%' => (Tok::Op(BinOp::Mod), 1),
            b'^' => (Tok::Op(BinOp::Pow), 1),
            b'=' if two(self, b"==") => (Tok::Op(BinOp::Eq), 2),
            b'=' if two(self, b"=~") => (Tok::Regex, 2),
            b'=' => (Tok::Assign, 1),
            b'!' if two(self, b"!=") => (Tok::Op(BinOp::Ne), 2),
            b'!' if two(self, b"!~") => (Tok::NotRegex, 2),
            b'>' if two(self, b">=") => (Tok::Op(BinOp::Ge), 2),
            b'>' => (Tok::Op(BinOp::Gt), 1),
            b'<' if two(self, b"<=") => (Tok::Op(BinOp::Le), 2),
            b'<' => (Tok::Op(BinOp::Lt), 1),
            b'"' | b'\'' | b'`' => {
                let s = self.string(c)?;
                return Ok((Tok::Str(s), at));
            }
            c if c.is_ascii_digit()
                || (c == b'.' && self.peek_byte(1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                return self.number_or_duration().map(|t| (t, at));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = self.i;
                while self
                    .peek_byte(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
                {
                    self.i += 1;
                }
                let w = &self.src[start..self.i];
                let lw = w.to_ascii_lowercase();
                let tok = match lw.as_str() {
                    "inf" => Tok::Number(f64::INFINITY),
                    "nan" => Tok::Number(f64::NAN),
                    "and" => Tok::Op(BinOp::And),
                    "or" => Tok::Op(BinOp::Or),
                    "unless" => Tok::Op(BinOp::Unless),
                    "atan2" => Tok::Op(BinOp::Atan2),
                    _ => Tok::Ident(w.to_string()),
                };
                return Ok((tok, at));
            }
            _ => {
                let ch = self.src[self.i..].chars().next().unwrap_or('?');
                return Err((at, format!("unexpected character: {ch:?}")));
            }
        };
        self.i += len;
        Ok((tok, at))
    }

    fn number_or_duration(&mut self) -> PResult<Tok> {
        let start = self.i;
        let s = self.s;
        // Hexadecimal.
        if s[self.i] == b'0' && matches!(self.peek_byte(1), Some(b'x' | b'X')) {
            self.i += 2;
            let hs = self.i;
            while self.peek_byte(0).is_some_and(|c| c.is_ascii_hexdigit()) {
                self.i += 1;
            }
            let v = u64::from_str_radix(&self.src[hs..self.i], 16)
                .map_err(|_| (start, "bad number".to_string()))?;
            return Ok(Tok::Number(v as f64));
        }
        while self.peek_byte(0).is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        // A duration: digits followed by a unit, repeated.
        if self
            .peek_byte(0)
            .is_some_and(|c| matches!(c, b'y' | b'w' | b'd' | b'h' | b'm' | b's'))
        {
            while self.peek_byte(0).is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.i += 1;
            }
            let text = &self.src[start..self.i];
            return parse_duration(text)
                .map(Tok::Duration)
                .ok_or((start, format!("bad duration syntax: {text:?}")));
        }
        if self.peek_byte(0) == Some(b'.') {
            self.i += 1;
            while self.peek_byte(0).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        if matches!(self.peek_byte(0), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek_byte(0), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.peek_byte(0).is_some_and(|c| c.is_ascii_digit()) {
                while self.peek_byte(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            } else {
                self.i = save;
            }
        }
        if self
            .peek_byte(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            while self
                .peek_byte(0)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                self.i += 1;
            }
            return Err((
                start,
                format!(
                    "bad number or duration syntax: {:?}",
                    &self.src[start..self.i]
                ),
            ));
        }
        let text = &self.src[start..self.i];
        text.parse::<f64>()
            .map(Tok::Number)
            .map_err(|_| (start, format!("bad number syntax: {text:?}")))
    }

    fn string(&mut self, q: u8) -> PResult<String> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_byte(0) else {
                return Err((start, "unterminated quoted string".into()));
            };
            if c == q {
                self.i += 1;
                return Ok(out);
            }
            if q == b'`' {
                let ch = self.src[self.i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                self.i += ch.len_utf8();
                continue;
            }
            if c == b'\n' {
                return Err((start, "unterminated quoted string".into()));
            }
            if c != b'\\' {
                let ch = self.src[self.i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                self.i += ch.len_utf8();
                continue;
            }
            let esc_at = self.i;
            self.i += 1;
            let Some(e) = self.peek_byte(0) else {
                return Err((start, "unterminated quoted string".into()));
            };
            self.i += 1;
            let bad = |m: &str| (esc_at, m.to_string());
            match e {
                b'a' => out.push('\x07'),
                b'b' => out.push('\x08'),
                b'f' => out.push('\x0c'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'v' => out.push('\x0b'),
                b'\\' => out.push('\\'),
                b'"' | b'\'' if e == q => out.push(e as char),
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = self
                        .src
                        .get(self.i..self.i + n)
                        .ok_or_else(|| bad("invalid escape sequence"))?;
                    let v =
                        u32::from_str_radix(hex, 16).map_err(|_| bad("invalid escape sequence"))?;
                    self.i += n;
                    if e == b'x' {
                        // Go's \x is a byte; PromQL strings are UTF-8, so only ASCII survives.
                        if v > 0x7f {
                            return Err(bad("invalid UTF-8 in escape sequence"));
                        }
                        out.push(v as u8 as char);
                    } else {
                        out.push(char::from_u32(v).ok_or_else(|| {
                            bad("escape sequence is an invalid Unicode code point")
                        })?);
                    }
                }
                b'0'..=b'7' => {
                    let oct = self
                        .src
                        .get(self.i - 1..self.i + 2)
                        .ok_or_else(|| bad("invalid escape sequence"))?;
                    let v =
                        u32::from_str_radix(oct, 8).map_err(|_| bad("invalid escape sequence"))?;
                    if v > 0x7f {
                        return Err(bad("invalid UTF-8 in escape sequence"));
                    }
                    self.i += 2;
                    out.push(v as u8 as char);
                }
                _ => return Err(bad("unknown escape sequence")),
            }
        }
    }
}
