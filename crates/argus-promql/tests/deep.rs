//! Expressions as deep as the parser takes ([`MAX_DEPTH`]) are parsed, checked, evaluated,
//! printed (flat and pretty) and dropped on a thread with [`STACK_SIZE`]; one level deeper is refused with a
//! parse error, and far deeper ones too, never with a stack overflow.

#![allow(clippy::unwrap_used)]

use argus_promql::parser::{MAX_DEPTH, STACK_SIZE};
use argus_promql::promqltest::MemStore;
use argus_promql::{Engine, EngineOptions, Features, parse, parse_with, printer};

/// Runs `f` on a thread with `stack` bytes of stack.
fn with_stack<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Each shape that nests, `depth` levels deep (`vector(1)` is two: the call and its number).
fn shapes(depth: usize) -> Vec<(&'static str, String)> {
    let wrap = |open: &str, inner: &str, close: &str, k: usize| {
        format!("{}{inner}{}", open.repeat(k), close.repeat(k))
    };
    vec![
        ("or chain", vec!["vector(1)"; depth - 1].join(" or ")),
        ("^ chain", vec!["vector(1)"; depth - 1].join(" ^ ")),
        ("parentheses", wrap("(", "vector(1)", ")", depth - 2)),
        ("functions", wrap("abs(", "vector(1)", ")", depth - 2)),
        ("aggregations", wrap("sum(", "vector(1)", ")", depth - 2)),
        ("signs", wrap("-", "vector(1)", "", depth - 2)),
        (
            "subqueries",
            wrap("last_over_time(", "vector(1)", "[1m:])", (depth - 2) / 2)
                + &" + 1".repeat((depth - 2) % 2),
        ),
        (
            "duration sums",
            format!("m offset ({})", vec!["1s"; depth - 1].join(" + ")),
        ),
        (
            "duration parentheses",
            format!("m offset {}", wrap("(", "1s", ")", depth - 1)),
        ),
    ]
}

#[test]
fn the_deepest_expressions_taken_run_on_the_stack_given() {
    with_stack(STACK_SIZE, || {
        let store = MemStore::default();
        let engine = Engine::new(EngineOptions::default());
        for (name, q) in shapes(MAX_DEPTH) {
            let expr = parse_with(&q, Features::ALL).unwrap_or_else(|e| panic!("{name}: {e}"));
            let printed = printer::canonical(&expr);
            let again = parse_with(&printed, Features::ALL);
            assert!(again.as_ref().ok() == Some(&expr), "{name}");
            drop(again);
            // Pretty text places nodes elsewhere: compared by what it prints back to.
            let pretty = printer::pretty(&expr);
            let again = parse_with(&pretty, Features::ALL).map(|e| printer::canonical(&e));
            assert!(again.as_ref() == Ok(&printed), "{name}");
            assert!(engine.instant(&store, &expr, 100_000).is_ok(), "{name}");
            assert!(
                engine.range(&store, &expr, 0, 100_000, 50_000).is_ok(),
                "{name}"
            );
        }
    });
}

#[test]
fn deeper_expressions_are_refused_with_a_parse_error() {
    with_stack(STACK_SIZE, || {
        for (name, q) in shapes(MAX_DEPTH + 1) {
            let err = match parse_with(&q, Features::ALL) {
                Ok(_) => panic!("{name}: taken"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.ends_with(&format!("parse error: expression nests deeper than {MAX_DEPTH} levels, which argus does not evaluate")),
                "{name}: {err}"
            );
        }
        // Far deeper, too: the parser neither recurses nor builds past the limit.
        let q = format!("{}1{}", "(".repeat(1_000_000), ")".repeat(1_000_000));
        assert!(parse(&q).is_err_and(|e| e.message.contains("nests deeper")));
        let q = vec!["1"; 1_000_000].join(" or ");
        assert!(parse(&q).is_err_and(|e| e.message.contains("nests deeper")));
    });
}
