//! The types an expression can have, and the function table: names, argument types and result
//! types the parser checks calls against. The evaluator (`eval/functions.rs`, `eval/range.rs`)
//! implements each by name. Imports nothing of `promql`, so the AST and the parser stand on it.

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }

    /// The API's `resultType`.
    pub fn api_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }
}

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};

#[derive(Debug)]
pub struct Function {
    pub name: &'static str,
    pub args: &'static [ValueType],
    /// How many trailing arguments may be left out (`usize::MAX`: the last repeats freely).
    pub optional: usize,
    pub ret: ValueType,
}

const VARIADIC: usize = usize::MAX;

macro_rules! f {
    ($name:literal, [$($a:expr),*], $opt:expr, $ret:expr) => {
        Function { name: $name, args: &[$($a),*], optional: $opt, ret: $ret }
    };
}

pub static FUNCTIONS: &[Function] = &[
    f!("abs", [V], 0, V),
    f!("absent", [V], 0, V),
    f!("absent_over_time", [M], 0, V),
    f!("acos", [V], 0, V),
    f!("acosh", [V], 0, V),
    f!("asin", [V], 0, V),
    f!("asinh", [V], 0, V),
    f!("atan", [V], 0, V),
    f!("atanh", [V], 0, V),
    f!("avg_over_time", [M], 0, V),
    f!("ceil", [V], 0, V),
    f!("changes", [M], 0, V),
    f!("clamp", [V, S, S], 0, V),
    f!("clamp_max", [V, S], 0, V),
    f!("clamp_min", [V, S], 0, V),
    f!("cos", [V], 0, V),
    f!("cosh", [V], 0, V),
    f!("count_over_time", [M], 0, V),
    f!("days_in_month", [V], 1, V),
    f!("day_of_month", [V], 1, V),
    f!("day_of_week", [V], 1, V),
    f!("day_of_year", [V], 1, V),
    f!("deg", [V], 0, V),
    f!("delta", [M], 0, V),
    f!("deriv", [M], 0, V),
    f!("exp", [V], 0, V),
    f!("floor", [V], 0, V),
    f!("histogram_quantile", [S, V], 0, V),
    f!("holt_winters", [M, S, S], 0, V),
    f!("hour", [V], 1, V),
    f!("idelta", [M], 0, V),
    f!("increase", [M], 0, V),
    f!("irate", [M], 0, V),
    f!("label_join", [V, Str, Str, Str], VARIADIC, V),
    f!("label_replace", [V, Str, Str, Str, Str], 0, V),
    f!("last_over_time", [M], 0, V),
    f!("ln", [V], 0, V),
    f!("log10", [V], 0, V),
    f!("log2", [V], 0, V),
    f!("max_over_time", [M], 0, V),
    f!("min_over_time", [M], 0, V),
    f!("minute", [V], 1, V),
    f!("month", [V], 1, V),
    f!("pi", [], 0, S),
    f!("predict_linear", [M, S], 0, V),
    f!("present_over_time", [M], 0, V),
    f!("quantile_over_time", [S, M], 0, V),
    f!("rad", [V], 0, V),
    f!("rate", [M], 0, V),
    f!("resets", [M], 0, V),
    f!("round", [V, S], 1, V),
    f!("scalar", [V], 0, S),
    f!("sgn", [V], 0, V),
    f!("sin", [V], 0, V),
    f!("sinh", [V], 0, V),
    f!("sort", [V], 0, V),
    f!("sort_desc", [V], 0, V),
    f!("sqrt", [V], 0, V),
    f!("stddev_over_time", [M], 0, V),
    f!("stdvar_over_time", [M], 0, V),
    f!("sum_over_time", [M], 0, V),
    f!("tan", [V], 0, V),
    f!("tanh", [V], 0, V),
    f!("time", [], 0, S),
    f!("timestamp", [V], 0, V),
    f!("vector", [S], 0, V),
    f!("year", [V], 1, V),
];

pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

impl Function {
    pub fn is_variadic(&self) -> bool {
        self.optional == VARIADIC
    }

    /// Type expected for argument `i`, or `None` past the end.
    pub fn arg_type(&self, i: usize) -> Option<ValueType> {
        match self.args.get(i) {
            Some(t) => Some(*t),
            None if self.is_variadic() => self.args.last().copied(),
            None => None,
        }
    }

    pub fn min_args(&self) -> usize {
        if self.is_variadic() {
            self.args.len() - 1
        } else {
            self.args.len() - self.optional
        }
    }
}
