use super::*;
use argus_model::stale_nan;
use proptest::prelude::*;

fn labels_strategy() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,12}", 0..6).prop_map(|m| {
        let pairs: Vec<(String, String)> = m.into_iter().collect();
        Labels::from_pairs(&pairs)
    })
}

fn record_strategy() -> impl Strategy<Value = Record> {
    prop_oneof![
        proptest::collection::vec((any::<u64>(), labels_strategy()), 0..10)
            .prop_map(Record::Series),
        proptest::collection::vec(
            (
                any::<u64>(),
                any::<i64>(),
                prop_oneof![any::<f64>(), Just(stale_nan())]
            ),
            0..50
        )
        .prop_map(|v| Record::Samples(
            v.into_iter()
                .map(|(series_ref, t, v)| RefSample { series_ref, t, v })
                .collect()
        )),
        proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..10).prop_map(
            |v| Record::Tombstones(
                v.into_iter()
                    .map(|(series_ref, mint, maxt)| Tombstone {
                        series_ref,
                        mint,
                        maxt
                    })
                    .collect()
            )
        ),
        (
            any::<u64>(),
            any::<(i64, i64, u64)>(),
            proptest::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(
                |(series_ref, (min_time, max_time, last_value_bits), bytes)| Record::Chunk {
                    series_ref,
                    meta: ChunkRecordMeta {
                        min_time,
                        max_time,
                        last_value_bits
                    },
                    bytes
                }
            ),
        proptest::collection::vec(
            (
                any::<u64>(),
                any::<i64>(),
                any::<i32>(),
                proptest::collection::vec((any::<i32>(), -1e9..1e9f64), 0..6),
                proptest::collection::vec(-1e6..1e6f64, 0..4),
                0u8..4,
            ),
            0..8
        )
        .prop_map(|v| Record::Histograms(
            v.into_iter()
                .map(|(series_ref, t, schema, buckets, custom, hint)| {
                    let mut positive = buckets;
                    positive.sort_by_key(|b| b.0);
                    positive.dedup_by_key(|b| b.0);
                    RefHistogram {
                        series_ref,
                        t,
                        h: argus_model::FloatHistogram {
                            hint: [
                                argus_model::CounterResetHint::Unknown,
                                argus_model::CounterResetHint::Reset,
                                argus_model::CounterResetHint::NotReset,
                                argus_model::CounterResetHint::Gauge,
                            ][hint as usize],
                            schema,
                            zero_threshold: 0.25,
                            zero_count: 3.0,
                            count: 7.5,
                            sum: -1.0,
                            negative: positive
                                .iter()
                                .rev()
                                .map(|b| (b.0 / 2, b.1))
                                .take(1)
                                .collect(),
                            positive,
                            custom_values: custom.into(),
                        },
                    }
                })
                .collect()
        )),
    ]
}

/// Record equality with float bits compared exactly (NaN payloads matter).
fn same(a: &Record, b: &Record) -> bool {
    match (a, b) {
        (Record::Samples(x), Record::Samples(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| {
                    p.series_ref == q.series_ref && p.t == q.t && p.v.to_bits() == q.v.to_bits()
                })
        }
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn records_round_trip(record in record_strategy()) {
        let mut buf = Vec::new();
        record.encode(&mut buf);
        let decoded = Record::decode(&buf).unwrap();
        prop_assert!(same(&record, &decoded), "{record:?} != {decoded:?}");
    }

    #[test]
    fn garbage_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Record::decode(&bytes);
    }
}

fn samples_record(from: i64, to: i64) -> Vec<u8> {
    let samples: Vec<RefSample> = (from..to)
        .map(|t| RefSample {
            series_ref: 1,
            t,
            v: t as f64,
        })
        .collect();
    let mut buf = Vec::new();
    encode_samples(&mut buf, &samples);
    buf
}

fn replayed_timestamps(dir: &Path) -> (Vec<i64>, ReplayReport) {
    let mut ts = Vec::new();
    let report = replay(dir, |r| {
        if let Record::Samples(s) = r {
            ts.extend(s.iter().map(|s| s.t));
        }
    })
    .unwrap();
    (ts, report)
}

#[test]
fn segments_cut_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), 1024).unwrap();
    for i in 0..100 {
        wal.log(&[&samples_record(i * 10, i * 10 + 10)]).unwrap();
    }
    drop(wal);
    assert!(list_segments(dir.path()).unwrap().len() > 5);
    let (ts, report) = replayed_timestamps(dir.path());
    assert_eq!(ts, (0..1000).collect::<Vec<_>>());
    assert!(report.corruptions.is_empty());
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), DEFAULT_SEGMENT_SIZE).unwrap();
    wal.log(&[&samples_record(0, 10)]).unwrap();
    wal.log(&[&samples_record(10, 20)]).unwrap();
    let segment = dir.path().join(segment_name(wal.segment()));
    drop(wal);
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let (ts, report) = replayed_timestamps(dir.path());
    assert_eq!(ts, (0..10).collect::<Vec<_>>());
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].reason, "torn record");
    // The repair left a clean log: a second replay finds nothing wrong and appends continue.
    let (ts, report) = replayed_timestamps(dir.path());
    assert_eq!(ts.len(), 10);
    assert!(report.corruptions.is_empty());
    let mut wal = Wal::open(dir.path(), DEFAULT_SEGMENT_SIZE).unwrap();
    wal.log(&[&samples_record(20, 30)]).unwrap();
    drop(wal);
    assert_eq!(replayed_timestamps(dir.path()).0.len(), 20);
}

#[test]
fn flipped_bytes_drop_everything_after_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), 512).unwrap();
    for i in 0..30 {
        wal.log(&[&samples_record(i * 10, i * 10 + 10)]).unwrap();
    }
    drop(wal);
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() >= 3);
    let damaged = dir.path().join(segment_name(segments[1]));
    let mut bytes = fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes[middle + 1] ^= 0x55;
    fs::write(&damaged, &bytes).unwrap();

    let (ts, report) = replayed_timestamps(dir.path());
    assert_eq!(report.corruptions.len(), 1);
    let c = &report.corruptions[0];
    assert_eq!(c.segment, damaged);
    assert_eq!(c.dropped_segments.len(), segments.len() - 2);
    // Everything before the damage is kept, in order, with no gap.
    assert!(!ts.is_empty());
    assert_eq!(ts, (0..ts.len() as i64).collect::<Vec<_>>());
    assert!(ts.len() < 300);
}

#[test]
fn checkpoint_replaces_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), DEFAULT_SEGMENT_SIZE).unwrap();
    wal.log(&[&samples_record(0, 10)]).unwrap();
    let closed = wal.cut().unwrap();
    wal.log(&[&samples_record(10, 20)]).unwrap();
    let kept = samples_record(5, 10);
    write_checkpoint(dir.path(), closed, std::iter::once(kept.as_slice())).unwrap();
    drop(wal);
    assert!(!dir.path().join(segment_name(closed)).exists());
    let (ts, report) = replayed_timestamps(dir.path());
    assert!(report.corruptions.is_empty());
    assert_eq!(ts, (5..20).collect::<Vec<_>>());
    // A new writer continues after both the checkpoint and the last segment.
    let wal = Wal::open(dir.path(), DEFAULT_SEGMENT_SIZE).unwrap();
    assert!(wal.segment() > closed + 1);
}
