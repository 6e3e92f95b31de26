//! Series selectors (`name{label="value", other=~"re"}`), the part of PromQL that the series,
//! label and export endpoints take as `match[]`. The full PromQL parser is its own module; this
//! one only reads selectors, with errors that carry the position.

use crate::tsdb::{MatchOp, Matcher};

/// Parses a selector into matchers; at least one matcher must not match the empty string, as
/// Prometheus requires.
pub fn parse(input: &str) -> Result<Vec<Matcher>, String> {
    let mut p = P {
        s: input.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    p.ws();
    let name = p.ident(true);
    if !name.is_empty() {
        out.push(Matcher::eq("__name__", name));
    }
    p.ws();
    if p.peek() == Some(b'{') {
        p.i += 1;
        loop {
            p.ws();
            if p.peek() == Some(b'}') {
                p.i += 1;
                break;
            }
            let at = p.i;
            let lname = p.ident(false);
            if lname.is_empty() {
                return Err(p.err(at, "expected a label name"));
            }
            p.ws();
            let op = if p.eat("=~") {
                MatchOp::Regex
            } else if p.eat("!~") {
                MatchOp::NotRegex
            } else if p.eat("!=") {
                MatchOp::NotEqual
            } else if p.eat("=") {
                MatchOp::Equal
            } else {
                return Err(p.err(p.i, "expected one of =, !=, =~, !~"));
            };
            p.ws();
            let vat = p.i;
            let value = p.string()?;
            out.push(Matcher::new(op, lname, value).map_err(|e| p.err(vat, &e))?);
            p.ws();
            if p.eat(",") {
                continue;
            }
            if p.peek() == Some(b'}') {
                p.i += 1;
                break;
            }
            return Err(p.err(p.i, "expected , or }"));
        }
    }
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err(p.i, "unexpected characters after the selector"));
    }
    if out.is_empty() {
        return Err(p.err(0, "expected a metric name or {label matchers}"));
    }
    if out.iter().all(|m| m.matches_empty()) {
        return Err("vector selector must contain at least one non-empty matcher".into());
    }
    Ok(out)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn ident(&mut self, metric: bool) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (metric && c == b':')
                || (self.i > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn err(&self, at: usize, msg: &str) -> String {
        let text = String::from_utf8_lossy(&self.s[..at.min(self.s.len())]);
        let line = text.matches('\n').count() + 1;
        let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{line}:{col}: parse error: {msg}")
    }

    /// A double-, single- or back-quoted string; the first two take Go escapes.
    fn string(&mut self) -> Result<String, String> {
        let at = self.i;
        let q = self
            .peek()
            .filter(|c| matches!(c, b'"' | b'\'' | b'`'))
            .ok_or_else(|| self.err(at, "expected a quoted string"))?;
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(at, "unterminated string"));
            };
            self.i += 1;
            if c == q {
                break;
            }
            if c == b'\\' && q != b'`' {
                let Some(e) = self.peek() else {
                    return Err(self.err(at, "unterminated string"));
                };
                self.i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'\\' | b'"' | b'\'' => out.push(e),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'u' | b'U' | b'x' => {
                        let n = match e {
                            b'u' => 4,
                            b'U' => 8,
                            _ => 2,
                        };
                        let hex = self
                            .s
                            .get(self.i..self.i + n)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or_else(|| self.err(self.i, "invalid escape"))?;
                        self.i += n;
                        if e == b'x' {
                            out.push(hex as u8);
                        } else {
                            let ch = char::from_u32(hex)
                                .ok_or_else(|| self.err(self.i, "invalid escape"))?;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                    }
                    _ => return Err(self.err(self.i - 1, "unknown escape sequence")),
                }
            } else {
                out.push(c);
            }
        }
        String::from_utf8(out).map_err(|_| self.err(at, "string is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let ok = [
            ("up", 1),
            ("up{job=\"node\"}", 2),
            ("{__name__=~\"node_.*\", mode!='idle'}", 2),
            ("node_cpu_seconds_total{cpu=\"0\",}", 2),
            ("  a:b { x !~ `a\\d` } ", 2),
        ];
        for (s, n) in ok {
            assert_eq!(parse(s).unwrap().len(), n, "{s}");
        }
        let m = parse("x{a=\"q\\\"\\n\"}").unwrap();
        assert_eq!(m[1].value, "q\"\n");
        for bad in [
            "",
            "{}",
            "{a=\"\"}",
            "up{",
            "up{a}",
            "up{a=b}",
            "up{a=\"x\"",
            "up x",
            "{a=~\"(\"}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("up{1=\"x\"}").unwrap_err(),
            "1:4: parse error: expected a label name"
        );
    }
}
