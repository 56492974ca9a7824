use argus_config::relabel::{RelabelAction, RelabelConfig};
use argus_model::Labels;

use super::*;

fn rule(action: RelabelAction) -> RelabelConfig {
    RelabelConfig {
        source_labels: Vec::new(),
        separator: ";".into(),
        regex: "(.*)".into(),
        modulus: 0,
        target_label: String::new(),
        replacement: "$1".into(),
        action,
    }
}

fn with(
    action: RelabelAction,
    sources: &[&str],
    regex: &str,
    target: &str,
    replacement: &str,
) -> RelabelConfig {
    RelabelConfig {
        source_labels: sources.iter().map(|s| s.to_string()).collect(),
        regex: regex.into(),
        target_label: target.into(),
        replacement: replacement.into(),
        ..rule(action)
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

fn run(input: &[(&str, &str)], rules: &[RelabelConfig]) -> Option<Labels> {
    let compiled = Relabel::compile_all(rules).expect("rules compile");
    process(&labels(input), &compiled)
}

use RelabelAction::*;

#[test]
fn replace_table() {
    let abc = [("a", "foo"), ("b", "bar"), ("c", "baz")];
    let cases: Vec<(RelabelConfig, Option<Vec<(&str, &str)>>)> = vec![
        // Plain copy with a capture group.
        (
            with(Replace, &["a"], "f(.*)", "d", "ch${1}-ch${1}"),
            Some(vec![
                ("a", "foo"),
                ("b", "bar"),
                ("c", "baz"),
                ("d", "choo-choo"),
            ]),
        ),
        // Several sources joined with the separator.
        (
            with(Replace, &["a", "b"], "f(.*);(.*)r", "a", "b${1}${2}m"),
            Some(vec![("a", "boobam"), ("b", "bar"), ("c", "baz")]),
        ),
        // The regex is anchored: "o" alone does not match "foo".
        (with(Replace, &["a"], "o", "d", "x"), Some(abc.to_vec())),
        // No match: nothing happens.
        (
            with(Replace, &["a"], "nomatch", "d", "x"),
            Some(abc.to_vec()),
        ),
        // Target label from a capture.
        (
            with(Replace, &["a"], "(f).*", "${1}oo", "v"),
            Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz"), ("foo", "v")]),
        ),
        // An invalid (empty) expanded target name: nothing happens.
        (
            with(Replace, &["a"], "(f).*", "${2}", "v"),
            Some(abc.to_vec()),
        ),
        // An empty replacement deletes the target.
        (
            with(Replace, &["a"], "(.*)", "b", "$2"),
            Some(vec![("a", "foo"), ("c", "baz")]),
        ),
        // `$1x` is the group named "1x" (empty), as in Go.
        (
            with(Replace, &["a"], "(.*)", "d", "$1x"),
            Some(abc.to_vec()),
        ),
        // `$$` is a literal dollar.
        (
            with(Replace, &["a"], "(.*)", "d", "$$${1}"),
            Some(vec![
                ("a", "foo"),
                ("b", "bar"),
                ("c", "baz"),
                ("d", "$foo"),
            ]),
        ),
        // Named groups.
        (
            with(
                Replace,
                &["a"],
                "(?P<first>f)(?P<rest>.*)",
                "d",
                "${rest}$first",
            ),
            Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "oof")]),
        ),
        // Constant set from a missing source (the fast path).
        (
            with(Replace, &["missing"], "(.*)", "d", "const"),
            Some(vec![
                ("a", "foo"),
                ("b", "bar"),
                ("c", "baz"),
                ("d", "const"),
            ]),
        ),
        // Missing source with a regex that needs something: no match.
        (
            with(Replace, &["missing"], "(.+)", "d", "x"),
            Some(abc.to_vec()),
        ),
        // Go accepts `a{` as a literal.
        (with(Replace, &["a"], "fo{", "d", "x"), Some(abc.to_vec())),
        (
            with(Replace, &["z"], "a{", "d", "matched"),
            Some(abc.to_vec()),
        ),
        // Keep on a regex that does not match drops the set.
        (with(Keep, &["c"], "\\d+", "", "$1"), None),
        // `.` matches newlines (the (?s) flag).
        (
            with(Replace, &["a"], "f.*", "d", "dot"),
            Some(vec![("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "dot")]),
        ),
    ];
    for (i, (config, want)) in cases.into_iter().enumerate() {
        let got = run(&abc, std::slice::from_ref(&config));
        assert_eq!(got, want.map(|w| labels(&w)), "case {i}: {config:?}");
    }
}

#[test]
fn go_regex_edge_cases() {
    let keep = |value: &str, regex: &str| {
        run(&[("v", value)], &[with(Keep, &["v"], regex, "", "$1")]).is_some()
    };
    assert!(keep("a{", "a{"));
    assert!(keep("foo{bar}", "foo{bar}"));
    assert!(keep("123", "\\d+"));
    assert!(!keep("١٢٣", "\\d+"));
    assert!(!keep("é", "\\w"));
    assert!(keep("a\nb", "a.b"));
    assert!(!keep("xfoo", "foo"));
    assert!(!keep("foox", "foo"));
    assert!(keep("a.b", "\\Qa.b\\E"));
    assert!(!keep("axb", "\\Qa.b\\E"));
}

#[test]
fn keep_drop_and_equal() {
    let input = [("a", "foo"), ("b", "foo"), ("c", "bar")];
    assert!(run(&input, &[with(Keep, &["a"], "f.*", "", "$1")]).is_some());
    assert!(run(&input, &[with(Keep, &["a"], "b.*", "", "$1")]).is_none());
    assert!(run(&input, &[with(Drop, &["a"], "f.*", "", "$1")]).is_none());
    assert!(run(&input, &[with(Drop, &["a"], "b.*", "", "$1")]).is_some());
    // Missing label reads as "".
    assert!(run(&input, &[with(Drop, &["zz"], "", "", "$1")]).is_none());
    let mut keep_equal = rule(KeepEqual);
    keep_equal.source_labels = vec!["a".into()];
    keep_equal.target_label = "b".into();
    assert!(run(&input, std::slice::from_ref(&keep_equal)).is_some());
    keep_equal.target_label = "c".into();
    assert!(run(&input, std::slice::from_ref(&keep_equal)).is_none());
    let mut drop_equal = rule(DropEqual);
    drop_equal.source_labels = vec!["a".into()];
    drop_equal.target_label = "b".into();
    assert!(run(&input, std::slice::from_ref(&drop_equal)).is_none());
    drop_equal.target_label = "c".into();
    assert!(run(&input, std::slice::from_ref(&drop_equal)).is_some());
}

#[test]
fn hashmod_uses_prometheus_md5_scheme() {
    let mut config = with(HashMod, &["c"], "(.*)", "d", "$1");
    config.modulus = 1000;
    assert_eq!(
        run(&[("c", "baz")], std::slice::from_ref(&config)),
        Some(labels(&[("c", "baz"), ("d", "976")]))
    );
    config.source_labels = vec!["a".into()];
    assert_eq!(
        run(&[("a", "foo\nbar")], std::slice::from_ref(&config)),
        Some(labels(&[("a", "foo\nbar"), ("d", "734")]))
    );
}

#[test]
fn label_map_drop_keep() {
    let input = [("__meta_x_one", "1"), ("__meta_x_two", "2"), ("job", "j")];
    let mut map = rule(LabelMap);
    map.regex = "__meta_x_(.+)".into();
    assert_eq!(
        run(&input, &[map.clone()]),
        Some(labels(&[
            ("__meta_x_one", "1"),
            ("__meta_x_two", "2"),
            ("job", "j"),
            ("one", "1"),
            ("two", "2"),
        ]))
    );
    map.replacement = "prefix_${1}".into();
    assert_eq!(
        run(&input, &[map]).map(|l| l.get("prefix_one").map(str::to_string)),
        Some(Some("1".to_string()))
    );
    let mut drop = rule(LabelDrop);
    drop.regex = "__meta_.*".into();
    assert_eq!(run(&input, &[drop]), Some(labels(&[("job", "j")])));
    let mut keep = rule(LabelKeep);
    keep.regex = "__meta_x_one|job".into();
    assert_eq!(
        run(&input, &[keep]),
        Some(labels(&[("__meta_x_one", "1"), ("job", "j")]))
    );
}

#[test]
fn case_actions() {
    let mut lower = rule(Lowercase);
    lower.source_labels = vec!["a".into(), "b".into()];
    lower.target_label = "l".into();
    let mut upper = rule(Uppercase);
    upper.source_labels = vec!["a".into()];
    upper.target_label = "u".into();
    assert_eq!(
        run(&[("a", "FoO"), ("b", "BäR")], &[lower, upper]),
        Some(labels(&[
            ("a", "FoO"),
            ("b", "BäR"),
            ("l", "foo;bär"),
            ("u", "FOO"),
        ]))
    );
}

#[test]
fn rules_apply_in_order_and_stop_at_a_drop() {
    let rules = [
        with(Replace, &["a"], "(.*)", "b", "${1}x"),
        with(Drop, &["b"], "foox", "", "$1"),
        with(Replace, &["a"], "(.*)", "never", "set"),
    ];
    assert_eq!(run(&[("a", "foo")], &rules), None);
    assert_eq!(
        run(&[("a", "bar")], &rules),
        Some(labels(&[("a", "bar"), ("b", "barx"), ("never", "set")]))
    );
}

#[test]
fn invalid_rules_are_refused() {
    assert!(Relabel::compile(&with(Replace, &["a"], "(", "b", "$1")).is_err());
    let mut hashmod = with(HashMod, &["a"], "(.*)", "b", "$1");
    hashmod.modulus = 0;
    assert!(Relabel::compile(&hashmod).is_err());
}
