//! PromQL: lexer and parser with byte spans on every node (the engine, functions and the
//! upstream test-script runner follow). Error messages follow Prometheus's
//! `line:col: parse error: …` form.
//!
//! This crate must never panic on any input: every query string is untrusted.

pub mod aggregate;
pub mod annotations;
pub mod ast;
pub mod binary;
pub mod compliance;
pub mod engine;
pub mod extended;
pub mod functions;
pub mod histfn;
pub mod info;
pub mod lexer;
pub mod parser;
pub mod printer;
pub mod promqltest;

pub use ast::Expr;
pub use engine::{Engine, EngineOptions, EvalError, QueryStats, Queryable, Selection, Value};
pub use parser::{Features, ParseError, parse, parse_metric_selector, parse_with};
