//! The PromQL syntax tree. Every node carries the byte span it was parsed from.

use argus_model::Matcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    /// Prometheus's `ValueType` strings (`matrix`, `vector`, …), as a few of its messages
    /// print the type.
    pub fn go_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }

    /// Prometheus's names in type errors.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AtModifier {
    /// Milliseconds.
    Timestamp(i64),
    Start,
    End,
}

impl AtModifier {
    /// The evaluation time `at` stands for, given the query's start and end.
    pub fn time(self, start: i64, end: i64) -> i64 {
        match self {
            AtModifier::Timestamp(t) => t,
            AtModifier::Start => start,
            AtModifier::End => end,
        }
    }
}

/// The time an optional `@` moves evaluation time `t` to.
pub fn at_time(at: Option<AtModifier>, t: i64, start: i64, end: i64) -> i64 {
    at.map_or(t, |a| a.time(start, end))
}

/// A duration expression (`[26m+4m]`, `offset (step() * 2)`), in seconds. The parser
/// computes constant ones at once (and keeps them for printing); those using
/// `step()`/`range()` are resolved per query.
#[derive(Debug, Clone, PartialEq)]
pub enum DurExpr {
    /// A number (`2` in `5m * 2`).
    Num(f64),
    /// A duration literal (`5m`).
    Lit(f64),
    /// Parentheses as written.
    Paren(Box<DurExpr>),
    Step,
    Range,
    Neg(Box<DurExpr>),
    Bin(BinOp, Box<DurExpr>, Box<DurExpr>),
    MinOf(Box<DurExpr>, Box<DurExpr>),
    MaxOf(Box<DurExpr>, Box<DurExpr>),
    /// A range's or step's whole expression (not a plain literal), with its place in the
    /// query for the error when it comes out at or below zero.
    Spanned(Span, Box<DurExpr>),
}

impl DurExpr {
    /// Seconds, given the query step and range (both seconds; 0 for instant queries).
    pub fn eval(&self, step: f64, range: f64) -> f64 {
        match self {
            DurExpr::Num(v) | DurExpr::Lit(v) => *v,
            DurExpr::Paren(e) | DurExpr::Spanned(_, e) => e.eval(step, range),
            DurExpr::Step => step,
            DurExpr::Range => range,
            DurExpr::Neg(e) => -e.eval(step, range),
            DurExpr::MinOf(a, b) => a.eval(step, range).min(b.eval(step, range)),
            DurExpr::MaxOf(a, b) => a.eval(step, range).max(b.eval(step, range)),
            DurExpr::Bin(op, a, b) => {
                let (a, b) = (a.eval(step, range), b.eval(step, range));
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Mod => a % b,
                    BinOp::Pow => a.powf(b),
                    _ => f64::NAN,
                }
            }
        }
    }

    pub fn is_const(&self) -> bool {
        match self {
            DurExpr::Num(_) | DurExpr::Lit(_) => true,
            DurExpr::Step | DurExpr::Range => false,
            DurExpr::Neg(e) | DurExpr::Paren(e) | DurExpr::Spanned(_, e) => e.is_const(),
            DurExpr::Bin(_, a, b) | DurExpr::MinOf(a, b) | DurExpr::MaxOf(a, b) => {
                a.is_const() && b.is_const()
            }
        }
    }

    /// Seconds as Prometheus computes them when it prepares a query (`durationVisitor`): a
    /// division or modulo by zero there is an error at that operation's place in the query
    /// (`7:15: division by zero`; the parser wraps each `/` and `%` in [`DurExpr::Spanned`]).
    pub fn checked(&self, step: f64, range: f64) -> Result<f64, String> {
        let two = |a: &DurExpr, b: &DurExpr| -> Result<(f64, f64), String> {
            Ok((a.checked(step, range)?, b.checked(step, range)?))
        };
        Ok(match self {
            DurExpr::Spanned(span, inner) => match &**inner {
                DurExpr::Bin(op @ (BinOp::Div | BinOp::Mod), a, b) => {
                    let (a, b) = two(a, b)?;
                    if b == 0.0 {
                        let what = if *op == BinOp::Div {
                            "division"
                        } else {
                            "modulo"
                        };
                        return Err(format!("{}:{}: {what} by zero", span.start, span.end));
                    }
                    if *op == BinOp::Div { a / b } else { a % b }
                }
                inner => inner.checked(step, range)?,
            },
            DurExpr::Paren(e) => e.checked(step, range)?,
            DurExpr::Neg(e) => -e.checked(step, range)?,
            DurExpr::MinOf(a, b) => {
                let (a, b) = two(a, b)?;
                a.min(b)
            }
            DurExpr::MaxOf(a, b) => {
                let (a, b) = two(a, b)?;
                a.max(b)
            }
            DurExpr::Bin(op, a, b) => {
                let (a, b) = two(a, b)?;
                DurExpr::Bin(*op, Box::new(DurExpr::Num(a)), Box::new(DurExpr::Num(b)))
                    .eval(step, range)
            }
            DurExpr::Num(_) | DurExpr::Lit(_) | DurExpr::Step | DurExpr::Range => {
                self.eval(step, range)
            }
        })
    }

    /// Milliseconds.
    pub fn millis(&self, step_ms: i64, range_ms: i64) -> i64 {
        let secs = self.eval(step_ms as f64 / 1000.0, range_ms as f64 / 1000.0);
        if secs.is_finite() {
            (secs * 1000.0).round() as i64
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    /// Milliseconds; positive looks back.
    pub offset_ms: i64,
    /// Set when the offset uses `step()`/`range()`.
    pub offset_expr: Option<DurExpr>,
    pub at: Option<AtModifier>,
    /// `anchored`: a range starts at the last sample at or before its start.
    pub anchored: bool,
    /// `smoothed`: values at the range boundaries (or at the evaluation time, for an instant
    /// selector) are interpolated between the neighbouring samples.
    pub smoothed: bool,
    pub span: Span,
}

impl VectorSelector {
    /// A selector without modifiers.
    pub fn new(name: Option<String>, matchers: Vec<Matcher>, span: Span) -> Self {
        Self {
            name,
            matchers,
            offset_ms: 0,
            offset_expr: None,
            at: None,
            anchored: false,
            smoothed: false,
            span,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    /// `</`: trims a histogram's observations above the right-hand side.
    TrimUpper,
    /// `>/`: trims a histogram's observations below the right-hand side.
    TrimLower,
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
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::TrimUpper => "</",
            BinOp::TrimLower => ">/",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// Binding strength: higher binds tighter. `^` is right-associative.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul
            | BinOp::Div
            | BinOp::Mod
            | BinOp::Atan2
            | BinOp::TrimUpper
            | BinOp::TrimLower => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// `on(...)` (true) or `ignoring(...)` (false).
    pub on: bool,
    pub labels: Vec<String>,
    /// Extra labels of `group_left(...)` / `group_right(...)`.
    pub include: Vec<String>,
    /// `fill_left(v)` / `fill(v)`: value for a missing left-hand sample.
    pub fill_left: Option<f64>,
    /// `fill_right(v)` / `fill(v)`: value for a missing right-hand sample.
    pub fill_right: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggOp {
    pub fn from_name(name: &str) -> Option<AggOp> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "count" => AggOp::Count,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "count_values" => AggOp::CountValues,
            "quantile" => AggOp::Quantile,
            "limitk" => AggOp::Limitk,
            "limit_ratio" => AggOp::LimitRatio,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::CountValues => "count_values",
            AggOp::Quantile => "quantile",
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }

    /// The parameter's type, for aggregations that take one.
    pub fn param_type(self) -> Option<ValueType> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::Limitk | AggOp::LimitRatio => {
                Some(ValueType::Scalar)
            }
            AggOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number {
        value: f64,
        span: Span,
    },
    String {
        value: String,
        span: Span,
    },
    Vector(VectorSelector),
    Matrix {
        selector: VectorSelector,
        range_ms: i64,
        /// Set when the range uses `step()`/`range()`.
        range_expr: Option<DurExpr>,
        span: Span,
    },
    Subquery {
        expr: Box<Expr>,
        range_ms: i64,
        /// `None` for `[5m:]` (the default evaluation interval).
        step_ms: Option<i64>,
        offset_ms: i64,
        at: Option<AtModifier>,
        /// Range, step and offset expressions that use `step()`/`range()`.
        dur_exprs: Option<Box<[Option<DurExpr>; 3]>>,
        span: Span,
    },
    Paren {
        expr: Box<Expr>,
        span: Span,
    },
    Unary {
        negate: bool,
        expr: Box<Expr>,
        span: Span,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: Option<VectorMatching>,
        return_bool: bool,
        span: Span,
    },
    Aggregate {
        op: AggOp,
        expr: Box<Expr>,
        param: Option<Box<Expr>>,
        grouping: Vec<String>,
        without: bool,
        span: Span,
    },
    Call {
        func: &'static crate::parser::Function,
        args: Vec<Expr>,
        span: Span,
    },
}

impl Expr {
    /// The matchers of every vector and range selector in the expression, in the order they
    /// appear (Prometheus's `parser.ExtractSelectors`).
    pub fn selector_matchers(&self) -> Vec<Vec<argus_model::Matcher>> {
        fn walk(e: &Expr, out: &mut Vec<Vec<argus_model::Matcher>>) {
            match e {
                Expr::Number { .. } | Expr::String { .. } => {}
                Expr::Vector(sel) | Expr::Matrix { selector: sel, .. } => {
                    out.push(sel.matchers.clone())
                }
                Expr::Subquery { expr, .. }
                | Expr::Paren { expr, .. }
                | Expr::Unary { expr, .. } => walk(expr, out),
                Expr::Binary { lhs, rhs, .. } => {
                    walk(lhs, out);
                    walk(rhs, out);
                }
                Expr::Aggregate { expr, param, .. } => {
                    if let Some(p) = param {
                        walk(p, out);
                    }
                    walk(expr, out);
                }
                Expr::Call { args, .. } => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Resolves `step()`/`range()` in duration expressions for one query.
    pub fn resolve_durations(&self, step_ms: i64, range_ms: i64) -> Expr {
        let r = |e: &Expr| Box::new(e.resolve_durations(step_ms, range_ms));
        let sel = |v: &VectorSelector| {
            let mut v = v.clone();
            if let Some(e) = &v.offset_expr {
                v.offset_ms = e.millis(step_ms, range_ms);
            }
            v
        };
        match self {
            Expr::Vector(v) => Expr::Vector(sel(v)),
            Expr::Matrix {
                selector,
                range_ms: rm,
                range_expr,
                span,
            } => Expr::Matrix {
                selector: sel(selector),
                range_ms: range_expr
                    .as_ref()
                    .map_or(*rm, |e| e.millis(step_ms, range_ms)),
                range_expr: range_expr.clone(),
                span: *span,
            },
            Expr::Subquery {
                expr,
                range_ms: rm,
                step_ms: sm,
                offset_ms,
                at,
                dur_exprs,
                span,
            } => {
                let (mut rm, mut sm, mut om) = (*rm, *sm, *offset_ms);
                if let Some(d) = dur_exprs {
                    if let Some(e) = &d[0] {
                        rm = e.millis(step_ms, range_ms);
                    }
                    if let Some(e) = &d[1] {
                        sm = Some(e.millis(step_ms, range_ms));
                    }
                    if let Some(e) = &d[2] {
                        om = e.millis(step_ms, range_ms);
                    }
                }
                Expr::Subquery {
                    expr: r(expr),
                    range_ms: rm,
                    step_ms: sm,
                    offset_ms: om,
                    at: *at,
                    dur_exprs: dur_exprs.clone(),
                    span: *span,
                }
            }
            Expr::Paren { expr, span } => Expr::Paren {
                expr: r(expr),
                span: *span,
            },
            Expr::Unary { negate, expr, span } => Expr::Unary {
                negate: *negate,
                expr: r(expr),
                span: *span,
            },
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
                span,
            } => Expr::Binary {
                op: *op,
                lhs: r(lhs),
                rhs: r(rhs),
                matching: matching.clone(),
                return_bool: *return_bool,
                span: *span,
            },
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                span,
            } => Expr::Aggregate {
                op: *op,
                expr: r(expr),
                param: param.as_ref().map(|p| r(p)),
                grouping: grouping.clone(),
                without: *without,
                span: *span,
            },
            Expr::Call { func, args, span } => Expr::Call {
                func,
                args: args
                    .iter()
                    .map(|a| a.resolve_durations(step_ms, range_ms))
                    .collect(),
                span: *span,
            },
            Expr::Number { .. } | Expr::String { .. } => self.clone(),
        }
    }

    /// Prometheus's check as it prepares a query (`durationVisitor`), in its order (a node's
    /// own expressions before its children's; a subquery's offset, step, then range): a range
    /// or a subquery step given as an expression (`[5m-step()]`, `[-2^2]`) must come out above
    /// zero, as `start:end: duration must be greater than 0` (byte offsets of the expression);
    /// no duration expression may divide by zero or come out beyond 2^63 seconds.
    pub fn check_durations(&self, step_ms: i64, range_ms: i64) -> Result<(), String> {
        let (step, range) = (step_ms as f64 / 1000.0, range_ms as f64 / 1000.0);
        let check = |d: Option<&DurExpr>, positive: bool| -> Result<(), String> {
            let Some(d) = d else { return Ok(()) };
            let secs = d.checked(step, range)?;
            let DurExpr::Spanned(span, _) = d else {
                return Ok(());
            };
            let problem = if secs <= 0.0 && positive {
                "duration must be greater than 0"
            } else if !(i64::MIN as f64..=i64::MAX as f64).contains(&secs) && !secs.is_nan() {
                "duration is out of range"
            } else {
                return Ok(());
            };
            Err(format!("{}:{}: {problem}", span.start, span.end))
        };
        match self {
            Expr::Vector(v) => check(v.offset_expr.as_ref(), false)?,
            Expr::Matrix {
                range_expr,
                selector,
                ..
            } => {
                check(range_expr.as_ref(), true)?;
                check(selector.offset_expr.as_ref(), false)?;
            }
            Expr::Subquery {
                dur_exprs: Some(d), ..
            } => {
                check(d[2].as_ref(), false)?;
                check(d[1].as_ref(), true)?;
                check(d[0].as_ref(), true)?;
            }
            _ => {}
        }
        self.children()
            .into_iter()
            .try_for_each(|c| c.check_durations(step_ms, range_ms))
    }

    /// The direct sub-expressions (a selector has none).
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Subquery { expr, .. } | Expr::Paren { expr, .. } | Expr::Unary { expr, .. } => {
                vec![expr]
            }
            Expr::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            Expr::Aggregate { expr, param, .. } => {
                std::iter::once(&**expr).chain(param.as_deref()).collect()
            }
            Expr::Call { args, .. } => args.iter().collect(),
            Expr::Number { .. } | Expr::String { .. } | Expr::Vector(_) | Expr::Matrix { .. } => {
                Vec::new()
            }
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Expr::Number { span, .. }
            | Expr::String { span, .. }
            | Expr::Matrix { span, .. }
            | Expr::Subquery { span, .. }
            | Expr::Paren { span, .. }
            | Expr::Unary { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Aggregate { span, .. }
            | Expr::Call { span, .. } => *span,
            Expr::Vector(v) => v.span,
        }
    }

    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number { .. } => ValueType::Scalar,
            Expr::String { .. } => ValueType::String,
            Expr::Vector(_) | Expr::Aggregate { .. } => ValueType::Vector,
            Expr::Matrix { .. } | Expr::Subquery { .. } => ValueType::Matrix,
            Expr::Paren { expr, .. } | Expr::Unary { expr, .. } => expr.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Call { func, .. } => func.returns,
        }
    }
}
