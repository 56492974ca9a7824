//! Label sets: sorted by name, cheap to clone (one shared allocation), compared and ordered
//! lexicographically by (name, value) pairs as Prometheus does.

use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A legacy (pre-UTF-8) label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A legacy metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: Box<str>,
    pub value: Box<str>,
}

impl Label {
    pub fn new(name: impl Into<Box<str>>, value: impl Into<Box<str>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A borrowed label: name and value as string slices of a [`Labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// An immutable, sorted set of labels with unique names and no empty values.
///
/// Packed into one shared allocation (`count, (len, name, len, value)*` with varint
/// lengths), so a label set costs one allocation and a few bytes of overhead instead of one
/// allocation per string: the head holds one per series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Labels(Arc<[u8]>);

impl Default for Labels {
    fn default() -> Self {
        Self(Arc::from(&[0u8][..]))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

/// Sorts `items` by their label sets, keeping the order of equal ones. The sets' order keys
/// ([`Labels::order_key`]) go into one shared buffer rather than one allocation each: this
/// sorts every selector's series. When every set has the first one's label names and first
/// label (most selections of one metric), the keys hold only the other labels' values,
/// about a third of the whole key; a set that does not fits starts the keys over whole.
pub fn sort_by_labels<T>(items: &mut Vec<T>, labels: impl Fn(&T) -> &Labels) {
    if items.len() < 2 {
        return;
    }
    let first = labels(&items[0]);
    let mut ends: Vec<usize> = Vec::with_capacity(items.len());
    let mut keys: Vec<u8> = Vec::with_capacity((first.values_key_len() + 8) * items.len());
    let compact = items.iter().all(|item| {
        let fits = labels(item).write_values_key(first, &mut keys);
        ends.push(keys.len());
        fits
    });
    if !compact {
        keys.clear();
        ends.clear();
        for item in items.iter() {
            labels(item).write_order_key(&mut keys);
            ends.push(keys.len());
        }
    }
    let key = |i: usize| &keys[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(a).cmp(key(b)));
    if order.iter().enumerate().all(|(at, &i)| at == i) {
        return;
    }
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.iter().filter_map(|&i| slots[i].take()));
}

/// Appends a name or value to an order key: its bytes, a NUL byte written `00 01`, then
/// `00 00`.
fn put_key_part(key: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        key.push(b);
        if b == 0 {
            key.push(1);
        }
    }
    key.extend_from_slice(&[0, 0]);
}

/// Iterator over a packed label set.
pub struct LabelsIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> LabelsIter<'a> {
    #[allow(unsafe_code)]
    fn take_str(&mut self) -> &'a str {
        let len = get_varint(self.bytes, &mut self.pos);
        let end = (self.pos + len).min(self.bytes.len());
        let bytes = &self.bytes[self.pos..end];
        self.pos = end;
        // SAFETY: a `Labels` buffer is written only by `Labels::pack`, which copies whole
        // `&str` names and values after their lengths, and is immutable afterwards; so every
        // slice read back here at the recorded boundaries is exactly one of those strings.
        // Validating again on every access cost ~8% of a range query.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = LabelRef<'a>;

    fn next(&mut self) -> Option<LabelRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = self.take_str();
        let value = self.take_str();
        Some(LabelRef { name, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for LabelsIter<'_> {}

impl Labels {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Packs pairs that are already sorted by name, unique and non-empty (unchecked).
    fn pack<'a>(pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Vec::with_capacity(1 + pairs.len() * 16);
        put_varint(&mut out, pairs.len());
        for (name, value) in pairs {
            put_varint(&mut out, name.len());
            out.extend_from_slice(name.as_bytes());
            put_varint(&mut out, value.len());
            out.extend_from_slice(value.as_bytes());
        }
        Self(out.into())
    }

    /// Builds a label set from pairs: sorts by name, drops empty values (an empty value means
    /// "no such label" in Prometheus), and keeps the last value of a repeated name.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        let mut builder = LabelsBuilder::new();
        for (name, value) in pairs {
            builder.set(name.as_ref(), value.as_ref());
        }
        builder.build()
    }

    /// Builds from labels already sorted by name with unique names and non-empty values.
    /// Returns `None` when that does not hold.
    pub fn from_sorted(labels: Vec<Label>) -> Option<Self> {
        Self::from_sorted_refs(
            labels
                .iter()
                .map(|l| (&*l.name, &*l.value))
                .collect::<Vec<_>>()
                .as_slice(),
        )
    }

    /// Like [`Self::from_sorted`], from borrowed pairs.
    pub fn from_sorted_refs(pairs: &[(&str, &str)]) -> Option<Self> {
        let sorted = pairs.windows(2).all(|w| w[0].0 < w[1].0);
        let non_empty = pairs.iter().all(|(_, v)| !v.is_empty());
        (sorted && non_empty).then(|| Self::pack(pairs.iter().copied()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }

    /// Byte ranges (in the packed buffer) of the labels whose names `keep` accepts, in order.
    fn kept_ranges<'a>(
        &'a self,
        mut keep: impl FnMut(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut it = self.iter();
        std::iter::from_fn(move || {
            loop {
                let start = it.pos;
                let l = it.next()?;
                if keep(l.name) {
                    return Some(&self.0[start..it.pos]);
                }
            }
        })
    }

    /// A hash of the labels `keep` accepts: equal for sets whose kept labels are equal (a
    /// grouping key computed without building the group's label set).
    pub fn retained_hash(&self, keep: impl FnMut(&str) -> bool) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
        for range in self.kept_ranges(keep) {
            hasher.update(range);
        }
        hasher.digest()
    }

    /// Whether the labels `keep` accepts are exactly `other` (`self.retain(keep) == *other`,
    /// without building it).
    pub fn retained_eq(&self, keep: impl FnMut(&str) -> bool, other: &Labels) -> bool {
        let mut rest = {
            let mut pos = 0;
            let _ = get_varint(&other.0, &mut pos);
            &other.0[pos..]
        };
        let mut kept = 0usize;
        for range in self.kept_ranges(keep) {
            match rest.strip_prefix(range) {
                Some(r) => rest = r,
                None => return false,
            }
            kept += 1;
        }
        rest.is_empty() && kept == other.len()
    }

    /// The labels whose names `keep` accepts, copied straight from the packed bytes (this
    /// set itself when it keeps them all). For dropping the metric name or grouping by
    /// labels once per series, without building the set label by label.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> Labels {
        let mut kept = 0usize;
        let mut bytes = 0usize;
        let mut total = 0usize;
        // Byte ranges of the kept pairs in the packed buffer (lengths included).
        let mut it = self.iter();
        let mut start = it.pos;
        while let Some(l) = it.next() {
            total += 1;
            if keep(l.name) {
                kept += 1;
                bytes += it.pos - start;
            }
            start = it.pos;
        }
        if kept == total {
            return self.clone();
        }
        let mut out = Vec::with_capacity(bytes + 10);
        put_varint(&mut out, kept);
        let mut it = self.iter();
        let mut start = it.pos;
        while let Some(l) = it.next() {
            if keep(l.name) {
                out.extend_from_slice(&self.0[start..it.pos]);
            }
            start = it.pos;
        }
        Self(out.into())
    }

    /// The metric name, or "" when there is none.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    pub fn iter(&self) -> LabelsIter<'_> {
        let mut pos = 0;
        let left = get_varint(&self.0, &mut pos);
        LabelsIter {
            bytes: &self.0,
            pos,
            left,
        }
    }

    pub fn len(&self) -> usize {
        self.iter().left
    }

    /// A byte string whose byte order is the label sets' order (`Ord`): each name and value
    /// followed by `00 00`, with a `00` byte inside them written `00 01`. Sorting many label
    /// sets by these keys (one `memcmp` per comparison) is much cheaper than comparing them
    /// label by label.
    pub fn order_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.0.len() + 2 * self.len() * 2);
        self.write_order_key(&mut key);
        key
    }

    /// Appends [`Self::order_key`] to `key`.
    fn write_order_key(&self, key: &mut Vec<u8>) {
        for l in self.iter() {
            put_key_part(key, l.name);
            put_key_part(key, l.value);
        }
    }

    /// Appends the values of all labels but the first as [`Self::order_key`] writes them,
    /// if this set has `first`'s label names in the same order and its first label;
    /// otherwise false, with part of the key written. Among such sets the order of these
    /// keys is the sets' order.
    fn write_values_key(&self, first: &Labels, key: &mut Vec<u8>) -> bool {
        let (mut mine, mut theirs) = (self.iter(), first.iter());
        if mine.left != theirs.left || mine.next() != theirs.next() {
            return false;
        }
        for (l, f) in mine.zip(theirs) {
            if l.name != f.name {
                return false;
            }
            put_key_part(key, l.value);
        }
        true
    }

    /// The length of [`Self::write_values_key`]'s key for this set, NUL bytes counted once.
    fn values_key_len(&self) -> usize {
        self.iter().skip(1).map(|l| l.value.len() + 2).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.iter().map(|l| Label::new(l.name, l.value)).collect(),
        }
    }

    /// Heap bytes held by this set (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.0.len() + 16
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Lexicographic by (name, value) pairs, as Prometheus orders label sets. Leading labels
    /// whose packed bytes are identical are skipped without comparing strings (sorting
    /// selected series spends most of its time in label sets sharing their first labels).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        let (mut a, mut b) = (self.iter(), other.iter());
        let common = common_prefix(&a.bytes[a.pos..], &b.bytes[b.pos..]);
        let start = a.pos;
        while a.left > 0 && b.left > 0 {
            let mut end = a.pos;
            for _ in 0..2 {
                let len = get_varint(a.bytes, &mut end);
                end += len;
            }
            if end - start > common {
                break;
            }
            // The same bytes at the same offsets on both sides: the same label.
            b.pos += end - a.pos;
            a.pos = end;
            a.left -= 1;
            b.left -= 1;
        }
        a.cmp(b)
    }
}

/// Length of the longest common prefix of two byte strings.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_ne_bytes([
            a[i],
            a[i + 1],
            a[i + 2],
            a[i + 3],
            a[i + 4],
            a[i + 5],
            a[i + 6],
            a[i + 7],
        ]);
        let y = u64::from_ne_bytes([
            b[i],
            b[i + 1],
            b[i + 2],
            b[i + 3],
            b[i + 4],
            b[i + 5],
            b[i + 6],
            b[i + 7],
        ]);
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

impl fmt::Display for Labels {
    /// `{a="1", b="2"}` with Go-style quoting, as Prometheus prints label sets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, label) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", label.name, crate::gofmt::quote(label.value))?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Mutable label set used to build or edit a [`Labels`].
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.labels.binary_search_by(|l| l.name.as_ref().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].value = value.into(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(i, Label::new(name, value)),
        }
        self
    }

    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.set(name, "")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_ref().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_ref())
    }

    /// The pairs set so far, sorted by name.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.labels.iter().map(|l| (&*l.name, &*l.value))
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Empties the builder, keeping its allocation.
    pub fn clear(&mut self) {
        self.labels.clear();
    }

    /// The label set built so far, leaving the builder as it is.
    pub fn to_labels(&self) -> Labels {
        Labels::pack(self.labels.iter().map(|l| (&*l.name, &*l.value)))
    }

    pub fn build(self) -> Labels {
        Labels::pack(self.labels.iter().map(|l| (&*l.name, &*l.value)))
    }
}

impl serde::Serialize for Labels {
    /// A JSON object with keys in label order, as Prometheus writes label sets.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for label in self.iter() {
            map.serialize_entry(label.name, label.value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_empty_values_dropped() {
        let labels = Labels::from_pairs(&[("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(labels.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(labels.get("b"), Some("2"));
        assert_eq!(labels.get("c"), None);
    }

    #[test]
    fn ordering_is_by_name_value_pairs() {
        let a = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs(&[("__name__", "up"), ("job", "b")]);
        let c = Labels::from_pairs(&[("__name__", "up")]);
        assert!(c < a && a < b);
    }

    #[test]
    fn from_sorted_rejects_unsorted_or_empty() {
        assert!(Labels::from_sorted(vec![Label::new("b", "1"), Label::new("a", "1")]).is_none());
        assert!(Labels::from_sorted(vec![Label::new("a", "")]).is_none());
        assert!(Labels::from_sorted(vec![Label::new("a", "1"), Label::new("b", "1")]).is_some());
    }

    use proptest::prelude::*;

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{1,200}", 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn packed_round_trip_and_order(a in pairs(), b in pairs()) {
            let la = Labels::from_pairs(&a);
            let lb = Labels::from_pairs(&b);
            let back: Vec<(String, String)> = la.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(la.len(), a.len());
            prop_assert_eq!(la.cmp(&lb), a.cmp(&b));
            prop_assert_eq!(la == lb, a == b);
            for (n, v) in &a {
                prop_assert_eq!(la.get(n), Some(v.as_str()));
            }
        }

        /// Label sets sharing leading labels (the case the byte-prefix skip handles) order
        /// as their (name, value) pairs do, including lengths that cross varint sizes.
        #[test]
        fn order_with_shared_prefixes(base in pairs(), keep in 0usize..9, tail in pairs(),
                                      long in proptest::option::of("[a-c]{120,140}")) {
            let mut a = base.clone();
            if let Some(l) = &long
                && a.last().is_none_or(|(last, _)| last.as_str() < "zzzzzzz")
            {
                a.push(("zzzzzzz".to_string(), l.clone()));
            }
            let mut b: Vec<(String, String)> = base.into_iter().take(keep).collect();
            for (n, v) in tail {
                if b.last().is_none_or(|(last, _)| *last < n) {
                    b.push((n, v));
                }
            }
            let (la, lb) = (Labels::from_pairs(&a), Labels::from_pairs(&b));
            prop_assert_eq!(la.cmp(&lb), a.cmp(&b));
            prop_assert_eq!(lb.cmp(&la), b.cmp(&a));
            prop_assert_eq!(la.cmp(&la.clone()), std::cmp::Ordering::Equal);
            prop_assert_eq!(la.order_key().cmp(&lb.order_key()), a.cmp(&b));
        }

        /// Order keys order as the label sets, also with NUL bytes and prefixes of each other.
        #[test]
        fn order_keys_order_like_labels(a in proptest::collection::btree_map("[a\\x00b]{1,3}", "[a\\x00b]{1,3}", 0..4),
                                        b in proptest::collection::btree_map("[a\\x00b]{1,3}", "[a\\x00b]{1,3}", 0..4)) {
            let a: Vec<(String, String)> = a.into_iter().collect();
            let b: Vec<(String, String)> = b.into_iter().collect();
            let (la, lb) = (Labels::from_pairs(&a), Labels::from_pairs(&b));
            prop_assert_eq!(la.order_key().cmp(&lb.order_key()), la.cmp(&lb));
        }

        /// `sort_by_labels` orders as sorting by the sets does, stably.
        #[test]
        fn sort_by_labels_is_a_stable_label_sort(sets in proptest::collection::vec(
            proptest::collection::btree_map("[ab\\x00]{1,2}", "[ab\\x00]{1,2}", 0..3), 0..30)) {
            let mut items: Vec<(Labels, usize)> = sets
                .iter()
                .enumerate()
                .map(|(i, m)| (Labels::from_pairs(&m.iter().collect::<Vec<_>>()), i))
                .collect();
            let mut want = items.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            sort_by_labels(&mut items, |x| &x.0);
            prop_assert_eq!(items, want);
        }

        /// The same when every set has the same names and first label (keys of the other
        /// values only), and when the first labels or the later names differ (whole keys).
        #[test]
        fn sort_by_labels_with_shared_names_and_first_label(values in proptest::collection::vec(
            (0..3u8, proptest::bool::ANY, "[ab\\x00]{1,2}", "[ab\\x00]{1,2}"), 0..30),
            shared_first in proptest::bool::ANY, vary_names in proptest::bool::ANY) {
            let mut items: Vec<(Labels, usize)> = values
                .iter()
                .enumerate()
                .map(|(i, (first, other_name, b, c))| {
                    let first = if shared_first { "m".to_string() } else { first.to_string() };
                    let b_name = if vary_names && *other_name { "c" } else { "b" };
                    (Labels::from_pairs(&[("__name__", first), (b_name, b.clone()), ("d\0", c.clone())]), i)
                })
                .collect();
            let mut want = items.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            sort_by_labels(&mut items, |x| &x.0);
            prop_assert_eq!(items, want);
        }

        /// `retain` keeps exactly the accepted labels, as rebuilding the set would.
        #[test]
        fn retain_matches_rebuilding(pairs in proptest::collection::btree_map("[a-d_]{1,3}", "[x-z\u{e9}]{1,200}", 0..8),
                                     drop in proptest::collection::vec("[a-d_]{1,3}", 0..4)) {
            let labels = Labels::from_pairs(&pairs.iter().collect::<Vec<_>>());
            let kept: Vec<(&String, &String)> =
                pairs.iter().filter(|(n, _)| !drop.contains(n)).collect();
            let got = labels.retain(|n| !drop.iter().any(|d| d == n));
            prop_assert_eq!(&got, &Labels::from_pairs(&kept));
            prop_assert_eq!(got.len(), kept.len());
            let keep = |n: &str| !drop.iter().any(|d| d == n);
            prop_assert!(labels.retained_eq(keep, &got));
            prop_assert_eq!(labels.retained_hash(keep), got.retained_hash(|_| true));
            // Against other sets: equal exactly when the kept labels are.
            for other in [&labels, &Labels::empty(), &Labels::from_pairs(&[("a", "x")])] {
                prop_assert_eq!(labels.retained_eq(keep, other), &got == other);
            }
        }
    }
}
