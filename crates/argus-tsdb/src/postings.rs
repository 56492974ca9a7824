//! Posting lists (sorted series ids) and the matcher → postings algorithm shared by the head
//! and by blocks.

use argus_model::Matcher;

use std::borrow::Cow;

/// What an index must answer for [`select_postings`].
pub trait IndexLookup {
    /// All values of a label name (any order).
    fn label_values(&self, name: &str) -> Vec<String>;
    /// The values of a label name for which `keep` holds (any order). Indexes that hold
    /// their values as strings override it to allocate only the ones kept.
    fn label_values_where(&self, name: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut values = self.label_values(name);
        values.retain(|v| keep(v));
        values
    }
    /// Sorted ids of series with `name="value"` (borrowed when the index holds them as is).
    fn postings(&self, name: &str, value: &str) -> Cow<'_, [u64]>;
    /// Sorted ids of every series.
    fn all_postings(&self) -> Vec<u64>;
    /// How many series have `name="value"`; indexes that know it without reading the list
    /// override it.
    fn postings_len(&self, name: &str, value: &str) -> usize {
        self.postings(name, value).len()
    }
    /// Whether series `id` satisfies every matcher, for indexes that read a series' labels
    /// more cheaply than a long postings list (`None`: this index cannot tell).
    fn series_matches(&self, id: u64, matchers: &[Matcher]) -> Option<bool> {
        let _ = (id, matchers);
        None
    }
}

/// Candidates of a short postings list are checked against every matcher one by one when
/// the other lists together are this many times longer than it (reading them whole would
/// cost more than reading the candidates' labels).
const CHECK_CANDIDATES_RATIO: usize = 32;

/// [`select_postings`] by checking the candidates of the shortest equality matcher, when
/// the index supports it and the other narrowing matchers' lists are much longer.
pub(crate) fn select_by_candidates(
    index: &impl IndexLookup,
    matchers: &[Matcher],
) -> Option<Vec<u64>> {
    let mut shortest: Option<(&Matcher, &str, usize)> = None;
    let mut total = 0usize;
    for m in matchers.iter().filter(|m| !m.matches_empty()) {
        let len = match m.exact_values().as_deref() {
            Some([one]) => {
                let len = index.postings_len(&m.name, one);
                if shortest.is_none_or(|(_, _, n)| len < n) {
                    shortest = Some((m, one, len));
                }
                len
            }
            // A regex's lists are read only on the usual path; count it as long.
            _ => usize::MAX / 4,
        };
        total = total.saturating_add(len);
    }
    let (m, value, n) = shortest?;
    if total.saturating_sub(n) < n.saturating_mul(CHECK_CANDIDATES_RATIO) {
        return None;
    }
    let mut out = Vec::new();
    for &id in index.postings(&m.name, value).iter() {
        if index.series_matches(id, matchers)? {
            out.push(id);
        }
    }
    Some(out)
}

/// Sorted ids of series matching every matcher. A matcher that matches the empty string also
/// selects series without the label, as in Prometheus. The narrowing matchers are applied
/// smallest first, each step searching the larger list, so a selective matcher next to a
/// metric name with many series costs about its own size. A matcher with several values (a
/// regex) narrows the result list by intersecting it with each value's list in turn; only
/// when it is the smallest of all is its union built, so a regex over many values next to a
/// metric name holds the answer, not every series of every value.
pub fn select_postings(index: &impl IndexLookup, matchers: &[Matcher]) -> Vec<u64> {
    if let Some(ids) = select_by_candidates(index, matchers) {
        return ids;
    }
    let (narrowing, widening): (Vec<&Matcher>, Vec<&Matcher>) =
        matchers.iter().partition(|m| !m.matches_empty());
    // Each narrowing matcher's label name, values and their lists' total length.
    let mut sets: Vec<(&str, Vec<String>, usize)> = Vec::with_capacity(narrowing.len());
    for m in narrowing {
        let values: Vec<String> = match m.exact_values() {
            Some(v) => v.into_iter().map(str::to_string).collect(),
            None => index.label_values_where(&m.name, &|v| m.matches(v)),
        };
        let len: usize = values.iter().map(|v| index.postings_len(&m.name, v)).sum();
        if len == 0 {
            return Vec::new();
        }
        sets.push((&m.name, values, len));
    }
    sets.sort_by_key(|s| s.2);
    let mut sets = sets.into_iter();
    let mut result: Cow<'_, [u64]> = match sets.next() {
        None => Cow::Owned(index.all_postings()),
        // Borrowed, so the first intersection reads the index's list, not a copy of it.
        Some((name, values, _)) => match values.as_slice() {
            [one] => index.postings(name, one),
            _ => Cow::Owned(union_all(
                values.iter().map(|v| index.postings(name, v)).collect(),
            )),
        },
    };
    for (name, values, _) in sets {
        result = Cow::Owned(match values.as_slice() {
            [one] => intersect(&result, &index.postings(name, one)),
            _ => intersect_any(&result, values.iter().map(|v| index.postings(name, v))),
        });
        if result.is_empty() {
            return Vec::new();
        }
    }
    let mut result = result.into_owned();
    for m in widening {
        let values = index.label_values_where(&m.name, &|v| !m.matches(v));
        let excluded: Vec<Cow<'_, [u64]>> =
            values.iter().map(|v| index.postings(&m.name, v)).collect();
        result = subtract(&result, &union_all(excluded));
    }
    result
}

/// The ids of sorted `a` that are in any of `lists`, sorted: `a` intersected with each list
/// in turn (each list read once and let go), without building the lists' union.
fn intersect_any<'a>(a: &[u64], lists: impl Iterator<Item = Cow<'a, [u64]>>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut sorted = true;
    for list in lists {
        let from = out.len();
        intersect_into(a, &list, &mut out);
        if from > 0 && out.len() > from && out[from - 1] >= out[from] {
            sorted = false;
        }
        if out.len() == a.len() && sorted {
            break;
        }
    }
    if !sorted {
        out.sort_unstable();
        out.dedup();
    }
    out
}

/// Sorted intersection. When one list is much shorter, each of its ids is looked up in the
/// other by galloping search instead of walking both.
pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    intersect_into(a, b, &mut out);
    out
}

/// [`intersect`], appending to `out`.
fn intersect_into(a: &[u64], b: &[u64], out: &mut Vec<u64>) {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.len().saturating_mul(16) < large.len() {
        let mut rest = large;
        for &x in small {
            // Exponential probe, then binary search within the bracket.
            let mut hi = 1;
            while hi < rest.len() && rest[hi] < x {
                hi *= 2;
            }
            let window = &rest[..hi.min(rest.len())];
            let pos = window.partition_point(|&y| y < x);
            rest = &rest[pos..];
            if rest.first() == Some(&x) {
                out.push(x);
                rest = &rest[1..];
            }
            if rest.is_empty() {
                break;
            }
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
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

/// Sorted union of sorted lists, borrowed where the index lends them: one list sized up
/// front holds them all (a regex over many values unions many lists, and copying each
/// first, then growing the union, held up to three times its size).
pub fn union_all(lists: Vec<Cow<'_, [u64]>>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists
            .into_iter()
            .next()
            .map(Cow::into_owned)
            .unwrap_or_default(),
        _ => {
            let mut all: Vec<u64> = Vec::with_capacity(lists.iter().map(|l| l.len()).sum());
            for l in &lists {
                all.extend_from_slice(l);
            }
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
        fn postings(&self, name: &str, value: &str) -> Cow<'_, [u64]> {
            match self.0.get(&(name.to_string(), value.to_string())) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(Vec::new()),
            }
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

    proptest::proptest! {
        /// Galloping and linear intersection agree with a set intersection.
        #[test]
        fn intersect_matches_sets(a in proptest::collection::btree_set(0u64..2000, 0..300),
                                  b in proptest::collection::btree_set(0u64..2000, 0..10)) {
            let (a, b): (Vec<u64>, Vec<u64>) = (a.into_iter().collect(), b.into_iter().collect());
            let want: Vec<u64> = a.iter().copied().filter(|x| b.contains(x)).collect();
            proptest::prop_assert_eq!(intersect(&a, &b), want.clone());
            proptest::prop_assert_eq!(intersect(&b, &a), want);
        }

        /// Intersecting with several lists at once, in any order and overlapping, agrees
        /// with intersecting with their union.
        #[test]
        fn intersect_any_matches_union(a in proptest::collection::btree_set(0u64..500, 0..200),
                                       lists in proptest::collection::vec(
                                           proptest::collection::btree_set(0u64..500, 0..80), 0..6)) {
            let a: Vec<u64> = a.into_iter().collect();
            let lists: Vec<Vec<u64>> = lists.into_iter().map(|l| l.into_iter().collect()).collect();
            let union: std::collections::BTreeSet<u64> = lists.iter().flatten().copied().collect();
            let want: Vec<u64> = a.iter().copied().filter(|x| union.contains(x)).collect();
            let got = intersect_any(&a, lists.iter().map(|l| Cow::Borrowed(l.as_slice())));
            proptest::prop_assert_eq!(got, want);
        }

        /// Any mix of matchers over three labels selects what checking every series does
        /// (unions of several values, intersections of several lists, widening matchers).
        #[test]
        fn select_postings_matches_brute_force(
            series in proptest::collection::vec((0u8..5, 0u8..4, 0u8..3), 1..60),
            matchers in proptest::collection::vec((0usize..3, 0usize..4, "[0-4]{0,1}[|]?[0-4]"), 1..6),
        ) {
            let names = ["a", "b", "c"];
            // Value 0 of `c` means the series has no `c`.
            let labels: Vec<Vec<(&str, String)>> = series
                .iter()
                .map(|&(a, b, c)| {
                    let mut l = vec![("a", a.to_string()), ("b", b.to_string())];
                    if c > 0 {
                        l.push(("c", c.to_string()));
                    }
                    l
                })
                .collect();
            let mut index = BTreeMap::new();
            for (id, l) in labels.iter().enumerate() {
                for (n, v) in l {
                    index.entry((n.to_string(), v.clone())).or_insert_with(Vec::new).push(id as u64);
                }
            }
            let idx = Fake(index, (0..labels.len() as u64).collect());
            let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::RegexMatch, MatchOp::RegexNoMatch];
            let ms: Vec<Matcher> = matchers
                .iter()
                .filter_map(|(n, op, v)| Matcher::new(ops[*op], names[*n], v).ok())
                .collect();
            let want: Vec<u64> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    ms.iter().all(|m| {
                        let v = l.iter().find(|(n, _)| *n == m.name).map_or("", |(_, v)| v.as_str());
                        m.matches(v)
                    })
                })
                .map(|(id, _)| id as u64)
                .collect();
            proptest::prop_assert_eq!(select_postings(&idx, &ms), want, "{:?}", ms);
        }
    }
}
