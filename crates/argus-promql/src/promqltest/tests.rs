use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/promql-tests");

fn floats(items: &str) -> Vec<Option<f64>> {
    parse_items(items)
        .unwrap()
        .into_iter()
        .map(|v| match v {
            Some(Val::F(f)) => Some(f),
            None => None,
            Some(Val::H(..)) => panic!("histogram in {items:?}"),
        })
        .collect()
}

#[test]
fn series_notation() {
    assert_eq!(
        floats("0+10x3"),
        vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(
        floats("1x2 _x2 _ -2-1x1"),
        vec![
            Some(1.0),
            Some(1.0),
            Some(1.0),
            None,
            None,
            None,
            Some(-2.0),
            Some(-3.0)
        ]
    );
    assert!(is_stale_nan(floats("stale")[0].unwrap()));
    assert!(floats("1e3+1e-1x1")[1].unwrap() == 1000.1);
    let (l, rest) = parse_metric(r#"http_requests{job="a", instance='b'} 1 2"#).unwrap();
    assert_eq!(
        l.to_string(),
        r#"{__name__="http_requests", instance="b", job="a"}"#
    );
    assert_eq!(rest.trim(), "1 2");
    let (l, _) = parse_metric("{} 1").unwrap();
    assert!(l.is_empty());
}

#[test]
fn a_small_script_runs() {
    let script = "load 5m\n  m{a=\"1\"} 0+10x10\n  m{a=\"2\"} 0+20x10\n\neval instant at 50m sum(m)\n  {} 300\n\neval instant at 50m m{a=\"1\"}\n  m{a=\"1\"} 999\n\neval range from 0 to 10m step 5m m{a=\"2\"}\n  m{a=\"2\"} 0 20 40\n\neval instant at 0m 1 + 1\n  2\n\neval instant at 0m nosuch(\n  expect fail\n";
    let results = run_script(script).unwrap();
    let failed: Vec<usize> = results
        .iter()
        .filter(|r| r.failure.is_some())
        .map(|r| r.line)
        .collect();
    // The second eval expects a wrong value; the last one does not even parse (upstream treats
    // that as a broken file; here it is a failing case).
    assert_eq!(failed, vec![8, 17], "{results:?}");
}

/// Every upstream script, against the list of cases known not to pass yet. The list may only
/// shrink: a listed case that passes, or an unlisted case that fails, fails this test.
#[test]
fn upstream_scripts_against_known_failures() {
    let known: std::collections::BTreeSet<String> = include_str!("known_failures.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let mut entries: Vec<_> = std::fs::read_dir(DIR)
        .expect("../shared/promql-tests must sit beside the checkout")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 21);
    let (mut passed, mut total) = (0, 0);
    let mut new_failures = Vec::new();
    let mut now_passing = Vec::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let results = run_script(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for r in results {
            total += 1;
            let key = format!("{name}:{}", r.line);
            match (&r.failure, known.contains(&key)) {
                (None, false) => passed += 1,
                (None, true) => now_passing.push(key),
                (Some(f), false) => new_failures.push(format!("{key} {} -- {f}", r.query)),
                (Some(_), true) => {}
            }
        }
    }
    eprintln!(
        "upstream PromQL scripts: {passed} passed, {} failed",
        total - passed
    );
    assert_eq!(total, 2214, "every eval must be counted");
    assert!(
        new_failures.is_empty(),
        "{} cases fail that are not in known_failures.txt:\n{}",
        new_failures.len(),
        new_failures.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "now passing, remove from known_failures.txt: {now_passing:?}"
    );
}
