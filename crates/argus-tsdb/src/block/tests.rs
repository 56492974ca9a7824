use super::*;
use argus_model::MatchOp;
use proptest::prelude::*;

fn series_strategy() -> impl Strategy<Value = Vec<(Labels, Vec<(i64, f64)>)>> {
    proptest::collection::btree_map(
        proptest::collection::btree_map("[a-c]{1,2}", "[a-z0-9]{1,3}", 1..4),
        (
            0i64..1000,
            proptest::collection::vec((1i64..100_000, any::<f64>()), 1..300),
        ),
        1..20,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(pairs, (start, deltas))| {
                let pairs: Vec<(String, String)> = pairs.into_iter().collect();
                let mut t = start;
                let samples = deltas
                    .into_iter()
                    .map(|(d, v)| {
                        t += d;
                        (t, v)
                    })
                    .collect();
                (Labels::from_pairs(&pairs), samples)
            })
            .collect::<std::collections::BTreeMap<Labels, Vec<(i64, f64)>>>()
            .into_iter()
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn block_round_trip(series in series_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let meta = write_block(dir.path(), 0, i64::MAX, 1, vec![], series.clone().into_iter().map(|(l, s)| (l, s, Vec::new())))
            .unwrap()
            .unwrap();
        let block = Block::open(&dir.path().join(&meta.ulid)).unwrap();
        prop_assert_eq!(block.meta.stats.num_series as usize, series.len());
        let all = block.select(i64::MIN, i64::MAX, &[Matcher::new(MatchOp::RegexMatch, "__name__", ".*").unwrap()]);
        prop_assert_eq!(all.len(), series.len());
        for ((labels, samples), got) in series.iter().zip(&all) {
            prop_assert_eq!(labels, &got.labels);
            let decoded: Vec<(i64, u64)> = got.samples(i64::MIN, i64::MAX).iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
            let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            prop_assert_eq!(decoded, want);
        }
        // Postings agree with a brute-force scan for every label pair.
        for (labels, _) in &series {
            for l in labels.iter() {
                let m = [Matcher::new(MatchOp::Equal, l.name, l.value).unwrap()];
                let got: Vec<Labels> = block.select(i64::MIN, i64::MAX, &m).into_iter().map(|s| s.labels).collect();
                let want: Vec<Labels> = series.iter().filter(|(ls, _)| ls.get(l.name) == Some(&*l.value)).map(|(ls, _)| ls.clone()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn corrupt_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let series = vec![(
        Labels::from_pairs(&[("__name__", "a")]),
        vec![(1, 1.0), (2, 2.0)],
    )];
    let meta = write_block(
        dir.path(),
        0,
        10,
        1,
        vec![],
        series.into_iter().map(|(l, s)| (l, s, Vec::new())),
    )
    .unwrap()
    .unwrap();
    let index = dir.path().join(&meta.ulid).join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    let err = Block::open(&dir.path().join(&meta.ulid)).err().unwrap();
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// A selective equality matcher next to a metric name with many series is answered by
/// checking the few candidates' labels instead of reading the name's long postings list; the
/// answer is the same as a brute-force scan, for every kind of matcher alongside.
#[test]
fn selective_matchers_check_candidates() {
    let series: Vec<(Labels, Vec<(i64, f64)>)> = {
        let mut s: Vec<(Labels, Vec<(i64, f64)>)> = (0..2000)
            .map(|i| {
                let inst = format!("t{:04}", i / 10);
                let shard = (i % 10).to_string();
                let mut pairs = vec![
                    ("__name__", "m"),
                    ("instance", inst.as_str()),
                    ("shard", shard.as_str()),
                ];
                if i % 3 == 0 {
                    pairs.push(("extra", "x"));
                }
                (Labels::from_pairs(&pairs), vec![(1000, i as f64)])
            })
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    };
    let dir = tempfile::tempdir().unwrap();
    let meta = write_block(
        dir.path(),
        0,
        i64::MAX,
        1,
        vec![],
        series.clone().into_iter().map(|(l, s)| (l, s, Vec::new())),
    )
    .unwrap()
    .unwrap();
    let block = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    let name = Matcher::new(MatchOp::Equal, "__name__", "m").unwrap();
    let inst = Matcher::new(MatchOp::Equal, "instance", "t0042").unwrap();
    assert_eq!(block.postings_len("__name__", "m"), 2000);
    assert_eq!(block.postings_len("instance", "t0042"), 10);
    assert_eq!(block.postings_len("instance", "nope"), 0);
    let cases: Vec<Vec<Matcher>> = vec![
        vec![name.clone(), inst.clone()],
        vec![
            name.clone(),
            inst.clone(),
            Matcher::new(MatchOp::NotEqual, "shard", "3").unwrap(),
        ],
        vec![
            name.clone(),
            inst.clone(),
            Matcher::new(MatchOp::Equal, "extra", "").unwrap(),
        ],
        vec![
            name.clone(),
            inst.clone(),
            Matcher::new(MatchOp::RegexMatch, "shard", "[0-4]").unwrap(),
        ],
        vec![
            name.clone(),
            Matcher::new(MatchOp::Equal, "instance", "nope").unwrap(),
        ],
    ];
    for matchers in cases {
        let got: Vec<Labels> = block
            .select(i64::MIN, i64::MAX, &matchers)
            .into_iter()
            .map(|s| s.labels)
            .collect();
        let want: Vec<Labels> = series
            .iter()
            .filter(|(l, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .map(|(l, _)| l.clone())
            .collect();
        assert_eq!(got, want, "{matchers:?}");
    }
    // The candidate path itself answers (it is what the point lookups above took).
    assert_eq!(
        crate::postings::select_by_candidates(&block, &[name.clone(), inst.clone()])
            .map(|ids| ids.len()),
        Some(10)
    );
    // Not when the lists are of similar length.
    let shard = Matcher::new(MatchOp::Equal, "shard", "3").unwrap();
    assert_eq!(
        crate::postings::select_by_candidates(&block, &[name, shard]),
        None
    );
}
