//! The PromQL syntax tree, its static types, and the printer. The printer writes the canonical
//! form Prometheus 2.x writes (`sum by (job) (rate(m[5m]))`), so parsing the printed text gives
//! the same tree back.

use std::fmt;

use crate::base::gofmt::{FloatStyle, QuoteStyle, float, quote};
use crate::tsdb::{MatchOp, Matcher};

use super::functions::Function;
pub use super::functions::ValueType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Arithmetic drops the metric name from its result; comparisons and set operators keep
    /// it, and so does `atan2` (as in Prometheus 2.x).
    pub fn drops_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// `on`/`ignoring` and `group_left`/`group_right` of a vector-vector operation.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    pub card: Card,
    pub on: bool,
    pub labels: Vec<String>,
    pub include: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl AggOp {
    pub fn from_name(s: &str) -> Option<AggOp> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::CountValues => "count_values",
        }
    }

    /// The type of the first argument of aggregations that take one.
    pub fn param_type(self) -> Option<ValueType> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => Some(ValueType::Scalar),
            AggOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

/// The `@` modifier: a fixed time (ms) or the query's start or end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    Time(i64),
    Start,
    End,
}

#[derive(Debug, Clone)]
pub struct VectorSelector {
    /// The metric name as written before the braces, if any.
    pub name: Option<String>,
    /// Every matcher, the name's included.
    pub matchers: Vec<Matcher>,
    /// Offset in ms (negative allowed).
    pub offset: i64,
    pub at: Option<At>,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Number(f64),
    Str(String),
    Paren(Box<Expr>),
    /// Unary minus (`neg`) or plus.
    Unary {
        neg: bool,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
        /// Present for vector-vector operations.
        matching: Option<VectorMatching>,
    },
    Aggregate {
        op: AggOp,
        param: Option<Box<Expr>>,
        expr: Box<Expr>,
        grouping: Vec<String>,
        without: bool,
    },
    Call {
        func: &'static Function,
        args: Vec<Expr>,
    },
    Selector(VectorSelector),
    /// `selector[range]`; the offset and `@` live in the selector.
    Matrix {
        vs: VectorSelector,
        range: i64,
    },
    Subquery {
        expr: Box<Expr>,
        range: i64,
        /// 0: the default step (the global evaluation interval, 1 minute).
        step: i64,
        offset: i64,
        at: Option<At>,
    },
}

impl Expr {
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::Str(_) => ValueType::String,
            Expr::Paren(e) | Expr::Unary { expr: e, .. } => e.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate { .. } | Expr::Selector(_) => ValueType::Vector,
            Expr::Call { func, .. } => func.ret,
            Expr::Matrix { .. } | Expr::Subquery { .. } => ValueType::Matrix,
        }
    }

    /// Resolves `@ start()` and `@ end()` to the query's times.
    pub fn resolve_at(&mut self, start: i64, end: i64) {
        let fix = |a: &mut Option<At>| {
            *a = match *a {
                Some(At::Start) => Some(At::Time(start)),
                Some(At::End) => Some(At::Time(end)),
                x => x,
            }
        };
        match self {
            Expr::Number(_) | Expr::Str(_) => {}
            Expr::Paren(e) | Expr::Unary { expr: e, .. } => e.resolve_at(start, end),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.resolve_at(start, end);
                rhs.resolve_at(start, end);
            }
            Expr::Aggregate { param, expr, .. } => {
                if let Some(p) = param {
                    p.resolve_at(start, end);
                }
                expr.resolve_at(start, end);
            }
            Expr::Call { args, .. } => args.iter_mut().for_each(|a| a.resolve_at(start, end)),
            Expr::Selector(vs) | Expr::Matrix { vs, .. } => fix(&mut vs.at),
            Expr::Subquery { expr, at, .. } => {
                fix(at);
                expr.resolve_at(start, end);
            }
        }
    }
}

/// Prometheus's duration format: `1h30m`, `5m`, `90d`; years and weeks only when exact.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut r = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            r.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    r
}

fn fmt_modifiers(f: &mut fmt::Formatter<'_>, at: Option<At>, offset: i64) -> fmt::Result {
    match at {
        Some(At::Time(t)) => write!(f, " @ {:.3}", t as f64 / 1000.0)?,
        Some(At::Start) => write!(f, " @ start()")?,
        Some(At::End) => write!(f, " @ end()")?,
        None => {}
    }
    if offset > 0 {
        write!(f, " offset {}", format_duration(offset))?;
    } else if offset < 0 {
        write!(f, " offset -{}", format_duration(-offset))?;
    }
    Ok(())
}

impl VectorSelector {
    fn fmt_bare(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name.as_deref().unwrap_or("");
        let mut ms: Vec<String> = self
            .matchers
            .iter()
            .filter(|m| !(m.name == "__name__" && m.op == MatchOp::Equal && m.value == name))
            .map(|m| {
                format!(
                    "{}{}{}",
                    m.name,
                    m.op.as_str(),
                    quote(&m.value, QuoteStyle::Go)
                )
            })
            .collect();
        if ms.is_empty() {
            return write!(f, "{name}");
        }
        ms.sort();
        write!(f, "{name}{{{}}}", ms.join(","))
    }
}

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(v) => write!(f, "{}", float(*v, FloatStyle::G)),
            Expr::Str(s) => write!(f, "{}", quote(s, QuoteStyle::Go)),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Unary { neg, expr } => write!(f, "{}{expr}", if *neg { "-" } else { "+" }),
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => {
                write!(f, "{lhs} {}", op.as_str())?;
                if *return_bool {
                    write!(f, " bool")?;
                }
                if let Some(m) = matching
                    && (!m.labels.is_empty() || m.on)
                {
                    let tag = if m.on { "on" } else { "ignoring" };
                    write!(f, " {tag} ({})", m.labels.join(", "))?;
                    match m.card {
                        Card::ManyToOne => write!(f, " group_left ({})", m.include.join(", "))?,
                        Card::OneToMany => write!(f, " group_right ({})", m.include.join(", "))?,
                        _ => {}
                    }
                }
                write!(f, " {rhs}")
            }
            Expr::Aggregate {
                op,
                param,
                expr,
                grouping,
                without,
            } => {
                write!(f, "{}", op.as_str())?;
                if *without {
                    write!(f, " without ({}) ", grouping.join(", "))?;
                } else if !grouping.is_empty() {
                    write!(f, " by ({}) ", grouping.join(", "))?;
                }
                write!(f, "(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{expr})")
            }
            Expr::Call { func, args } => write!(f, "{}({})", func.name, join(args)),
            Expr::Selector(vs) => {
                vs.fmt_bare(f)?;
                fmt_modifiers(f, vs.at, vs.offset)
            }
            Expr::Matrix { vs, range } => {
                vs.fmt_bare(f)?;
                write!(f, "[{}]", format_duration(*range))?;
                fmt_modifiers(f, vs.at, vs.offset)
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
            } => {
                let step = if *step == 0 {
                    String::new()
                } else {
                    format_duration(*step)
                };
                write!(f, "{expr}[{}:{step}]", format_duration(*range))?;
                fmt_modifiers(f, *at, *offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_print_like_prometheus() {
        assert_eq!(float(1e21, FloatStyle::G), "1e+21");
        assert_eq!(float(1.5e-7, FloatStyle::G), "1.5e-07");
        assert_eq!(float(100000.0, FloatStyle::G), "100000");
        assert_eq!(float(1e6, FloatStyle::G), "1e+06");
        assert_eq!(float(1234567.0, FloatStyle::G), "1.234567e+06");
        assert_eq!(float(0.0001, FloatStyle::G), "0.0001");
        assert_eq!(float(0.25, FloatStyle::G), "0.25");
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(90 * 86_400_000), "90d");
        assert_eq!(format_duration(14 * 86_400_000), "2w");
        assert_eq!(format_duration(1500), "1s500ms");
        assert_eq!(quote("a\"b\\\n", QuoteStyle::Go), "\"a\\\"b\\\\\\n\"");
    }
}
