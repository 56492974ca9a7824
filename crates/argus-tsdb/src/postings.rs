//! Posting lists (sorted series ids) and the matcher → postings algorithm shared by the head
//! and by blocks.

use argus_model::Matcher;

/// What an index must answer for [`select_postings`].
pub trait IndexLookup {
    /// All values of a label name (any order).
    fn label_values(&self, name: &str) -> Vec<String>;
    /// Sorted ids of series with `name="value"`.
    fn postings(&self, name: &str, value: &str) -> Vec<u64>;
    /// Sorted ids of every series.
    fn all_postings(&self) -> Vec<u64>;
}

/// Sorted ids of series matching every matcher. A matcher that matches the empty string also
/// selects series without the label, as in Prometheus.
pub fn select_postings(index: &impl IndexLookup, matchers: &[Matcher]) -> Vec<u64> {
    let (narrowing, widening): (Vec<&Matcher>, Vec<&Matcher>) =
        matchers.iter().partition(|m| !m.matches_empty());
    let mut result: Option<Vec<u64>> = None;
    for m in narrowing {
        let values: Vec<String> = match m.exact_values() {
            Some(v) => v.into_iter().map(str::to_string).collect(),
            None => index
                .label_values(&m.name)
                .into_iter()
                .filter(|v| m.matches(v))
                .collect(),
        };
        let lists: Vec<Vec<u64>> = values.iter().map(|v| index.postings(&m.name, v)).collect();
        let matched = union_all(lists);
        result = Some(match result {
            None => matched,
            Some(r) => intersect(&r, &matched),
        });
        if result.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
    }
    let mut result = result.unwrap_or_else(|| index.all_postings());
    for m in widening {
        let excluded: Vec<Vec<u64>> = index
            .label_values(&m.name)
            .into_iter()
            .filter(|v| !m.matches(v))
            .map(|v| index.postings(&m.name, &v))
            .collect();
        result = subtract(&result, &union_all(excluded));
    }
    result
}

pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

pub fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

pub fn union_all(lists: Vec<Vec<u64>>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists.into_iter().next().unwrap_or_default(),
        _ => {
            let mut all: Vec<u64> = lists.into_iter().flatten().collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_model::MatchOp;
    use std::collections::BTreeMap;

    struct Fake(BTreeMap<(String, String), Vec<u64>>, Vec<u64>);

    impl IndexLookup for Fake {
        fn label_values(&self, name: &str) -> Vec<String> {
            self.0
                .keys()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        }
        fn postings(&self, name: &str, value: &str) -> Vec<u64> {
            self.0
                .get(&(name.to_string(), value.to_string()))
                .cloned()
                .unwrap_or_default()
        }
        fn all_postings(&self) -> Vec<u64> {
            self.1.clone()
        }
    }

    #[test]
    fn matcher_semantics() {
        // 1: {a=1,b=x} 2: {a=2} 3: {a=1}
        let mut m = BTreeMap::new();
        m.insert(("a".into(), "1".into()), vec![1, 3]);
        m.insert(("a".into(), "2".into()), vec![2]);
        m.insert(("b".into(), "x".into()), vec![1]);
        let idx = Fake(m, vec![1, 2, 3]);
        let sel = |ms: Vec<Matcher>| select_postings(&idx, &ms);
        let mk = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(sel(vec![mk(MatchOp::Equal, "a", "1")]), vec![1, 3]);
        assert_eq!(
            sel(vec![
                mk(MatchOp::Equal, "a", "1"),
                mk(MatchOp::Equal, "b", "")
            ]),
            vec![3]
        );
        assert_eq!(sel(vec![mk(MatchOp::NotEqual, "b", "x")]), vec![2, 3]);
        assert_eq!(
            sel(vec![
                mk(MatchOp::RegexMatch, "a", ".+"),
                mk(MatchOp::NotEqual, "b", "")
            ]),
            vec![1]
        );
        assert_eq!(
            sel(vec![mk(MatchOp::RegexNoMatch, "a", "1|2")]),
            Vec::<u64>::new()
        );
        assert_eq!(sel(vec![mk(MatchOp::RegexMatch, "a", "2|3")]), vec![2]);
    }
}
