//! Recursive-descent / precedence-climbing parser with type checks, producing [`Expr`].

use argus_model::{MatchOp, Matcher};

use crate::ast::*;
use crate::lexer::{Tok, Token, lex};

/// A parse or type error at a byte position; prints as Prometheus does:
/// `1:9: parse error: unexpected end of input`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: parse error: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub pos: usize,
    pub message: String,
}

/// A PromQL function's signature.
#[derive(Debug, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub args: &'static [ValueType],
    /// How many trailing arguments may be left out (`-1`: the last one repeats freely).
    pub optional: i32,
    pub returns: ValueType,
    /// Behind `--enable-feature=promql-experimental-functions` in Prometheus.
    pub experimental: bool,
}

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};

macro_rules! f {
    ($name:literal, [$($a:expr),*], $opt:expr, $ret:expr) => {
        Function { name: $name, args: &[$($a),*], optional: $opt, returns: $ret, experimental: false }
    };
    ($name:literal, [$($a:expr),*], $opt:expr, $ret:expr, experimental) => {
        Function { name: $name, args: &[$($a),*], optional: $opt, returns: $ret, experimental: true }
    };
}

/// Prometheus 3.x functions.
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
    f!(
        "double_exponential_smoothing",
        [M, S, S],
        0,
        V,
        experimental
    ),
    f!("exp", [V], 0, V),
    f!("first_over_time", [M], 0, V, experimental),
    f!("floor", [V], 0, V),
    f!("histogram_avg", [V], 0, V),
    f!("histogram_count", [V], 0, V),
    f!("histogram_fraction", [S, S, V], 0, V),
    f!("histogram_quantile", [S, V], 0, V),
    f!("histogram_quantiles", [V, Str, S], -1, V, experimental),
    f!("histogram_stddev", [V], 0, V),
    f!("histogram_stdvar", [V], 0, V),
    f!("histogram_sum", [V], 0, V),
    f!("hour", [V], 1, V),
    f!("idelta", [M], 0, V),
    f!("increase", [M], 0, V),
    f!("info", [V, V], 1, V, experimental),
    f!("irate", [M], 0, V),
    f!("label_join", [V, Str, Str, Str], -1, V),
    f!("label_replace", [V, Str, Str, Str, Str], 0, V),
    f!("last_over_time", [M], 0, V),
    f!("ln", [V], 0, V),
    f!("log10", [V], 0, V),
    f!("log2", [V], 0, V),
    f!("mad_over_time", [M], 0, V, experimental),
    f!("max_over_time", [M], 0, V),
    f!("min_over_time", [M], 0, V),
    f!("max_of", [S, S], 0, S, experimental),
    f!("min_of", [S, S], 0, S, experimental),
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
    f!("sort_by_label", [V, Str], -1, V, experimental),
    f!("sort_by_label_desc", [V, Str], -1, V, experimental),
    f!("sort_desc", [V], 0, V),
    f!("sqrt", [V], 0, V),
    f!("start", [], 0, S, experimental),
    f!("end", [], 0, S, experimental),
    f!("step", [], 0, S, experimental),
    f!("range", [], 0, S, experimental),
    f!("start_timestamp", [V], 0, V, experimental),
    f!("stddev_over_time", [M], 0, V),
    f!("stdvar_over_time", [M], 0, V),
    f!("sum_over_time", [M], 0, V),
    f!("tan", [V], 0, V),
    f!("tanh", [V], 0, V),
    f!("time", [], 0, S),
    f!("timestamp", [V], 0, V),
    f!("ts_of_first_over_time", [M], 0, V, experimental),
    f!("ts_of_last_over_time", [M], 0, V, experimental),
    f!("ts_of_max_over_time", [M], 0, V, experimental),
    f!("ts_of_min_over_time", [M], 0, V, experimental),
    f!("vector", [S], 0, V),
    f!("year", [V], 1, V),
];

pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Experimental PromQL that Prometheus only accepts behind `--enable-feature` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `promql-experimental-functions`: experimental functions, `limitk`, `limit_ratio`.
    pub experimental_functions: bool,
    /// `promql-duration-expr`: arithmetic in ranges, steps and offsets.
    pub duration_expr: bool,
    /// `promql-extended-range-selectors`: the `anchored` and `smoothed` modifiers.
    pub extended_range_selectors: bool,
    /// `promql-binop-fill-modifiers`: `fill`, `fill_left`, `fill_right`.
    pub binop_fill_modifiers: bool,
    /// `promql-delayed-name-removal`: not a syntax feature; the engine reads it
    /// ([`crate::EngineOptions::delayed_name_removal`]).
    pub delayed_name_removal: bool,
}

impl Features {
    /// Everything on (the test scripts, `argus tool`).
    pub const ALL: Features = Features {
        experimental_functions: true,
        duration_expr: true,
        extended_range_selectors: true,
        binop_fill_modifiers: true,
        delayed_name_removal: true,
    };
    /// Prometheus's defaults: everything off.
    pub const NONE: Features = Features {
        experimental_functions: false,
        duration_expr: false,
        extended_range_selectors: false,
        binop_fill_modifiers: false,
        delayed_name_removal: false,
    };

    /// Turns on the feature named by an `--enable-feature` value; false for names that are
    /// not PromQL features.
    pub fn enable(&mut self, name: &str) -> bool {
        let flag = match name {
            "promql-experimental-functions" => &mut self.experimental_functions,
            "promql-duration-expr" => &mut self.duration_expr,
            "promql-extended-range-selectors" => &mut self.extended_range_selectors,
            "promql-binop-fill-modifiers" => &mut self.binop_fill_modifiers,
            "promql-delayed-name-removal" => &mut self.delayed_name_removal,
            _ => return false,
        };
        *flag = true;
        true
    }
}

/// Parses a PromQL expression accepting only the experimental syntax and functions that
/// `features` enables, with Prometheus's messages for the rest.
pub fn parse_with(input: &str, features: Features) -> Result<Expr, ParseError> {
    parse_inner(input, features, false)
}

/// A series selector of the HTTP API's `match[]` (Prometheus's `ParseMetricSelector`): its
/// matchers, which may all match the empty string (the API checks that itself). As in
/// Prometheus's grammar, the selector is a metric name (any word, keywords too), matchers in
/// braces, or both, and whatever follows it is `unexpected …` there.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    let tokens = lex(input);
    let at = |k: usize| &tokens[k.min(tokens.len() - 1)];
    let unexpected = |t: &Token| match &t.tok {
        Tok::Error(message) => error_at(input, t.start, message.clone()),
        _ => Parser::new(input, vec![t.clone()], true).unexpected(""),
    };
    let name = match &at(0).tok {
        Tok::Ident(w) => Some(w.clone()),
        _ => None,
    };
    let brace = usize::from(name.is_some());
    if at(brace).tok != Tok::LBrace {
        let Some(name) = name else {
            return Err(unexpected(at(0)));
        };
        if at(1).tok != Tok::Eof {
            return Err(unexpected(at(1)));
        }
        return Ok(vec![
            Matcher::new(MatchOp::Equal, "__name__", name).expect("not a regex"),
        ]);
    }
    // Braces hold no braces: the selector ends at the first `}`. Without one, the whole
    // input is parsed for its error (unterminated braces or string).
    let Some(close) = tokens.iter().position(|t| t.tok == Tok::RBrace) else {
        parse_inner(input, Features::ALL, true)?;
        return Err(unexpected(at(tokens.len() - 1)));
    };
    if at(close + 1).tok != Tok::Eof {
        return Err(unexpected(at(close + 1)));
    }
    // A keyword as the name (`sum{…}`) is a name here; the expression parser reads the braces
    // alone, with the name blanked out so that positions stay where they are.
    let keyword = name.is_some() && {
        let shown = at(0).tok.to_string();
        !shown.starts_with("identifier") && !shown.starts_with("metric identifier")
    };
    let text = if keyword {
        format!("{}{}", " ".repeat(at(0).end), &input[at(0).end..])
    } else {
        input.to_string()
    };
    match parse_inner(&text, Features::ALL, true)? {
        Expr::Vector(v) => {
            let mut matchers = v.matchers;
            if keyword && let Some(name) = name {
                matchers.push(Matcher::new(MatchOp::Equal, "__name__", name).expect("not a regex"));
            }
            Ok(matchers)
        }
        _ => unreachable!("a name and braces parse as a selector"),
    }
}

fn parse_inner(input: &str, features: Features, empty_ok: bool) -> Result<Expr, ParseError> {
    let tokens = lex(input);
    if tokens[0].tok == Tok::Eof {
        return Err(error_at(input, 0, "no expression found in input".into()));
    }
    // Where the lexer stopped with an error, if it did (always the last token).
    let lex_error = match tokens.last() {
        Some(Token {
            tok: Tok::Error(m),
            start,
            ..
        }) => Some((tokens.len() - 1, *start, m.clone())),
        _ => None,
    };
    let mut p = Parser::new(input, tokens, empty_ok);
    let parsed = p.expr(0).and_then(|e| {
        if p.peek() == &Tok::Eof {
            Ok(e)
        } else {
            Err(p.unexpected(""))
        }
    });
    let expr = match parsed {
        Ok(e) => e,
        // Prometheus lexes as its parser asks for items, and its parser reads one item past
        // a syntax error before reporting it: an error the parser meets at the lexer's error
        // or just before it is reported as the lexer's.
        Err(e) => match lex_error {
            Some((k, pos, message)) if p.pos + 1 >= k => return Err(error_at(input, pos, message)),
            _ => return Err(e),
        },
    };
    check(input, &p.op_pos, &expr)?;
    if !features.duration_expr
        && let Some(at) = p.duration_expr_at
    {
        return Err(error_at(
            input,
            at,
            "experimental duration expression is not enabled".into(),
        ));
    }
    if let Some((pos, message)) = disabled_feature(&expr, features) {
        return Err(error_at(input, pos, message));
    }
    Ok(expr)
}

/// The first use of a feature `features` leaves off, with Prometheus's message.
fn disabled_feature(expr: &Expr, features: Features) -> Option<(usize, String)> {
    let here = match expr {
        Expr::Call { func, span, .. } if func.experimental && !features.experimental_functions => {
            Some((
                span.start,
                format!("function {:?} is not enabled", func.name),
            ))
        }
        Expr::Aggregate { op, span, .. }
            if matches!(op, AggOp::Limitk | AggOp::LimitRatio)
                && !features.experimental_functions =>
        {
            Some((
                span.start,
                format!(
                    "{}() is experimental and must be enabled with --enable-feature=promql-experimental-functions",
                    op.as_str()
                ),
            ))
        }
        Expr::Vector(sel) | Expr::Matrix { selector: sel, .. }
            if (sel.anchored || sel.smoothed) && !features.extended_range_selectors =>
        {
            let which = if sel.anchored { "anchored" } else { "smoothed" };
            Some((
                sel.span.start,
                format!("{which} modifier is experimental and not enabled"),
            ))
        }
        Expr::Binary {
            matching: Some(m),
            span,
            ..
        } if (m.fill_left.is_some() || m.fill_right.is_some())
            && !features.binop_fill_modifiers =>
        {
            Some((
                span.start,
                "binop fill modifiers are experimental and not enabled".into(),
            ))
        }
        _ => None,
    };
    here.or_else(|| {
        expr.children()
            .into_iter()
            .find_map(|c| disabled_feature(c, features))
    })
}

/// Parses and type-checks a PromQL expression, with every experimental feature enabled.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_with(input, Features::ALL)
}

fn error_at(input: &str, pos: usize, message: String) -> ParseError {
    let before = &input[..pos.min(input.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ParseError {
        line,
        col,
        pos,
        message,
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Set while parsing `info()`'s second argument, whose selector may match everything.
    empty_selector_ok: bool,
    /// Where the first duration expression (`[5m+1m]`, `offset step()`) starts, for the
    /// `promql-duration-expr` feature check.
    duration_expr_at: Option<usize>,
    /// Each binary expression's operator offset, by the expression's span, for the type
    /// checks Prometheus reports at the operator.
    op_pos: std::collections::HashMap<(usize, usize), usize>,
    /// Where the duration expression parsed last lies, as Prometheus places it: operands'
    /// places merged, parentheses left out.
    dur_span: Span,
    /// How many [`Parser::expr`] and [`Parser::dur_expr`] calls are open.
    nesting: usize,
    /// An upper bound on the depth of the expressions finished since the innermost open
    /// [`Parser::expr`] began (see [`MAX_DEPTH`]).
    inner_depth: usize,
    /// The depth of the duration expression parsed last.
    dur_depth: usize,
}

/// How deep an expression may nest (operands of a chain of binary operators, arguments,
/// parentheses, subqueries; duration expressions count on their own). Evaluating, printing
/// and dropping a tree recurse along its depth, so a deeper one is refused while it is
/// parsed, before it is built. Prometheus has no such limit (a Go stack grows to 1 GB).
pub const MAX_DEPTH: usize = 3_000;

/// The stack a thread needs to parse, check, evaluate, print and drop any expression the
/// parser takes ([`MAX_DEPTH`] levels of the costliest kind need about 16 MiB in a release
/// build and 48 MiB in a debug build). Threads of the `argus` binary that handle queries get
/// this much; it is address space, used only as deep as a query goes.
pub const STACK_SIZE: usize = 64 << 20;

fn binop(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::Add => BinOp::Add,
        Tok::Sub => BinOp::Sub,
        Tok::Mul => BinOp::Mul,
        Tok::Div => BinOp::Div,
        Tok::Mod => BinOp::Mod,
        Tok::Pow => BinOp::Pow,
        Tok::Eql => BinOp::Eql,
        Tok::Neq => BinOp::Neq,
        Tok::Gtr => BinOp::Gtr,
        Tok::Lss => BinOp::Lss,
        Tok::Gte => BinOp::Gte,
        Tok::Lte => BinOp::Lte,
        Tok::TrimUpper => BinOp::TrimUpper,
        Tok::TrimLower => BinOp::TrimLower,
        Tok::Ident(w) => match w.to_ascii_lowercase().as_str() {
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            "atan2" => BinOp::Atan2,
            _ => return None,
        },
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, tokens: Vec<Token>, empty_selector_ok: bool) -> Self {
        Parser {
            input,
            tokens,
            pos: 0,
            empty_selector_ok,
            duration_expr_at: None,
            dur_span: Span { start: 0, end: 0 },
            op_pos: Default::default(),
            nesting: 0,
            inner_depth: 0,
            dur_depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn token(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.token().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        error_at(self.input, pos, message.into())
    }

    fn unexpected(&self, context: &str) -> ParseError {
        let t = self.token();
        let what = match &t.tok {
            // Inside braces Prometheus lexes every word as a plain identifier, keywords too.
            Tok::Ident(w) if context.starts_with("label matching") => format!("identifier {w:?}"),
            _ => self.describe(t),
        };
        let what = if context.is_empty() {
            format!("unexpected {what}")
        } else {
            format!("unexpected {what} in {context}")
        };
        self.err(t.start, what)
    }

    /// How Prometheus names an item in "unexpected …": numbers, durations and strings with
    /// their source text (`number "2"`, `string "\"b\""`), the rest as [`Tok`] prints them.
    fn describe(&self, t: &Token) -> String {
        let kind = match t.tok {
            Tok::Number(_) => "number",
            Tok::Duration(_) => "duration",
            Tok::Str(_) => "string",
            _ => return t.tok.to_string(),
        };
        let src = self.input.get(t.start..t.end).unwrap_or("");
        if src.chars().count() > 10 {
            let head: String = src.chars().take(10).collect();
            format!("{kind} {}...", argus_model::gofmt::quote(&head))
        } else {
            format!("{kind} {}", argus_model::gofmt::quote(src))
        }
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<Token, ParseError> {
        if *self.peek() == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected(context))
        }
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    /// Precedence climbing over binary operators.
    fn expr(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        self.enter()?;
        let outer = std::mem::take(&mut self.inner_depth);
        let mut lhs = self.unary()?;
        // The operand's node above the deepest expression finished inside it.
        let mut depth = self.inner_depth + 1;
        while let Some(op) = binop(self.peek()) {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_tok = self.next();
            let (return_bool, matching) = self.bin_modifiers(op, op_tok.start)?;
            // `^` is right-associative; the rest left-associative.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            self.inner_depth = 0;
            let rhs = self.expr(next_min)?;
            depth = 1 + depth.max(self.inner_depth);
            self.check_depth(depth, op_tok.start)?;
            let span = lhs.span().to(rhs.span());
            self.op_pos.insert((span.start, span.end), op_tok.start);
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
                return_bool,
                span,
            };
        }
        self.check_depth(depth, lhs.span().start)?;
        self.inner_depth = outer.max(depth);
        self.nesting -= 1;
        Ok(lhs)
    }

    /// Counts one more open [`Parser::expr`] or [`Parser::dur_expr`], refusing what nests
    /// deeper than [`MAX_DEPTH`] before the parser's own recursion goes there.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.too_deep(self.token().start));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize, at: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep(at));
        }
        Ok(())
    }

    fn too_deep(&self, at: usize) -> ParseError {
        self.err(
            at,
            format!(
                "expression nests deeper than {MAX_DEPTH} levels, which argus does not evaluate"
            ),
        )
    }

    fn bin_modifiers(
        &mut self,
        op: BinOp,
        op_start: usize,
    ) -> Result<(bool, Option<VectorMatching>), ParseError> {
        let mut return_bool = false;
        if self.is_keyword("bool") {
            self.next();
            if !op.is_comparison() {
                return Err(self.err(
                    op_start,
                    "bool modifier can only be used on comparison operators",
                ));
            }
            return_bool = true;
        }
        let mut matching = None;
        if self.is_keyword("on") || self.is_keyword("ignoring") {
            let on = self.is_keyword("on");
            self.next();
            let labels = self.label_list()?;
            let mut m = VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on,
                labels,
                include: Vec::new(),
                fill_left: None,
                fill_right: None,
            };
            if self.is_keyword("group_left") || self.is_keyword("group_right") {
                let left = self.is_keyword("group_left");
                self.next();
                // A set operation with grouping is refused by the type checks.
                m.card = if left {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                if *self.peek() == Tok::LParen {
                    m.include = self.label_list()?;
                }
            }
            matching = Some(m);
        } else if op.is_set() {
            matching = Some(VectorMatching {
                card: Cardinality::ManyToMany,
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
                fill_left: None,
                fill_right: None,
            });
        }
        // `fill(v)`, `fill_left(v)`, `fill_right(v)`: keywords only when followed by "(".
        loop {
            let which = match self.peek() {
                Tok::Ident(w)
                    if self
                        .tokens
                        .get(self.pos + 1)
                        .is_some_and(|t| t.tok == Tok::LParen) =>
                {
                    match w.to_ascii_lowercase().as_str() {
                        "fill" => 0,
                        "fill_left" => 1,
                        "fill_right" => 2,
                        _ => break,
                    }
                }
                _ => break,
            };
            let t = self.next();
            if op.is_set() {
                return Err(self.err(t.start, "fill modifiers are not allowed for set operations"));
            }
            self.next();
            let negative = self.sign();
            let n = self.next();
            let Tok::Number(v) = n.tok else {
                return Err(self.err(
                    n.start,
                    format!("unexpected {} in fill modifier, expected number", n.tok),
                ));
            };
            let v = if negative { -v } else { v };
            self.expect(Tok::RParen, "fill modifier")?;
            let m = matching.get_or_insert_with(|| VectorMatching {
                card: Cardinality::OneToOne,
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
                fill_left: None,
                fill_right: None,
            });
            if which != 2 {
                m.fill_left = Some(v);
            }
            if which != 1 {
                m.fill_right = Some(v);
            }
        }
        Ok((return_bool, matching))
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen, "grouping opts, expected \"(\"")?;
        let mut out = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::RParen => {
                    self.next();
                    return Ok(out);
                }
                Tok::Ident(name) => {
                    self.next();
                    out.push(name);
                }
                Tok::Str(name) => {
                    self.next();
                    out.push(name);
                }
                _ => return Err(self.unexpected("grouping opts, expected label")),
            }
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected("grouping opts, expected \",\" or \")\"")),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Add | Tok::Sub => {
                let t = self.next();
                let negate = t.tok == Tok::Sub;
                // Unary operators bind tighter than everything but `^`.
                let operand = self.expr(BinOp::Pow.precedence())?;
                let span = Span {
                    start: t.start,
                    end: operand.span().end,
                };
                // Fold signs on number literals, as Prometheus does.
                if let Expr::Number { value, .. } = operand {
                    return Ok(Expr::Number {
                        value: if negate { -value } else { value },
                        span,
                    });
                }
                Ok(Expr::Unary {
                    negate,
                    expr: Box::new(operand),
                    span,
                })
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.token().clone();
        match t.tok.clone() {
            Tok::Number(value) => {
                self.next();
                Ok(Expr::Number {
                    value,
                    span: Span {
                        start: t.start,
                        end: t.end,
                    },
                })
            }
            Tok::Duration(ms) => {
                // A bare duration is a number of seconds (duration expressions).
                self.next();
                Ok(Expr::Number {
                    value: ms as f64 / 1000.0,
                    span: Span {
                        start: t.start,
                        end: t.end,
                    },
                })
            }
            Tok::Str(value) => {
                self.next();
                Ok(Expr::String {
                    value,
                    span: Span {
                        start: t.start,
                        end: t.end,
                    },
                })
            }
            Tok::LParen => {
                self.next();
                let inner = self.expr(0)?;
                let close = self.expect(Tok::RParen, "paren expression")?;
                Ok(Expr::Paren {
                    expr: Box::new(inner),
                    span: Span {
                        start: t.start,
                        end: close.end,
                    },
                })
            }
            Tok::LBrace => {
                let (matchers, end) = self.matchers(None)?;
                Ok(Expr::Vector(VectorSelector::new(
                    None,
                    matchers,
                    Span {
                        start: t.start,
                        end,
                    },
                )))
            }
            Tok::Ident(word) if is_reserved(&word) => Err(self.unexpected("")),
            Tok::Ident(word) => {
                self.next();
                if let Some(op) = AggOp::from_name(&word)
                    && (matches!(self.peek(), Tok::LParen)
                        || self.is_keyword("by")
                        || self.is_keyword("without"))
                {
                    return self.aggregate(op, t.start);
                }
                if *self.peek() == Tok::LParen {
                    // Keywords are not function names: `atan2` is an operator there, and the
                    // others (`and`, `by`, `offset`, …) are metric names followed by a stray
                    // `(`, as Prometheus's grammar reads them.
                    let shown = t.tok.to_string();
                    if shown == "<op:atan2>" {
                        return Err(self.err(t.start, format!("unexpected {shown}")));
                    }
                    if shown.starts_with('<') {
                        return Err(self.unexpected(""));
                    }
                    return self.call(&word, t.start);
                }
                if word.eq_ignore_ascii_case("atan2") {
                    return Err(self.err(t.start, format!("unexpected {}", Tok::Ident(word))));
                }
                let mut matchers = vec![Matcher::equal(
                    argus_model::labels::METRIC_NAME,
                    word.clone(),
                )];
                let mut end = t.end;
                if *self.peek() == Tok::LBrace {
                    let (more, e) = self.matchers(Some(&word))?;
                    matchers.extend(more);
                    end = e;
                }
                Ok(Expr::Vector(VectorSelector::new(
                    Some(word),
                    matchers,
                    Span {
                        start: t.start,
                        end,
                    },
                )))
            }
            Tok::Eof => Err(self.err(t.start, "unexpected end of input")),
            _ => Err(self.unexpected("")),
        }
    }

    /// `{a="b", ...}`; returns the matchers and the end offset.
    fn matchers(&mut self, metric: Option<&str>) -> Result<(Vec<Matcher>, usize), ParseError> {
        let open = self.expect(Tok::LBrace, "label matching")?;
        let mut out = Vec::new();
        loop {
            if *self.peek() == Tok::RBrace {
                let close = self.next();
                if metric.is_none()
                    && !self.empty_selector_ok
                    && out.iter().all(|m: &Matcher| m.matches_empty())
                {
                    return Err(self.err(
                        open.start,
                        "vector selector must contain at least one non-empty matcher",
                    ));
                }
                return Ok((out, close.end));
            }
            // A matcher that does not compile is reported from its label name on.
            let name_start = self.token().start;
            let (name, quoted) = match self.peek().clone() {
                Tok::Ident(n) => (n, false),
                Tok::Str(n) => (n, true),
                _ => {
                    return Err(self.unexpected("label matching, expected identifier or \"}\""));
                }
            };
            self.next();
            let op = match self.peek() {
                Tok::Assign => Some(MatchOp::Equal),
                Tok::Neq => Some(MatchOp::NotEqual),
                Tok::EqlRegex => Some(MatchOp::RegexMatch),
                Tok::NeqRegex => Some(MatchOp::RegexNoMatch),
                _ => None,
            };
            match op {
                Some(op) => {
                    self.next();
                    if !matches!(self.peek(), Tok::Str(_)) {
                        return Err(self.unexpected("label matching, expected string"));
                    }
                    let value_tok = self.next();
                    let Tok::Str(value) = value_tok.tok else {
                        unreachable!("checked to be a string")
                    };
                    let m = Matcher::new(op, name, value)
                        .map_err(|e| self.err(name_start, e.to_string()))?;
                    out.push(m);
                }
                // A bare quoted string is the metric name (UTF-8 names); a bare label name
                // wants an operator.
                None if quoted => out.push(Matcher::equal(argus_model::labels::METRIC_NAME, name)),
                None => {
                    return Err(self.unexpected("label matching, expected label matching operator"));
                }
            }
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RBrace => {}
                _ => return Err(self.unexpected("label matching, expected \",\" or \"}\"")),
            }
        }
    }

    fn aggregate(&mut self, op: AggOp, start: usize) -> Result<Expr, ParseError> {
        let mut grouping = Vec::new();
        let mut without = false;
        let mut have_grouping = false;
        if self.is_keyword("by") || self.is_keyword("without") {
            without = self.is_keyword("without");
            self.next();
            grouping = self.label_list()?;
            have_grouping = true;
        }
        let (mut args, close) = self.arg_list("aggregation")?;
        let mut end = close.end;
        if !have_grouping && (self.is_keyword("by") || self.is_keyword("without")) {
            without = self.is_keyword("without");
            self.next();
            grouping = self.label_list()?;
            end = self.tokens[self.pos.saturating_sub(1)].end;
        }
        let wanted = if op.param_type().is_some() { 2 } else { 1 };
        if args.is_empty() {
            return Err(self.err(start, "no arguments for aggregate expression provided"));
        }
        if args.len() != wanted {
            return Err(self.err(start, format!("wrong number of arguments for aggregate expression provided, expected {wanted}, got {}", args.len())));
        }
        let expr = args
            .pop()
            .map(Box::new)
            .ok_or_else(|| self.err(start, "missing aggregation argument"))?;
        let param = args.pop().map(Box::new);
        Ok(Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            span: Span { start, end },
        })
    }

    /// `( expr, expr, … )`: the arguments and the closing token.
    fn arg_list(&mut self, context: &str) -> Result<(Vec<Expr>, Token), ParseError> {
        self.args(context, false)
    }

    /// [`Self::arg_list`]; with `info_args`, the second argument's selector may consist of
    /// matchers that all match the empty string (as `info()` allows).
    fn args(&mut self, context: &str, info_args: bool) -> Result<(Vec<Expr>, Token), ParseError> {
        self.expect(Tok::LParen, context)?;
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                self.empty_selector_ok = info_args && args.len() == 1;
                let arg = self.expr(0);
                self.empty_selector_ok = false;
                args.push(arg?);
                if *self.peek() != Tok::Comma {
                    break;
                }
                let comma = self.next();
                if *self.peek() == Tok::RParen {
                    return Err(self.err(
                        comma.start,
                        "trailing commas not allowed in function call args",
                    ));
                }
            }
        }
        let close = self.expect(Tok::RParen, context)?;
        Ok((args, close))
    }

    /// An optional `+`/`-` sign; true for `-`.
    fn sign(&mut self) -> bool {
        match self.peek() {
            Tok::Sub => {
                self.next();
                true
            }
            Tok::Add => {
                self.next();
                false
            }
            _ => false,
        }
    }

    fn call(&mut self, name: &str, start: usize) -> Result<Expr, ParseError> {
        let func = function(name)
            .ok_or_else(|| self.err(start, format!("unknown function with name {name:?}")))?;
        let (args, close) = self.args("function call", name == "info")?;
        Ok(Expr::Call {
            func,
            args,
            span: Span {
                start,
                end: close.end,
            },
        })
    }

    /// `[range]`, `[range:step]`, `offset`, `@` after an expression.
    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ParseError> {
        loop {
            if *self.peek() == Tok::LBracket {
                let open = self.next();
                if !self.starts_duration() {
                    return Err(self.not_a_duration(
                        "subquery or range selector, expected number, duration, step(), or range()",
                    ));
                }
                let d = self.positive_duration()?;
                self.note_duration_expr(&d, open.end);
                let (range, range_expr) = self.folded_spanned(d);
                if *self.peek() == Tok::Colon {
                    self.next();
                    let (step, step_expr) = if *self.peek() == Tok::RBracket {
                        (None, None)
                    } else {
                        if !self.starts_duration() {
                            return Err(self.not_a_duration("subquery selector, expected number, duration, step(), range(), or \"]\""));
                        }
                        let at = self.tokens[self.pos].start;
                        let d = self.positive_duration()?;
                        self.note_duration_expr(&d, at);
                        let (ms, e) = self.folded_spanned(d);
                        (Some(ms), e)
                    };
                    let close = self.expect(Tok::RBracket, "subquery selector, expected \"]\"")?;
                    let span = expr.span().to(Span {
                        start: open.start,
                        end: close.end,
                    });
                    let dur_exprs = (range_expr.is_some() || step_expr.is_some())
                        .then(|| Box::new([range_expr, step_expr, None]));
                    self.inner_depth += 1;
                    self.check_depth(self.inner_depth, open.start)?;
                    expr = Expr::Subquery {
                        expr: Box::new(expr),
                        range_ms: range,
                        step_ms: step,
                        offset_ms: 0,
                        at: None,
                        dur_exprs,
                        span,
                    };
                    continue;
                }
                let close =
                    self.expect(Tok::RBracket, "subquery or range, expected \":\" or \"]\"")?;
                match expr {
                    Expr::Vector(selector)
                        if selector.offset_ms == 0
                            && selector.offset_expr.is_none()
                            && selector.at.is_none() =>
                    {
                        let span = selector.span.to(Span {
                            start: open.start,
                            end: close.end,
                        });
                        expr = Expr::Matrix {
                            selector,
                            range_ms: range,
                            range_expr,
                            span,
                        };
                    }
                    Expr::Vector(selector) => {
                        let which = if selector.offset_ms != 0 || selector.offset_expr.is_some() {
                            "offset"
                        } else {
                            "@"
                        };
                        return Err(self.err(
                            open.start,
                            format!("no {which} modifiers allowed before range"),
                        ));
                    }
                    _ => {
                        return Err(
                            self.err(open.start, "ranges only allowed for vector selectors")
                        );
                    }
                }
                continue;
            }
            if self.is_keyword("anchored") || self.is_keyword("smoothed") {
                let t = self.next();
                let anchored =
                    matches!(&t.tok, Tok::Ident(w) if w.eq_ignore_ascii_case("anchored"));
                expr = self.set_extended(expr, anchored, t.start)?;
                continue;
            }
            if self.is_keyword("offset") {
                let t = self.next();
                // One signed primary: `offset 5m`, `offset -(1m*2)`, `offset step()`; any
                // arithmetic after it applies to the selector's result.
                let negative = self.sign();
                if !self.starts_duration() {
                    return Err(self
                        .not_a_duration("offset, expected number, duration, step(), or range()"));
                }
                let primary = self.dur_primary("offset")?;
                self.note_duration_expr(&primary, t.end);
                let d = if negative {
                    DurExpr::Neg(Box::new(primary))
                } else {
                    primary
                };
                let (ms, e) = Self::folded(d);
                let start = expr.span().start;
                expr = self.set_offset(expr, ms, e, start)?;
                continue;
            }
            if *self.peek() == Tok::At {
                self.next();
                let at = match self.peek().clone() {
                    Tok::Ident(w) if (w == "start" || w == "end") => {
                        self.next();
                        self.expect(Tok::LParen, "@, expected timestamp")?;
                        self.expect(Tok::RParen, "@, expected timestamp")?;
                        if w == "start" {
                            AtModifier::Start
                        } else {
                            AtModifier::End
                        }
                    }
                    Tok::Number(_) | Tok::Add | Tok::Sub | Tok::Duration(_) => {
                        let negative = self.sign();
                        let n = self.next();
                        let secs = match n.tok {
                            Tok::Number(v) => v,
                            Tok::Duration(ms) => ms as f64 / 1000.0,
                            _ => return Err(self.err(n.start, "unexpected token in @ modifier")),
                        };
                        let secs = if negative { -secs } else { secs };
                        if !secs.is_finite() || secs >= i64::MAX as f64 || secs <= i64::MIN as f64 {
                            return Err(self.err(
                                expr.span().start,
                                format!(
                                    "timestamp out of bounds for @ modifier: {}",
                                    argus_model::gofmt::format_f6(secs)
                                ),
                            ));
                        }
                        AtModifier::Timestamp((secs * 1000.0).round() as i64)
                    }
                    _ => return Err(self.unexpected("@, expected timestamp")),
                };
                let start = expr.span().start;
                expr = self.set_at(expr, at, start)?;
                continue;
            }
            return Ok(expr);
        }
    }

    /// Whether the next token can start a duration: a number, a duration, a sign, `(`, or
    /// `step()`/`range()`/`min_of(`/`max_of(` (Prometheus reports the rest in the context).
    fn starts_duration(&self) -> bool {
        match self.peek() {
            Tok::Number(_) | Tok::Duration(_) | Tok::LParen | Tok::Add | Tok::Sub => true,
            Tok::Ident(w) => {
                matches!(
                    w.to_ascii_lowercase().as_str(),
                    "step" | "range" | "min_of" | "max_of"
                ) && self
                    .tokens
                    .get(self.pos + 1)
                    .is_some_and(|t| t.tok == Tok::LParen)
            }
            _ => false,
        }
    }

    /// The error for a token that cannot start a duration; a bare `step` or `range` is
    /// reported at the token after it, where Prometheus's parser finds no `(`.
    fn not_a_duration(&mut self, context: &str) -> ParseError {
        if matches!(self.peek(), Tok::Ident(w) if matches!(w.to_ascii_lowercase().as_str(), "step" | "range"))
        {
            self.next();
        }
        self.unexpected(context)
    }

    /// A range's or a step's duration. A literal (signs included, as Prometheus folds them
    /// into it) must be above zero; an expression is checked when the query is prepared
    /// ([`Expr::check_durations`]), as Prometheus checks it.
    fn positive_duration(&mut self) -> Result<DurExpr, ParseError> {
        let at = self.token().start;
        let d = self.dur_expr(0)?;
        let mut literal = &d;
        while let DurExpr::Neg(inner) = literal {
            literal = inner;
        }
        if matches!(literal, DurExpr::Num(_) | DurExpr::Lit(_)) && d.millis(0, 0) <= 0 {
            return Err(self.err(at, "duration must be greater than 0"));
        }
        Ok(d)
    }

    /// Remembers where the first duration that is an expression rather than a literal is.
    fn note_duration_expr(&mut self, d: &DurExpr, at: usize) {
        if !matches!(d, DurExpr::Num(_) | DurExpr::Lit(_)) && self.duration_expr_at.is_none() {
            self.duration_expr_at = Some(at);
        }
    }

    /// Milliseconds for a constant; the expression itself unless it is a plain literal (kept
    /// to be printed as written, and resolved per query when it uses `step()`/`range()`).
    fn folded(e: DurExpr) -> (i64, Option<DurExpr>) {
        match e {
            DurExpr::Num(_) | DurExpr::Lit(_) => (e.millis(0, 0), None),
            e if e.is_const() => (e.millis(0, 0), Some(e)),
            e => (0, Some(e)),
        }
    }

    /// [`Self::folded`] for a range or a step just parsed: an expression keeps its place in
    /// the query for the check when the query is prepared.
    fn folded_spanned(&self, e: DurExpr) -> (i64, Option<DurExpr>) {
        match Self::folded(e) {
            (ms, Some(e)) => (ms, Some(DurExpr::Spanned(self.dur_span, Box::new(e)))),
            other => other,
        }
    }

    /// Duration arithmetic (numbers are seconds), by precedence climbing.
    fn dur_expr(&mut self, min_prec: u8) -> Result<DurExpr, ParseError> {
        self.enter()?;
        let start = self.token().start;
        let signed = matches!(self.peek(), Tok::Sub | Tok::Add);
        let mut lhs = match self.peek() {
            Tok::Sub => {
                self.next();
                DurExpr::Neg(Box::new(self.dur_expr(BinOp::Pow.precedence())?))
            }
            Tok::Add => {
                self.next();
                self.dur_expr(BinOp::Pow.precedence())?
            }
            _ => self.dur_primary("duration expression")?,
        };
        let mut depth = self.dur_depth + usize::from(matches!(lhs, DurExpr::Neg(_)));
        // A sign's expression starts at the sign.
        let mut span = if signed {
            Span {
                start,
                end: self.dur_span.end,
            }
        } else {
            self.dur_span
        };
        loop {
            let op = match self.peek() {
                Tok::Add => BinOp::Add,
                Tok::Sub => BinOp::Sub,
                Tok::Mul => BinOp::Mul,
                Tok::Div => BinOp::Div,
                Tok::Mod => BinOp::Mod,
                Tok::Pow => BinOp::Pow,
                _ => break,
            };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_tok = self.next();
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.dur_expr(next_min)?;
            // The operation, and the place kept above a division.
            let levels = if matches!(op, BinOp::Div | BinOp::Mod) {
                2
            } else {
                1
            };
            depth = levels + depth.max(self.dur_depth);
            self.check_depth(depth, op_tok.start)?;
            if matches!(rhs, DurExpr::Num(v) | DurExpr::Lit(v) if v == 0.0) {
                match op {
                    BinOp::Div => return Err(self.err(op_tok.start, "division by zero")),
                    BinOp::Mod => return Err(self.err(op_tok.start, "modulo by zero")),
                    _ => {}
                }
            }
            span.end = self.dur_span.end;
            lhs = DurExpr::Bin(op, Box::new(lhs), Box::new(rhs));
            if matches!(op, BinOp::Div | BinOp::Mod) {
                // Its place, for a division by zero found when the query is prepared.
                lhs = DurExpr::Spanned(span, Box::new(lhs));
            }
        }
        self.check_depth(depth, start)?;
        self.dur_span = span;
        self.dur_depth = depth;
        self.nesting -= 1;
        Ok(lhs)
    }

    /// A number, duration, parenthesized expression, `step()`, `range()`, `min_of(…)` or
    /// `max_of(…)`; sets [`Parser::dur_span`] (a parenthesized one's is its content's,
    /// `min_of`'s runs from its first argument to its second, as Prometheus places them).
    fn dur_primary(&mut self, what: &str) -> Result<DurExpr, ParseError> {
        let t = self.next();
        // Go's time.Duration holds at most 2^63 nanoseconds.
        let out_of_range = |v: f64| v.abs() > (1u64 << 63) as f64 / 1e9;
        self.dur_span = Span {
            start: t.start,
            end: t.end,
        };
        self.dur_depth = 1;
        match t.tok {
            Tok::Number(v) if out_of_range(v) => Err(self.err(t.start, "duration out of range")),
            Tok::Number(v) => Ok(DurExpr::Num(v)),
            Tok::Duration(ms) => Ok(DurExpr::Lit(ms as f64 / 1000.0)),
            Tok::LParen => {
                let e = self.dur_expr(0)?;
                self.dur_depth += 1;
                self.check_depth(self.dur_depth, t.start)?;
                self.expect(Tok::RParen, "duration expression")?;
                Ok(DurExpr::Paren(Box::new(e)))
            }
            Tok::Ident(w) if *self.peek() == Tok::LParen => match w.to_ascii_lowercase().as_str() {
                "step" | "range" => {
                    self.next();
                    let close = self.expect(Tok::RParen, "duration expression")?;
                    self.dur_span.end = close.end;
                    Ok(if w.eq_ignore_ascii_case("step") {
                        DurExpr::Step
                    } else {
                        DurExpr::Range
                    })
                }
                "min_of" | "max_of" => {
                    self.next();
                    let a = self.dur_expr(0)?;
                    let (start, a_depth) = (self.dur_span.start, self.dur_depth);
                    self.expect(Tok::Comma, "duration expression")?;
                    let b = self.dur_expr(0)?;
                    self.dur_depth = 1 + a_depth.max(self.dur_depth);
                    self.check_depth(self.dur_depth, t.start)?;
                    self.dur_span.start = start;
                    self.expect(Tok::RParen, "duration expression")?;
                    Ok(if w.eq_ignore_ascii_case("min_of") {
                        DurExpr::MinOf(Box::new(a), Box::new(b))
                    } else {
                        DurExpr::MaxOf(Box::new(a), Box::new(b))
                    })
                }
                _ => Err(self.err(
                    t.start,
                    format!("unexpected {} in {what}, expected duration", Tok::Ident(w)),
                )),
            },
            other => Err(self.err(
                t.start,
                format!("unexpected {other} in {what}, expected duration"),
            )),
        }
    }

    fn set_offset(
        &self,
        expr: Expr,
        offset: i64,
        offset_expr: Option<DurExpr>,
        pos: usize,
    ) -> Result<Expr, ParseError> {
        let twice = || self.err(pos, "offset may not be set multiple times");
        Ok(match expr {
            Expr::Vector(mut v) => {
                if v.offset_ms != 0 || v.offset_expr.is_some() {
                    return Err(twice());
                }
                v.offset_ms = offset;
                v.offset_expr = offset_expr;
                Expr::Vector(v)
            }
            Expr::Matrix { mut selector, range_ms, range_expr, span } => {
                if selector.offset_ms != 0 || selector.offset_expr.is_some() {
                    return Err(twice());
                }
                selector.offset_ms = offset;
                selector.offset_expr = offset_expr;
                Expr::Matrix { selector, range_ms, range_expr, span }
            }
            Expr::Subquery { expr, range_ms, step_ms, offset_ms, at, dur_exprs, span } => {
                if offset_ms != 0 || dur_exprs.as_ref().is_some_and(|d| d[2].is_some()) {
                    return Err(twice());
                }
                let dur_exprs = match (dur_exprs, offset_expr) {
                    (d, None) => d,
                    (Some(mut d), Some(e)) => {
                        d[2] = Some(e);
                        Some(d)
                    }
                    (None, Some(e)) => Some(Box::new([None, None, Some(e)])),
                };
                Expr::Subquery { expr, range_ms, step_ms, offset_ms: offset, at, dur_exprs, span }
            }
            _ => return Err(self.err(pos, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery")),
        })
    }

    /// The extended range selector modifiers `anchored` / `smoothed`.
    fn set_extended(&self, expr: Expr, anchored: bool, pos: usize) -> Result<Expr, ParseError> {
        let name = if anchored { "anchored" } else { "smoothed" };
        let set = |sel: &mut VectorSelector| {
            if anchored {
                sel.anchored = true;
            } else {
                sel.smoothed = true;
            }
            if sel.anchored && sel.smoothed {
                Err(self.err(
                    pos,
                    "anchored and smoothed modifiers cannot be used together",
                ))
            } else {
                Ok(())
            }
        };
        Ok(match expr {
            Expr::Vector(mut v) => {
                set(&mut v)?;
                Expr::Vector(v)
            }
            Expr::Matrix {
                mut selector,
                range_ms,
                range_expr,
                span,
            } => {
                set(&mut selector)?;
                Expr::Matrix {
                    selector,
                    range_ms,
                    range_expr,
                    span,
                }
            }
            Expr::Subquery { .. } => {
                return Err(self.err(
                    pos,
                    format!("{name} modifier is not supported for subqueries"),
                ));
            }
            _ => return Err(self.err(pos, format!("{name} modifier not implemented"))),
        })
    }

    fn set_at(&self, expr: Expr, at: AtModifier, pos: usize) -> Result<Expr, ParseError> {
        Ok(match expr {
            Expr::Vector(mut v) => {
                if v.at.is_some() {
                    return Err(self.err(pos, "@ <timestamp> may not be set multiple times"));
                }
                v.at = Some(at);
                Expr::Vector(v)
            }
            Expr::Matrix { mut selector, range_ms, range_expr, span } => {
                if selector.at.is_some() {
                    return Err(self.err(pos, "@ <timestamp> may not be set multiple times"));
                }
                selector.at = Some(at);
                Expr::Matrix { selector, range_ms, range_expr, span }
            }
            Expr::Subquery { expr, range_ms, step_ms, offset_ms, at: existing, dur_exprs, span } => {
                if existing.is_some() {
                    return Err(self.err(pos, "@ <timestamp> may not be set multiple times"));
                }
                Expr::Subquery { expr, range_ms, step_ms, offset_ms, at: Some(at), dur_exprs, span }
            }
            _ => return Err(self.err(pos, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery")),
        })
    }
}

/// Keywords that are not metric names either (`by`, `offset`, `and`, … are).
fn is_reserved(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "on" | "ignoring" | "group_left" | "group_right" | "bool"
    )
}

/// Type checks, as Prometheus's `checkAST`.
fn check(
    input: &str,
    op_pos: &std::collections::HashMap<(usize, usize), usize>,
    expr: &Expr,
) -> Result<(), ParseError> {
    let err = |span: Span, msg: String| Err(error_at(input, span.start, msg));
    match expr {
        Expr::Number { .. } | Expr::String { .. } => Ok(()),
        Expr::Vector(v) | Expr::Matrix { selector: v, .. } => {
            // The name outside the braces is the first matcher; another one on `__name__`
            // sets it twice.
            if let Some(name) = &v.name
                && let Some(m) = v
                    .matchers
                    .iter()
                    .skip(1)
                    .find(|m| m.name == argus_model::labels::METRIC_NAME)
            {
                return err(
                    v.span,
                    format!(
                        "metric name must not be set twice: {} or {}",
                        argus_model::gofmt::quote(name),
                        argus_model::gofmt::quote(&m.value)
                    ),
                );
            }
            Ok(())
        }
        Expr::Paren { expr, .. } => check(input, op_pos, expr),
        Expr::Unary {
            expr: inner, span, ..
        } => {
            check(input, op_pos, inner)?;
            match inner.value_type() {
                ValueType::Scalar | ValueType::Vector => Ok(()),
                t => err(
                    *span,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                        t.name()
                    ),
                ),
            }
        }
        Expr::Subquery {
            expr: inner, span, ..
        } => {
            check(input, op_pos, inner)?;
            if inner.value_type() != ValueType::Vector {
                return err(
                    *span,
                    format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        inner.value_type().go_name()
                    ),
                );
            }
            Ok(())
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
            span,
        } => {
            check(input, op_pos, lhs)?;
            check(input, op_pos, rhs)?;
            let (lt, rt) = (lhs.value_type(), rhs.value_type());
            // Prometheus reports these at the operator.
            let at_op = |msg: String| {
                let pos = op_pos
                    .get(&(span.start, span.end))
                    .copied()
                    .unwrap_or(span.start);
                Err(error_at(input, pos, msg))
            };
            if *return_bool && !op.is_comparison() {
                return at_op("bool modifier can only be used on comparison operators".into());
            }
            if op.is_comparison()
                && lt == ValueType::Scalar
                && rt == ValueType::Scalar
                && !return_bool
            {
                return at_op("comparisons between scalars must use BOOL modifier".into());
            }
            if let Some(m) = matching
                && m.on
                && let Some(l) = m.labels.iter().find(|l| m.include.contains(l))
            {
                return at_op(format!(
                    "label {l:?} must not occur in ON and GROUP clause at once"
                ));
            }
            if lt != ValueType::Scalar && lt != ValueType::Vector {
                return err(
                    lhs.span(),
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if rt != ValueType::Scalar && rt != ValueType::Vector {
                return err(
                    rhs.span(),
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if lt != ValueType::Vector || rt != ValueType::Vector {
                if matching.as_ref().is_some_and(|m| !m.labels.is_empty()) {
                    return err(
                        *span,
                        "vector matching only allowed between instant vectors".into(),
                    );
                }
            } else if op.is_set()
                && let Some(m) = matching
                && matches!(m.card, Cardinality::OneToMany | Cardinality::ManyToOne)
            {
                return err(
                    *span,
                    format!("no grouping allowed for {:?} operation", op.as_str()),
                );
            }
            if op.is_set() && (lt == ValueType::Scalar || rt == ValueType::Scalar) {
                return err(
                    *span,
                    format!(
                        "set operator {:?} not allowed in binary scalar expression",
                        op.as_str()
                    ),
                );
            }
            Ok(())
        }
        Expr::Aggregate {
            op,
            expr: inner,
            param,
            ..
        } => {
            check(input, op_pos, inner)?;
            if inner.value_type() != ValueType::Vector {
                return err(
                    inner.span(),
                    format!(
                        "expected type instant vector in aggregation expression, got {}",
                        inner.value_type().name()
                    ),
                );
            }
            if let (Some(want), Some(p)) = (op.param_type(), param) {
                check(input, op_pos, p)?;
                if p.value_type() != want {
                    return err(
                        p.span(),
                        format!(
                            "expected type {} in aggregation parameter, got {}",
                            want.name(),
                            p.value_type().name()
                        ),
                    );
                }
            }
            Ok(())
        }
        Expr::Call { func, args, span } => {
            let n = func.args.len();
            // `optional > 0`: that many trailing arguments may be left out; `-1`: the last
            // argument repeats zero or more times.
            let min = if func.optional > 0 {
                n - func.optional as usize
            } else if func.optional < 0 {
                n - 1
            } else {
                n
            };
            let variadic = func.optional < 0;
            let count = |bound: &str, k: usize| {
                err(
                    *span,
                    format!(
                        "expected {bound}{k} argument(s) in call to {:?}, got {}",
                        func.name,
                        args.len()
                    ),
                )
            };
            if func.optional == 0 {
                if args.len() != n {
                    return count("", n);
                }
            } else if args.len() < min {
                return count("at least ", min);
            } else if !variadic && args.len() > n {
                return count("at most ", n);
            }
            if func.name == "info"
                && let Some(labels) = args.get(1)
            {
                match labels {
                    Expr::Vector(v) if v.name.is_some() => {
                        return err(
                            labels.span(),
                            "expected label selectors only, got vector selector instead".into(),
                        );
                    }
                    Expr::Vector(_) => {}
                    _ => return err(labels.span(), "expected label selectors only".into()),
                }
            }
            for (i, arg) in args.iter().enumerate() {
                check(input, op_pos, arg)?;
                let want = func.args[i.min(n.saturating_sub(1))];
                if arg.value_type() != want {
                    return err(
                        arg.span(),
                        format!(
                            "expected type {} in call to function {:?}, got {}",
                            want.name(),
                            func.name,
                            arg.value_type().name()
                        ),
                    );
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod upstream_errors;
