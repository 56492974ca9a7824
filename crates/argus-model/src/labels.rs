//! Label sets: sorted by name, cheap to clone (one shared allocation), compared and ordered
//! lexicographically by (name, value) pairs as Prometheus does.

use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

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

/// An immutable, sorted set of labels with unique names and no empty values.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    pub fn empty() -> Self {
        Self::default()
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
        let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
        let non_empty = labels.iter().all(|l| !l.value.is_empty());
        (sorted && non_empty).then(|| Self(labels.into()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_ref())
    }

    /// The metric name, or "" when there is none.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    /// Heap bytes held by this set (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.0)
            + self
                .0
                .iter()
                .map(|l| l.name.len() + l.value.len())
                .sum::<usize>()
    }
}

impl fmt::Display for Labels {
    /// `{a="1", b="2"}` with Go-style quoting, as Prometheus prints label sets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, label) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", label.name, crate::gofmt::quote(&label.value))?;
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

    pub fn build(self) -> Labels {
        Labels(self.labels.into())
    }
}

impl serde::Serialize for Labels {
    /// A JSON object with keys in label order, as Prometheus writes label sets.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for label in self.0.iter() {
            map.serialize_entry(&*label.name, &*label.value)?;
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
}
