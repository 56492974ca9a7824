//! Exemplar storage (`--enable-feature=exemplar-storage`): one circular buffer of a fixed
//! number of exemplars shared by all series, as Prometheus's `CircularExemplarStorage`. Each
//! series' exemplars form a linked list through the buffer from its oldest to its newest;
//! when the buffer is full the oldest exemplar overall is overwritten.
//!
//! Per series, exemplars must arrive in time order: an exemplar equal to the newest one is a
//! duplicate (ignored), one not newer than it is out of order (refused and counted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use argus_model::{Labels, Matcher};
use parking_lot::Mutex;

/// The most UTF-8 characters an exemplar's label names and values may hold together.
pub const MAX_LABELS_RUNES: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub ts: i64,
}

/// Why an exemplar is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExemplarError {
    /// The same exemplar as the series' newest one: nothing to do.
    Duplicate,
    OutOfOrder,
    LabelLength,
}

impl std::fmt::Display for ExemplarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "duplicate exemplar",
            Self::OutOfOrder => "out of order exemplar",
            Self::LabelLength => {
                "label length for exemplar exceeds maximum of 128 UTF-8 characters"
            }
        })
    }
}

struct Slot {
    series_ref: u64,
    exemplar: Exemplar,
    /// The next (newer) slot of the same series.
    next: Option<usize>,
}

struct SeriesEntry {
    labels: Labels,
    oldest: usize,
    newest: usize,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Slot>>,
    /// Where the next exemplar goes.
    next: usize,
    index: HashMap<u64, SeriesEntry>,
    stored: usize,
}

/// The shared exemplar buffer. A capacity of 0 stores nothing.
pub struct ExemplarStorage {
    inner: Mutex<Inner>,
    capacity: usize,
    pub appended: AtomicU64,
    pub out_of_order: AtomicU64,
    /// Timestamp (ms) of the newest exemplar stored.
    pub last_ts: AtomicU64,
}

impl ExemplarStorage {
    pub fn new(capacity: usize) -> Self {
        let mut inner = Inner::default();
        inner.slots.resize_with(capacity, || None);
        Self {
            inner: Mutex::new(inner),
            capacity,
            appended: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            last_ts: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Checks an exemplar against the series' newest stored one (and `pending`, the newest
    /// one queued but not yet stored).
    pub fn validate(
        &self,
        series_ref: u64,
        e: &Exemplar,
        pending: Option<&Exemplar>,
    ) -> Result<(), ExemplarError> {
        let runes: usize = e
            .labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum();
        if runes > MAX_LABELS_RUNES {
            return Err(ExemplarError::LabelLength);
        }
        let inner = self.inner.lock();
        let stored = inner
            .index
            .get(&series_ref)
            .and_then(|s| inner.slots[s.newest].as_ref())
            .map(|slot| &slot.exemplar);
        let newest = match (stored, pending) {
            (Some(a), Some(b)) => Some(if b.ts >= a.ts { b } else { a }),
            (a, b) => a.or(b),
        };
        if let Some(newest) = newest {
            if newest.ts == e.ts
                && newest.labels == e.labels
                && newest.value.to_bits() == e.value.to_bits()
            {
                return Err(ExemplarError::Duplicate);
            }
            if e.ts <= newest.ts {
                return Err(ExemplarError::OutOfOrder);
            }
        }
        Ok(())
    }

    /// Stores a validated exemplar of the series `series_ref` with labels `series`,
    /// overwriting the oldest exemplar when full.
    pub fn add(&self, series_ref: u64, series: &Labels, e: Exemplar) {
        if self.capacity == 0 {
            return;
        }
        let ts = e.ts;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let at = inner.next;
        // Evict what the slot holds.
        if let Some(old) = inner.slots[at].take() {
            inner.stored -= 1;
            let drop_series = match inner.index.get_mut(&old.series_ref) {
                Some(entry) => match old.next {
                    Some(next) => {
                        entry.oldest = next;
                        false
                    }
                    None => true,
                },
                None => false,
            };
            if drop_series {
                inner.index.remove(&old.series_ref);
            }
        }
        match inner.index.get_mut(&series_ref) {
            Some(entry) => {
                if let Some(prev) = inner.slots[entry.newest].as_mut() {
                    prev.next = Some(at);
                }
                entry.newest = at;
            }
            None => {
                inner.index.insert(
                    series_ref,
                    SeriesEntry {
                        labels: series.clone(),
                        oldest: at,
                        newest: at,
                    },
                );
            }
        }
        inner.slots[at] = Some(Slot {
            series_ref,
            exemplar: e,
            next: None,
        });
        inner.stored += 1;
        inner.next = (at + 1) % self.capacity;
        drop(guard);
        self.appended.fetch_add(1, Ordering::Relaxed);
        self.last_ts.fetch_max(ts.max(0) as u64, Ordering::Relaxed);
    }

    /// How many exemplars are stored, and for how many series.
    pub fn stats(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.stored, inner.index.len())
    }

    /// A series' exemplars, oldest first.
    pub fn series_exemplars(&self, series_ref: u64) -> Vec<Exemplar> {
        let inner = self.inner.lock();
        match inner.index.get(&series_ref) {
            Some(entry) => chain(&inner, entry.oldest, i64::MIN, i64::MAX),
            None => Vec::new(),
        }
    }

    /// Exemplars in `[start, end]` of the series matching any of `matcher_sets`, per series
    /// and sorted by series labels (Prometheus's `Select`).
    pub fn select(
        &self,
        start: i64,
        end: i64,
        matcher_sets: &[Vec<Matcher>],
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let inner = self.inner.lock();
        let mut out: Vec<(Labels, Vec<Exemplar>)> = inner
            .index
            .values()
            .filter(|entry| {
                matcher_sets.iter().any(|set| {
                    set.iter()
                        .all(|m| m.matches(entry.labels.get(&m.name).unwrap_or("")))
                })
            })
            .filter_map(|entry| {
                let found = chain(&inner, entry.oldest, start, end);
                (!found.is_empty()).then(|| (entry.labels.clone(), found))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The exemplars of one series' chain within `[start, end]`.
fn chain(inner: &Inner, mut at: usize, start: i64, end: i64) -> Vec<Exemplar> {
    let mut out = Vec::new();
    // Bounded by the buffer size even if a chain were ever broken.
    for _ in 0..inner.slots.len() {
        let Some(slot) = inner.slots[at].as_ref() else {
            break;
        };
        let e = &slot.exemplar;
        if e.ts > end {
            break;
        }
        if e.ts >= start {
            out.push(e.clone());
        }
        match slot.next {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ts: i64, value: f64, trace: &str) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs(&[("trace_id", trace)]),
            value,
            ts,
        }
    }

    fn series(name: &str) -> Labels {
        Labels::from_pairs(&[("__name__", name)])
    }

    #[test]
    fn a_full_buffer_overwrites_the_oldest_exemplars() {
        let s = ExemplarStorage::new(3);
        s.add(1, &series("a"), ex(1, 1.0, "x"));
        s.add(2, &series("b"), ex(2, 2.0, "y"));
        s.add(1, &series("a"), ex(3, 3.0, "z"));
        assert_eq!(s.stats(), (3, 2));
        // Overwrites a@1, then b@2 (b leaves the index).
        s.add(1, &series("a"), ex(4, 4.0, "w"));
        s.add(1, &series("a"), ex(5, 5.0, "v"));
        assert_eq!(s.stats(), (3, 1));
        let ts: Vec<i64> = s.series_exemplars(1).iter().map(|e| e.ts).collect();
        assert_eq!(ts, [3, 4, 5]);
        assert!(s.series_exemplars(2).is_empty());
        assert_eq!(s.appended.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn validation_refuses_duplicates_out_of_order_and_long_labels() {
        let s = ExemplarStorage::new(10);
        s.add(1, &series("a"), ex(10, 1.0, "x"));
        assert_eq!(
            s.validate(1, &ex(10, 1.0, "x"), None),
            Err(ExemplarError::Duplicate)
        );
        assert_eq!(
            s.validate(1, &ex(10, 2.0, "x"), None),
            Err(ExemplarError::OutOfOrder)
        );
        assert_eq!(
            s.validate(1, &ex(9, 1.0, "x"), None),
            Err(ExemplarError::OutOfOrder)
        );
        assert_eq!(s.validate(1, &ex(11, 1.0, "x"), None), Ok(()));
        // A queued exemplar counts as the newest.
        assert_eq!(
            s.validate(1, &ex(11, 1.0, "x"), Some(&ex(12, 1.0, "q"))),
            Err(ExemplarError::OutOfOrder)
        );
        assert_eq!(s.validate(2, &ex(1, 1.0, "x"), None), Ok(()));
        let long = "x".repeat(MAX_LABELS_RUNES - "trace_id".len() + 1);
        assert_eq!(
            s.validate(2, &ex(1, 1.0, &long), None),
            Err(ExemplarError::LabelLength)
        );
        let fits = "é".repeat(MAX_LABELS_RUNES - "trace_id".len());
        assert_eq!(s.validate(2, &ex(1, 1.0, &fits), None), Ok(()));
    }

    #[test]
    fn select_filters_by_matchers_and_time() {
        let s = ExemplarStorage::new(10);
        let a = Labels::from_pairs(&[("__name__", "m"), ("job", "a")]);
        let b = Labels::from_pairs(&[("__name__", "m"), ("job", "b")]);
        s.add(1, &b, ex(1, 1.0, "b1"));
        s.add(2, &a, ex(2, 2.0, "a1"));
        s.add(1, &b, ex(3, 3.0, "b2"));
        s.add(2, &a, ex(4, 4.0, "a2"));
        let name = vec![Matcher::equal("__name__", "m")];
        let got = s.select(2, 3, std::slice::from_ref(&name));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, a);
        assert_eq!(got[0].1, [ex(2, 2.0, "a1")]);
        assert_eq!(got[1].1, [ex(3, 3.0, "b2")]);
        let only_b = vec![Matcher::equal("job", "b")];
        let got = s.select(i64::MIN, i64::MAX, &[only_b]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 2);
        // Disabled storage keeps nothing.
        let off = ExemplarStorage::new(0);
        off.add(1, &a, ex(1, 1.0, "x"));
        assert_eq!(off.stats(), (0, 0));
    }
}
