use super::*;
use argus_model::{MatchOp, stale_nan};

const H: i64 = 3600 * 1000;

fn opts() -> Options {
    Options {
        retention_ms: 0,
        ..Options::default()
    }
}

fn lbl(name: &str, instance: &str) -> Labels {
    Labels::from_pairs(&[("__name__", name), ("instance", instance)])
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value).unwrap()
}

/// Appends `n` samples at `step` from `start` for each series, one commit per timestamp.
fn fill(db: &Db, series: &[Labels], start: i64, step: i64, n: i64) {
    for i in 0..n {
        let mut app = db.appender();
        for (k, l) in series.iter().enumerate() {
            app.append(l, start + i * step, (i * 10 + k as i64) as f64)
                .unwrap();
        }
        app.commit().unwrap();
    }
}

fn all_samples(db: &Db, m: &[Matcher]) -> Vec<(String, Vec<(i64, u64)>)> {
    db.querier(i64::MIN, i64::MAX)
        .select(m)
        .into_iter()
        .map(|s| {
            let samples = s
                .samples(i64::MIN, i64::MAX)
                .into_iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

#[test]
fn append_query_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let series = vec![lbl("up", "a"), lbl("up", "b"), lbl("other", "a")];
    let before;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        fill(&db, &series, 1000, 15_000, 300);
        let mut app = db.appender();
        app.append(&series[0], 1000 + 300 * 15_000, stale_nan())
            .unwrap();
        app.commit().unwrap();
        before = all_samples(&db, &[eq("__name__", "up")]);
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].1.len(), 301);
        assert_eq!(before[0].1[300].1, argus_model::STALE_NAN_BITS);
        let q = db.querier(i64::MIN, i64::MAX);
        assert_eq!(q.label_values("instance", &[]), vec!["a", "b"]);
        assert_eq!(
            q.label_names(&[eq("__name__", "other")]),
            vec!["__name__", "instance"]
        );
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(all_samples(&db, &[eq("__name__", "up")]), before);
    assert_eq!(db.head.num_series(), 3);
}

#[test]
fn rejects_like_prometheus_and_commits_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let l = lbl("m", "a");
    let mut app = db.appender();
    app.append(&l, 10_000, 1.0).unwrap();
    app.append(&l, 20_000, 2.0).unwrap();
    assert!(matches!(
        app.append(&l, 15_000, 1.5),
        Err(Error::OutOfOrderSample)
    ));
    assert!(matches!(
        app.append(&l, 20_000, 9.0),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    app.append(&l, 20_000, 2.0).unwrap(); // exact duplicate: accepted, ignored
    app.commit().unwrap();
    assert_eq!(all_samples(&db, &[eq("__name__", "m")])[0].1.len(), 2);

    // A rolled-back appender leaves nothing behind.
    let mut app = db.appender();
    app.append(&l, 30_000, 3.0).unwrap();
    app.rollback();
    assert_eq!(all_samples(&db, &[eq("__name__", "m")])[0].1.len(), 2);

    // Far behind the head's newest sample: out of bounds.
    let mut app = db.appender();
    app.append(&lbl("m", "b"), 10 * H, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = db.appender();
    assert!(matches!(
        app.append(&lbl("m", "c"), 0, 1.0),
        Err(Error::OutOfBounds)
    ));
}

#[test]
fn out_of_order_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            ooo_window_ms: 30 * 60 * 1000,
            ..opts()
        },
    )
    .unwrap();
    let l = lbl("m", "a");
    fill(&db, std::slice::from_ref(&l), 0, 60_000, 60);
    let mut app = db.appender();
    app.append(&l, 40 * 60_000 + 30_000, 7.0).unwrap();
    assert!(matches!(
        app.append(&l, 60_000, 1.0),
        Err(Error::TooOldSample)
    ));
    app.commit().unwrap();
    let samples = &all_samples(&db, &[eq("__name__", "m")])[0].1;
    assert_eq!(samples.len(), 61);
    assert!(samples.windows(2).all(|w| w[0].0 < w[1].0));
    drop(db);
    let db = Db::open(
        dir.path(),
        Options {
            ooo_window_ms: 30 * 60 * 1000,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(all_samples(&db, &[eq("__name__", "m")])[0].1.len(), 61);
}

#[test]
fn compaction_blocks_restart_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..20).map(|i| lbl("c", &format!("i{i}"))).collect();
    let step = 60_000;
    let n = 8 * 60; // 8 hours
    let before;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        fill(&db, &series, 0, step, n);
        before = all_samples(&db, &[eq("__name__", "c")]);
        assert!(db.compact().unwrap());
        // 8h of data with 2h blocks: blocks up to 6h, the rest in the head.
        let blocks = db.blocks();
        assert!(!blocks.is_empty());
        assert!(db.head.min_time() >= blocks.iter().map(|b| b.meta.max_time).max().unwrap());
        let stats: u64 = blocks.iter().map(|b| b.meta.stats.num_samples).sum();
        assert!(stats > 0);
        assert_eq!(all_samples(&db, &[eq("__name__", "c")]), before);
        // The WAL was checkpointed: old segments are gone.
        assert!(
            wal::last_checkpoint(&dir.path().join("wal"))
                .unwrap()
                .is_some()
        );
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(all_samples(&db, &[eq("__name__", "c")]), before);
    // A query range that only touches blocks.
    let q = db.querier(0, H - 1);
    let s = q.select(&[eq("instance", "i3")]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].samples(0, H - 1).len(), 60);
    drop(q);
    drop(db);

    // Retention of 1h relative to the newest data (8h): the merged [0, 6h) block goes.
    let db = Db::open(
        dir.path(),
        Options {
            retention_ms: H,
            ..opts()
        },
    )
    .unwrap();
    assert!(!db.blocks().is_empty());
    db.compact().unwrap();
    assert!(db.blocks().is_empty());
    assert!(db.stats.time_retentions.load(Ordering::Relaxed) > 0);
    let samples = &all_samples(&db, &[eq("instance", "i0")])[0].1;
    assert!(samples[0].0 >= 6 * H);
    assert_eq!(samples.len(), 2 * 60);
}

#[test]
fn block_compaction_merges_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..5).map(|i| lbl("c", &format!("i{i}"))).collect();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, &series, 0, 5 * 60_000, 12 * 12 + 1); // 12h at 5m
    let before = all_samples(&db, &[eq("__name__", "c")]);
    db.compact().unwrap();
    let blocks = db.blocks();
    assert!(
        blocks.iter().any(|b| b.meta.compaction.level > 1),
        "no merged block"
    );
    assert!(
        blocks
            .windows(2)
            .all(|w| w[0].meta.max_time <= w[1].meta.min_time)
    );
    assert_eq!(all_samples(&db, &[eq("__name__", "c")]), before);
}

#[test]
fn snapshot_serves_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..10).map(|i| lbl("s", &format!("i{i}"))).collect();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, &series, 0, 60_000, 5 * 60);
    db.compact().unwrap();
    let before = all_samples(&db, &[eq("__name__", "s")]);
    let name = db.snapshot(false).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let snap_dir = dir.path().join("snapshots").join(&name);
    for entry in std::fs::read_dir(&snap_dir).unwrap() {
        let entry = entry.unwrap();
        crate::fsutil::hard_link_tree(&entry.path(), &copy.path().join(entry.file_name())).unwrap();
    }
    let restored = Db::open(copy.path(), opts()).unwrap();
    assert_eq!(all_samples(&restored, &[eq("__name__", "s")]), before);
}

#[test]
fn delete_series_and_clean_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let series = vec![lbl("d", "a"), lbl("d", "b")];
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, &series, 0, 60_000, 5 * 60);
    db.compact().unwrap();
    assert!(!db.blocks().is_empty());
    db.delete_series(&[eq("instance", "a")], 30 * 60_000, 4 * H)
        .unwrap();
    let check = |db: &Db| {
        let s = all_samples(db, &[eq("instance", "a")]);
        let ts: Vec<i64> = s[0].1.iter().map(|x| x.0).collect();
        assert!(
            ts.iter().all(|&t| !(30 * 60_000..=4 * H).contains(&t)),
            "deleted data visible"
        );
        assert_eq!(ts.len(), 30 + 59);
        assert_eq!(all_samples(db, &[eq("instance", "b")])[0].1.len(), 300);
    };
    check(&db);
    db.clean_tombstones().unwrap();
    assert!(db.blocks().iter().all(|b| !b.has_tombstones()));
    check(&db);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    check(&db);
}

#[test]
fn directory_lock_refuses_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), opts()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn shutdown_checkpoint_restores_head_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..5).map(|i| lbl("r", &format!("i{i}"))).collect();
    let before;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        fill(&db, &series, 0, 15_000, 500);
        before = all_samples(&db, &[eq("__name__", "r")]);
        db.close().unwrap();
    }
    // Only the checkpoint and an empty segment remain: replay restores chunks.
    let wal_dir = dir.path().join("wal");
    assert!(wal::last_checkpoint(&wal_dir).unwrap().is_some());
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(all_samples(&db, &[eq("__name__", "r")]), before);
    // The newest sample is known: an exact duplicate is accepted, a changed value refused,
    // and appends continue after it.
    let last_t = 499 * 15_000;
    let mut app = db.appender();
    app.append(&series[0], last_t, (499 * 10) as f64).unwrap();
    assert!(matches!(
        app.append(&series[0], last_t, -1.0),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    app.append(&series[0], last_t + 15_000, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(all_samples(&db, &[eq("instance", "i0")])[0].1.len(), 501);
}

/// `select_last` (the instant-selector read) agrees with the newest sample of a full select,
/// with out-of-order samples, deletions, a stale marker and a restart (WAL replay).
#[test]
fn select_last_agrees_with_full_select() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        ooo_window_ms: H,
        ..opts()
    };
    let series: Vec<Labels> = (0..6).map(|i| lbl("m", &i.to_string())).collect();
    let check = |db: &Db| {
        for (mint, maxt) in [
            (0, 10 * H),
            (H - 300_000, H),
            (2 * H - 300_000, 2 * H + 15_000),
            (30 * 60_000, 31 * 60_000),
            (5 * H, 6 * H),
            (2 * H - 60_000, 3 * H),
            (4 * H - 300_000, 4 * H),
            (4 * H + 1, 5 * H),
        ] {
            let q = db.querier(mint, maxt);
            let fast: Vec<(Labels, i64, u64)> = q
                .select_last(&[eq("__name__", "m")])
                .into_iter()
                .map(|(l, s)| (l, s.timestamp_ms, s.value.to_bits()))
                .collect();
            let full: Vec<(Labels, i64, u64)> = q
                .select(&[eq("__name__", "m")])
                .into_iter()
                .filter_map(|s| {
                    let last = s.samples(mint, maxt).pop()?;
                    Some((s.labels, last.timestamp_ms, last.value.to_bits()))
                })
                .collect();
            assert_eq!(fast, full, "[{mint}, {maxt}]");
        }
    };
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        fill(&db, &series, 0, 15_000, 2 * 60 * 4); // 2h at 15s
        // Out-of-order samples into series 1, a stale marker on series 2, a deletion on 3.
        let mut app = db.appender();
        app.append(&series[1], 2 * H - 10 * 60_000 + 7_500, 99.0)
            .unwrap();
        app.append(&series[2], 2 * H + 1_000, stale_nan()).unwrap();
        app.commit().unwrap();
        db.delete_series(&[eq("instance", "3")], H, 3 * H).unwrap();
        check(&db);
    }
    let db = Db::open(dir.path(), o).unwrap();
    check(&db);
    // Two more hours, then the first block is cut: queries spanning block and head.
    fill(&db, &series, 2 * H + 15_000, 15_000, 2 * 60 * 4);
    assert!(db.compact().unwrap());
    check(&db);
}

/// `select_last_iter` hands series over in label order when asked, else in the order the
/// head holds them (here: created in reverse label order), with the same samples either way.
#[test]
fn select_last_iter_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let series: Vec<Labels> = (0..5).rev().map(|i| lbl("m", &i.to_string())).collect();
    fill(&db, &series, 0, 15_000, 8);
    let read = |q: &crate::Querier<'_>, ordered: bool| -> Vec<(String, i64, u64)> {
        q.select_last_iter(&[eq("__name__", "m")], ordered)
            .map(|(l, s, _)| {
                let s = s.unwrap();
                (
                    l.get("instance").unwrap().to_string(),
                    s.timestamp_ms,
                    s.value.to_bits(),
                )
            })
            .collect()
    };
    let q = db.querier(0, 10 * 15_000);
    let ordered = read(&q, true);
    let unordered = read(&q, false);
    let names = |v: &[(String, i64, u64)]| v.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ordered), ["0", "1", "2", "3", "4"]);
    assert_eq!(names(&unordered), ["4", "3", "2", "1", "0"]);
    let mut sorted = unordered.clone();
    sorted.sort();
    assert_eq!(sorted, ordered);
    assert_eq!(
        ordered[0],
        ("0".to_string(), 7 * 15_000, (70.0 + 4.0f64).to_bits())
    );
}

fn hist(count: f64) -> argus_model::FloatHistogram {
    argus_model::FloatHistogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 1.0,
        count,
        sum: count * 1.5,
        positive: vec![(-2, 1.0), (0, count - 2.0), (3, 0.0)],
        negative: vec![(1, 0.5)],
        ..Default::default()
    }
}

/// Native-histogram samples are logged, queried, restored by WAL replay and by a
/// checkpoint, and refused like floats when out of order or conflicting.
#[test]
fn histograms_survive_replay_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let labels = lbl("latency", "a");
    let select = |db: &Db| -> Vec<(i64, argus_model::FloatHistogram)> {
        db.select_histograms(i64::MIN, i64::MAX, &[eq("__name__", "latency")])
            .into_iter()
            .flat_map(|(_, points)| points.into_iter().map(|(t, h)| (t, (*h).clone())))
            .collect()
    };
    let want: Vec<(i64, argus_model::FloatHistogram)> = (0..5)
        .map(|i| (1000 + i * 15_000, hist(10.0 + i as f64)))
        .collect();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for (t, h) in &want {
            let mut app = db.appender();
            let series = db.head.get_or_create(&labels);
            app.append_histogram_to(series, *t, h.clone()).unwrap();
            app.commit().unwrap();
        }
        // Same time, same value: accepted as a duplicate; different value or older: refused.
        let mut app = db.appender();
        let series = db.head.get_or_create(&labels);
        app.append_histogram_to(series.clone(), want[4].0, want[4].1.clone())
            .unwrap();
        assert!(matches!(
            app.append_histogram_to(series.clone(), want[4].0, hist(99.0)),
            Err(Error::DuplicateSampleForTimestamp)
        ));
        assert!(matches!(
            app.append_histogram_to(series, 0, hist(1.0)),
            Err(Error::OutOfOrderSample)
        ));
        app.commit().unwrap();
        assert_eq!(select(&db), want);
        // Dropped without close: the WAL is replayed.
    }
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(select(&db), want);
        // Closing writes a checkpoint; the next start restores from it.
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(select(&db), want);
    assert!(select(&db).iter().all(|(_, h)| h.custom_values.is_empty()));
}

/// Histograms go into blocks on compaction (and through block merges), are read back from
/// them after a restart, and honour deletions there.
#[test]
fn histograms_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let floats = lbl("c", "f");
    let hists = lbl("latency", "h");
    let step = 60_000;
    let n = 8 * 60;
    let select = |db: &Db, mint: i64, maxt: i64| -> Vec<(i64, f64)> {
        db.select_histograms(mint, maxt, &[eq("__name__", "latency")])
            .into_iter()
            .flat_map(|(_, p)| p.into_iter().map(|(t, h)| (t, h.count)))
            .collect()
    };
    let want: Vec<(i64, f64)> = (0..n).map(|i| (i * step, i as f64 + 2.0)).collect();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for &(t, c) in &want {
            let mut app = db.appender();
            app.append(&floats, t, c).unwrap();
            app.append_histogram_to(db.head.get_or_create(&hists), t, hist(c))
                .unwrap();
            app.commit().unwrap();
        }
        assert!(db.compact().unwrap());
        assert!(!db.blocks().is_empty());
        // The first hours live only in blocks now.
        assert!(db.head.min_time() > 0);
        assert_eq!(select(&db, i64::MIN, i64::MAX), want);
        let in_blocks: u64 = db.blocks().iter().map(|b| b.meta.stats.num_samples).sum();
        assert!(in_blocks > 2 * 6 * 60 - 10, "{in_blocks}");
        // Float series in the same blocks are unaffected.
        let q = db.querier(0, H - 1);
        assert_eq!(
            q.select(&[eq("instance", "f")])[0].samples(0, H - 1).len(),
            60
        );
        assert!(
            q.select(&[eq("instance", "h")])[0]
                .samples(0, H - 1)
                .is_empty()
        );
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(select(&db, i64::MIN, i64::MAX), want);
    assert_eq!(select(&db, 10 * step, 12 * step).len(), 3);
    // Deleting from a block (tombstone) and from the head.
    db.delete_series(&[eq("__name__", "latency")], 0, 59 * step)
        .unwrap();
    db.delete_series(&[eq("__name__", "latency")], (n - 1) * step, (n - 1) * step)
        .unwrap();
    let left = select(&db, i64::MIN, i64::MAX);
    assert_eq!(left.len(), want.len() - 61);
    assert_eq!(left[0].0, 60 * step);
    // Rewriting the tombstoned blocks keeps what was not deleted.
    db.clean_tombstones().unwrap();
    assert_eq!(select(&db, i64::MIN, i64::MAX), left);
}

#[test]
fn exemplars_survive_restarts_through_wal_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        max_exemplars: 16,
        ..opts()
    };
    let ex = |ts: i64, trace: &str| crate::exemplars::Exemplar {
        labels: Labels::from_pairs(&[("trace_id", trace)]),
        value: ts as f64,
        ts,
    };
    let series = lbl("requests_total", "a");
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let s = db.head.get_or_create(&series);
        let mut app = db.appender();
        app.append_to(s.clone(), 1000, 1.0).unwrap();
        app.append_exemplar(s.clone(), ex(1000, "t1")).unwrap();
        // Out of order against the queued one: refused and counted.
        assert_eq!(
            app.append_exemplar(s.clone(), ex(900, "t0")),
            Err(ExemplarError::OutOfOrder)
        );
        app.commit().unwrap();
        let mut app = db.appender();
        app.append_to(s.clone(), 2000, 2.0).unwrap();
        app.append_exemplar(s.clone(), ex(2000, "t2")).unwrap();
        // A duplicate of the newest is accepted and dropped.
        app.append_exemplar(s.clone(), ex(2000, "t2")).unwrap();
        app.commit().unwrap();
        assert_eq!(db.exemplars.out_of_order.load(Ordering::Relaxed), 1);
        // Dropped without close: the WAL alone brings them back.
    }
    let want = vec![(series.clone(), vec![ex(1000, "t1"), ex(2000, "t2")])];
    let all = [vec![eq("__name__", "requests_total")]];
    {
        let db = Db::open(dir.path(), options()).unwrap();
        assert_eq!(db.exemplars.select(i64::MIN, i64::MAX, &all), want);
        // Closing writes a checkpoint that drops the segments; exemplars go into it.
        db.close().unwrap();
    }
    assert!(
        wal::last_checkpoint(&dir.path().join("wal"))
            .unwrap()
            .is_some()
    );
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.exemplars.select(i64::MIN, i64::MAX, &all), want);
    // Without exemplar storage none are kept.
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.exemplars.select(i64::MIN, i64::MAX, &all).is_empty());
}

/// `Querier::select_iter` hands over what `select` returns, series by series in the same
/// order, from the head alone and with blocks in range, and can be left early.
#[test]
fn select_iter_hands_over_what_select_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let series: Vec<Labels> = ["c", "a", "b"].iter().map(|i| lbl("m", i)).collect();
    let step = 60_000;
    fill(&db, &series, 0, step, 8 * 60);
    let visited = |q: &Querier<'_>, stop_after: usize, ordered: bool| -> Vec<_> {
        q.select_iter(&[eq("__name__", "m")], ordered)
            .take(stop_after)
            .map(|s| (s.labels.clone(), s.samples(q.mint, q.maxt)))
            .collect()
    };
    let selected = |q: &Querier<'_>| -> Vec<_> {
        q.select(&[eq("__name__", "m")])
            .into_iter()
            .map(|s| (s.labels.clone(), s.samples(q.mint, q.maxt)))
            .collect()
    };
    // Unordered, the head alone hands its series over as created (c, a, b); merged with
    // blocks they come in label order either way.
    let check = |q: &Querier<'_>, unordered: &[usize]| {
        let want = selected(q);
        assert_eq!(want.len(), 3);
        assert!(want.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(want.iter().all(|(_, s)| !s.is_empty()));
        assert_eq!(visited(q, usize::MAX, true), want);
        assert_eq!(visited(q, 2, true), want[..2]);
        let any: Vec<_> = unordered.iter().map(|&i| want[i].clone()).collect();
        assert_eq!(visited(q, usize::MAX, false), any);
        assert_eq!(visited(q, 2, false), any[..2]);
    };
    let end = 8 * 60 * step;
    check(&db.querier(end - 10 * step, end), &[2, 0, 1]);
    assert!(db.compact().unwrap());
    assert!(!db.blocks().is_empty());
    let across = db.querier(0, end);
    assert!(!across.blocks.is_empty());
    check(&across, &[0, 1, 2]);
}
