use super::*;

fn head(dir: &tempfile::TempDir) -> Head {
    Head::new(
        HeadOptions {
            chunk_range_ms: 1000 * 1000,
            ooo_window_ms: 0,
        },
        HeadChunkStore::open(&dir.path().join("chunks_head")).unwrap(),
    )
}

#[test]
fn chunks_cut_at_120_samples_and_at_range_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let h = head(&dir);
    let s = h.get_or_create(&Labels::from_pairs(&[("__name__", "x")]));
    for t in 0..300 {
        h.append_now(&s, t, t as f64).unwrap();
    }
    {
        let data = s.data.lock();
        assert_eq!(data.closed.len(), 2);
        assert_eq!(data.open.as_ref().unwrap().num_samples(), 60);
    }
    // Crossing the 1000s boundary cuts a chunk even with few samples in it.
    h.append_now(&s, 999_999, 1.0).unwrap();
    h.append_now(&s, 1_000_000, 2.0).unwrap();
    let data = s.data.lock();
    assert_eq!(data.closed.len(), 3);
    assert_eq!(data.open.as_ref().unwrap().min_time(), 1_000_000);
}

#[test]
fn postings_follow_series_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let h = head(&dir);
    let a = h.get_or_create(&Labels::from_pairs(&[("__name__", "x"), ("job", "a")]));
    h.append_now(&a, 10, 1.0).unwrap();
    let m = [argus_model::Matcher::equal("job", "a")];
    assert_eq!(h.select_refs(&m).len(), 1);
    h.truncate(100);
    assert_eq!(h.num_series(), 0);
    assert!(h.select_refs(&m).is_empty());
    assert!(h.label_values("job").is_empty());
}

#[test]
fn closed_chunks_are_spilled_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let h = head(&dir);
    let s = h.get_or_create(&Labels::from_pairs(&[("__name__", "x")]));
    for t in 0..1000 {
        h.append_now(&s, t, t as f64 * 0.5).unwrap();
    }
    let data = s.data.lock();
    assert!(data.closed.iter().all(|c| c.loc.file > 0));
    let samples = data.samples_before(i64::MIN, i64::MAX, &h.chunks);
    assert_eq!(samples.len(), 1000);
    assert!(
        samples
            .iter()
            .enumerate()
            .all(|(i, (t, v))| *t == i as i64 && *v == i as f64 * 0.5)
    );
}

#[test]
fn per_series_structures_stay_small() {
    // The head holds these per series (and several chunk refs each); growth here shows up
    // directly in resident memory per active series.
    assert!(std::mem::size_of::<ClosedChunk>() <= 24);
    // 200: 192 plus the (boxed, usually empty) native-histogram samples pointer.
    assert!(std::mem::size_of::<MemSeries>() <= 200);
}

/// Every series pays for one `MemSeries` allocation: kept at 168 bytes so that with its
/// `Arc` header it fits glibc's 192-byte chunk (the scrape memory budget counts on it).
#[test]
fn per_series_structs_stay_small() {
    assert!(std::mem::size_of::<MemSeries>() <= 168);
    assert!(std::mem::size_of::<SeriesData>() <= 128);
    // A series without out-of-order samples holds no allocation for them.
    let data = SeriesData::default();
    assert_eq!(data.ooo.capacity(), 0);
    assert_eq!(data.max_time(), None);
}
