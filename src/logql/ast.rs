//! LogQL's syntax tree: a log query (a stream selector and a pipeline) and the metric queries
//! built over it (range aggregations, vector aggregations, binary operators, literals).

use regex::Regex;

/// A label matcher of a stream selector or a string label filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Anchored (`^(?:v)$`), compiled once, for `=~` and `!~`.
    pub re: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(anchored(value)?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether `v` (the label's value, "" when absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

pub use crate::base::regex::{REGEX_SIZE_LIMIT, compile_bounded as compile};

pub fn anchored(re: &str) -> Result<Regex, String> {
    compile(&format!("^(?s:{re})$"))
}

/// `|=`, `!=`, `|~`, `!~`, and the pattern filters `|>`, `!>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
    Pattern,
    NotPattern,
}

/// One line filter: an operator and its alternatives (`|= "a" or "b"`).
#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineOp,
    pub needles: Vec<String>,
    /// Compiled patterns for `|~`/`!~` (unanchored) and `|>`/`!>` (as regular expressions).
    pub res: Vec<Regex>,
}

/// The value a label filter compares with, which decides how the label is read.
#[derive(Debug, Clone)]
pub enum FilterValue {
    Number(f64),
    /// Seconds.
    Duration(f64),
    Bytes(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// `name op "string"` (`=`, `!=`, `=~`, `!~`).
    Str(Matcher),
    /// `name op number|duration|bytes`.
    Cmp {
        name: String,
        op: CmpOp,
        value: FilterValue,
    },
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// `json` / `logfmt` with parameters: `label="path"` (or a bare `label`, the path being the name).
#[derive(Debug, Clone)]
pub struct Extraction {
    pub label: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub enum LabelFmt {
    Rename(String),
    Template(crate::template::Template),
}

/// `drop`/`keep` items: a label name, or a matcher that applies only where the value matches.
#[derive(Debug, Clone)]
pub enum NameOrMatcher {
    Name(String),
    Matcher(Matcher),
}

impl NameOrMatcher {
    pub fn name(&self) -> &str {
        match self {
            NameOrMatcher::Name(n) => n,
            NameOrMatcher::Matcher(m) => &m.name,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    Line(LineFilter),
    Json(Vec<Extraction>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<Extraction>,
    },
    Regexp(Regex),
    Pattern(super::pattern::Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(crate::template::Template),
    LabelFormat(Vec<(String, LabelFmt)>),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
    Decolorize,
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    Plain,
    Duration,
    Bytes,
}

#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conv: Conv,
    /// Label filters after `unwrap` (typically `| __error__=""`).
    pub filters: Vec<LabelFilter>,
}

/// `{...} | pipeline [range] offset d`, with an optional `unwrap`.
#[derive(Debug, Clone)]
pub struct LogRange {
    pub log: LogExpr,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub unwrap: Option<Unwrap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub fn from_name(s: &str) -> Option<RangeOp> {
        Some(match s {
            "count_over_time" => RangeOp::CountOverTime,
            "rate" => RangeOp::Rate,
            "rate_counter" => RangeOp::RateCounter,
            "bytes_over_time" => RangeOp::BytesOverTime,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::AbsentOverTime,
            "sum_over_time" => RangeOp::SumOverTime,
            "avg_over_time" => RangeOp::AvgOverTime,
            "min_over_time" => RangeOp::MinOverTime,
            "max_over_time" => RangeOp::MaxOverTime,
            "stddev_over_time" => RangeOp::StddevOverTime,
            "stdvar_over_time" => RangeOp::StdvarOverTime,
            "quantile_over_time" => RangeOp::QuantileOverTime,
            "first_over_time" => RangeOp::FirstOverTime,
            "last_over_time" => RangeOp::LastOverTime,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl AggOp {
    pub fn from_name(s: &str) -> Option<AggOp> {
        Some(match s {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "sort" => AggOp::Sort,
            "sort_desc" => AggOp::SortDesc,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Debug, Clone, Default)]
pub struct VectorMatching {
    /// `on(...)` (true) or `ignoring(...)` (false, the default with no labels).
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left` (Some(false)) or `group_right` (Some(true)), with the labels to include.
    pub group: Option<(bool, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub enum MetricExpr {
    Range {
        op: RangeOp,
        param: Option<f64>,
        range: LogRange,
        grouping: Option<Grouping>,
    },
    Agg {
        op: AggOp,
        param: Option<f64>,
        grouping: Option<Grouping>,
        inner: Box<MetricExpr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
        return_bool: bool,
        matching: VectorMatching,
    },
    Literal(f64),
    /// `vector(x)`: one series with no labels.
    Vector(f64),
    LabelReplace {
        inner: Box<MetricExpr>,
        dst: String,
        replacement: String,
        src: String,
        re: Regex,
    },
}

impl MetricExpr {
    /// Whether the expression is a scalar (literals and arithmetic between them).
    pub fn is_scalar(&self) -> bool {
        match self {
            MetricExpr::Literal(_) => true,
            MetricExpr::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }

    /// Every log range the expression reads.
    pub fn ranges(&self) -> Vec<&LogRange> {
        let mut out = Vec::new();
        self.walk_ranges(&mut out);
        out
    }

    fn walk_ranges<'a>(&'a self, out: &mut Vec<&'a LogRange>) {
        match self {
            MetricExpr::Range { range, .. } => out.push(range),
            MetricExpr::Agg { inner, .. } | MetricExpr::LabelReplace { inner, .. } => {
                inner.walk_ranges(out)
            }
            MetricExpr::Binary { lhs, rhs, .. } => {
                lhs.walk_ranges(out);
                rhs.walk_ranges(out);
            }
            MetricExpr::Literal(_) | MetricExpr::Vector(_) => {}
        }
    }
}

#[derive(Debug, Clone)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A byte size as Loki reads one (`humanize.ParseBytes`: `42MB`, `1.5KiB`, `10 b`).
pub use crate::base::units::parse_size_f64 as parse_bytes;
