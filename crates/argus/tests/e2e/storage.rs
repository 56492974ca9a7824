//! Storage behaviour through the real binary: crash safety, WAL repair, blocks, retention,
//! snapshots, and the API's answers.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use argus_model::{MatchOp, Matcher};

use super::harness::*;

fn seqs(series: &[serde_json::Value], label: &str) -> BTreeSet<i64> {
    series
        .iter()
        .filter_map(|s| s[label].as_str()?.parse().ok())
        .collect()
}

/// Every sample of every series in a stopped server's data directory.
fn stored_samples(data: &Path, selector_name: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    let db = argus_tsdb::Db::open(data, argus_tsdb::Options::default()).expect("open data dir");
    let m = [Matcher::new(MatchOp::Equal, "__name__", selector_name).unwrap()];
    db.querier(i64::MIN, i64::MAX)
        .select(&m)
        .into_iter()
        .map(|s| {
            let samples = s
                .samples(i64::MIN, i64::MAX)
                .into_iter()
                .map(|x| (x.timestamp_ms, x.value))
                .collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

#[test]
fn kill9_mid_stream_keeps_every_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let argus = ArgusBuilder::new(&data).start();
    let url = argus.url("/api/v1/write");
    let base = now_ms() - 3_600_000;
    const WRITERS: usize = 2;
    const SERIES_PER_WRITER: usize = 20;
    let acked: Vec<Arc<AtomicI64>> = (0..WRITERS).map(|_| Arc::new(AtomicI64::new(-1))).collect();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = url.clone();
            let acked = acked[w].clone();
            std::thread::spawn(move || {
                let c = client();
                for step in 0..200_000i64 {
                    let ts: Vec<TimeSeries> = (0..SERIES_PER_WRITER)
                        .map(|k| {
                            let (w, k) = (w.to_string(), k.to_string());
                            series(
                                &[("__name__", "crash_test"), ("writer", &w), ("k", &k)],
                                &[(base + step * 1000, step as f64)],
                            )
                        })
                        .collect();
                    let sent = c
                        .post(&url)
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .body(encode(&WriteRequest { timeseries: ts }))
                        .send();
                    match sent {
                        Ok(r) if r.status() == 204 => acked.store(step, Ordering::SeqCst),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => return, // the server was killed
                    }
                }
            })
        })
        .collect();
    wait_for(
        Duration::from_secs(60),
        "300 acknowledged writes per writer",
        || {
            acked
                .iter()
                .all(|a| a.load(Ordering::SeqCst) >= 300)
                .then_some(())
        },
    );
    argus.kill9();
    for h in handles {
        h.join().unwrap();
    }
    let acked: Vec<i64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();

    // Restart: the API lists every series, and the stored samples include every
    // acknowledged one.
    let argus = ArgusBuilder::new(&data).start();
    assert_eq!(
        argus.series("crash_test", None).len(),
        WRITERS * SERIES_PER_WRITER
    );
    argus.stop();
    let stored = stored_samples(&data, "crash_test");
    assert_eq!(stored.len(), WRITERS * SERIES_PER_WRITER);
    for (labels, samples) in stored {
        let w: usize = labels.split("writer=\"").nth(1).unwrap()[..1]
            .parse()
            .unwrap();
        let want = acked[w] + 1;
        assert!(
            samples.len() as i64 >= want,
            "{labels}: {} samples, {want} acknowledged",
            samples.len()
        );
        for (i, (t, v)) in samples.iter().enumerate() {
            assert_eq!(
                (*t, *v),
                (base + i as i64 * 1000, i as f64),
                "{labels} sample {i}"
            );
        }
    }
}

fn write_seq_series(argus: &Argus, name: &str, n: i64) {
    let t = now_ms();
    for i in 0..n {
        let seq = i.to_string();
        let r = argus.write(&WriteRequest {
            timeseries: vec![series(
                &[("__name__", name), ("seq", &seq)],
                &[(t + i, 1.0)],
            )],
        });
        assert_eq!(r.status(), 204);
    }
}

fn last_nonempty_segment(data: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segments.sort();
    segments.pop().expect("a WAL segment with data")
}

#[test]
fn torn_and_corrupted_wal_is_repaired_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let argus = ArgusBuilder::new(&data).start();
    write_seq_series(&argus, "corrupt_test", 100);
    // A crash, so the data stays in WAL segments (a graceful stop checkpoints the head).
    argus.kill9();

    // 1. The last segment is cut in the middle of its last record.
    let segment = last_nonempty_segment(&data);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let argus = ArgusBuilder::new(&data).start();
    assert_eq!(
        argus.metric("prometheus_tsdb_wal_corruptions_total"),
        Some(1.0)
    );
    let kept = seqs(&argus.series("corrupt_test", None), "seq");
    assert_eq!(kept, (0..99).collect::<BTreeSet<i64>>());
    assert!(
        argus.log_text().contains("WAL corruption repaired"),
        "{}",
        argus.log_text()
    );
    argus.kill9();

    // 2. Bytes flipped in the middle of the segment: everything before the damage stays.
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4] {
        *b ^= 0xa5;
    }
    std::fs::write(&segment, &bytes).unwrap();
    let argus = ArgusBuilder::new(&data).start();
    assert_eq!(
        argus.metric("prometheus_tsdb_wal_corruptions_total"),
        Some(1.0)
    );
    let kept = seqs(&argus.series("corrupt_test", None), "seq");
    let n = kept.len() as i64;
    assert!(n > 20 && n < 99, "kept {n} series");
    assert_eq!(
        kept,
        (0..n).collect::<BTreeSet<i64>>(),
        "a gap before the damage"
    );
    // Writes keep working after the repair.
    write_seq_series(&argus, "after_repair", 3);
    assert_eq!(argus.series("after_repair", None).len(), 3);
}

/// Writes `n_series` series with one sample a minute over the last `hours`, oldest first.
fn write_history(argus: &Argus, name: &str, n_series: usize, hours: i64) -> i64 {
    let now = now_ms() / 60_000 * 60_000;
    let start = now - hours * 3_600_000;
    let mut t = start;
    while t <= now {
        let batch_end = (t + 60 * 60_000).min(now + 1);
        let ts: Vec<TimeSeries> = (0..n_series)
            .map(|k| {
                let samples: Vec<(i64, f64)> = (t..batch_end)
                    .step_by(60_000)
                    .map(|s| (s, (s / 60_000) as f64))
                    .collect();
                series(&[("__name__", name), ("k", &k.to_string())], &samples)
            })
            .collect();
        let r = argus.write(&WriteRequest { timeseries: ts });
        assert_eq!(r.status(), 204, "{:?}", r.text());
        t = batch_end;
    }
    now
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn blocks_survive_restart_snapshot_restores_and_retention_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fast = "--storage.tsdb.compaction-check-interval=200ms";
    let argus = ArgusBuilder::new(&data).flag(fast).start();
    let now = write_history(&argus, "hist", 10, 7);
    wait_for(
        Duration::from_secs(60),
        "head compaction into blocks",
        || (argus.metric("prometheus_tsdb_blocks_loaded")? >= 1.0).then_some(()),
    );
    let old = (now - 7 * 3_600_000, now - 6 * 3_600_000);
    let recent = (now - 10 * 60_000, now);
    assert_eq!(argus.series("hist", Some(old)).len(), 10);
    assert_eq!(argus.series("hist", Some(recent)).len(), 10);
    let block_dirs = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").is_file())
        .count();
    assert!(block_dirs >= 1);

    // Snapshot while running.
    let r = client()
        .post(argus.url("/api/v1/admin/tsdb/snapshot"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().unwrap();
    let name = body["data"]["name"].as_str().unwrap().to_string();

    // Restart: blocks and head both served.
    argus.stop();
    let argus = ArgusBuilder::new(&data).flag(fast).start();
    assert_eq!(argus.series("hist", Some(old)).len(), 10);
    assert_eq!(argus.series("hist", Some(recent)).len(), 10);
    argus.stop();
    let before = stored_samples(&data, "hist");
    assert_eq!(before[0].1.len() as i64, 7 * 60 + 1);

    // Restore: a server on a copy of the snapshot serves the same series and samples.
    let restored_dir = dir.path().join("restored");
    copy_tree(&data.join("snapshots").join(&name), &restored_dir);
    let restored = ArgusBuilder::new(&restored_dir).start();
    assert_eq!(restored.series("hist", None).len(), 10);
    restored.stop();
    assert_eq!(stored_samples(&restored_dir, "hist"), before);

    // Retention of 1h removes whole blocks whose newest data is older than that (the head
    // keeps the last ~3h, so every block here qualifies).
    let argus = ArgusBuilder::new(&data)
        .flag(fast)
        .flag("--storage.tsdb.retention.time=1h")
        .start();
    wait_for(Duration::from_secs(60), "time retention", || {
        argus.series("hist", Some(old)).is_empty().then_some(())
    });
    assert!(
        argus
            .metric("prometheus_tsdb_time_retentions_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(argus.series("hist", Some(recent)).len(), 10);
}

#[test]
fn api_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let argus = ArgusBuilder::new(&data).start();
    let t = now_ms();
    let r = argus.write(&WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("job", "a"), ("instance", "x:1")],
                &[(t, 1.0)],
            ),
            series(
                &[("__name__", "up"), ("job", "b"), ("instance", "x:2")],
                &[(t, 0.0)],
            ),
            series(&[("__name__", "other"), ("job", "a")], &[(t, 5.0)]),
        ],
    });
    assert_eq!(r.status(), 204);

    let raw = client()
        .get(argus.url("/api/v1/series?match[]=up&match[]=other%7Bjob%3D%22a%22%7D"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        raw,
        r#"{"status":"success","data":[{"__name__":"other","job":"a"},{"__name__":"up","instance":"x:1","job":"a"},{"__name__":"up","instance":"x:2","job":"b"}]}"#
    );
    // POST form and limit.
    let r = client()
        .post(argus.url("/api/v1/series"))
        .form(&[("match[]", "up"), ("limit", "1")])
        .send()
        .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    assert_eq!(
        argus.get_json("/api/v1/labels")["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    assert_eq!(
        argus.get_json("/api/v1/label/job/values?match[]=up%7Bjob%3D%22b%22%7D")["data"],
        serde_json::json!(["b"])
    );
    assert_eq!(
        argus.get_json("/api/v1/label/__name__/values")["data"],
        serde_json::json!(["other", "up"])
    );

    // Errors: envelope, errorType and status.
    let r = client().get(argus.url("/api/v1/series")).send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().unwrap(),
        r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#
    );
    let r = client()
        .get(argus.url("/api/v1/series?match[]=up{&start=x"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .get(argus.url("/api/v1/series?match[]=up&start=yesterday"))
        .send()
        .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(
        v["error"],
        r#"invalid parameter "start": invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#
    );

    let tsdb = argus.get_json("/api/v1/status/tsdb");
    assert_eq!(tsdb["data"]["headStats"]["numSeries"], 3);
    assert_eq!(
        tsdb["data"]["seriesCountByMetricName"][0],
        serde_json::json!({"name": "up", "value": 2})
    );
    let flags = argus.get_json("/api/v1/status/flags");
    assert_eq!(
        flags["data"]["storage.tsdb.path"],
        data.display().to_string()
    );

    // Remote write: malformed body → 400 with a message, nothing stored.
    let r = client()
        .post(argus.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .body(vec![0xff, 0x00, 0x13])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("snappy"));
    let r = argus.write(&WriteRequest {
        timeseries: vec![
            series(&[("__name__", "new_one")], &[(t, 1.0)]),
            series(
                &[("__name__", "up"), ("job", "a"), ("instance", "x:1")],
                &[(t - 1, 1.0)],
            ),
        ],
    });
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("out of order sample"));
    assert!(
        argus.series("new_one", None).is_empty(),
        "half-applied write"
    );

    // Admin: delete_series then clean_tombstones.
    let r = client()
        .post(argus.url("/api/v1/admin/tsdb/delete_series?match[]=other"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(argus.series("other", None).is_empty());
    let r = client()
        .post(argus.url("/api/v1/admin/tsdb/clean_tombstones"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[test]
fn admin_and_lifecycle_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data"))
        .without_flags()
        .start();
    let r = client()
        .post(argus.url("/api/v1/admin/tsdb/snapshot"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.text().unwrap(),
        r#"{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}"#
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(argus.url("/api/v1/write"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    argus.stop();
}

#[test]
fn bad_config_refuses_start_and_reload_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Refused at start, with line, column and key.
    let mut bad = ArgusBuilder::new(&data)
        .config("global:\n  scrape_interval: 15s\n  evaluation_intervall: 1m\n")
        .spawn();
    wait_exit(&mut bad.child);
    assert!(!bad.child.try_wait().unwrap().unwrap().success());
    let log = bad.log_text();
    assert!(
        log.contains("line 3 column 3") && log.contains("evaluation_intervall"),
        "{log}"
    );
    drop(bad);

    let argus = ArgusBuilder::new(&data).start();
    write_file(
        &argus.config,
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: [\n",
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.text().unwrap().contains("failed to reload config"));
    assert_eq!(
        argus.metric("prometheus_config_last_reload_successful"),
        Some(0.0)
    );
    let info = argus.get_json("/api/v1/status/runtimeinfo");
    assert_eq!(info["data"]["reloadConfigSuccess"], false);
    // Still serving; a good config reloads; SIGHUP works too.
    write_file(
        &argus.config,
        "global:\n  scrape_interval: 30s\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        argus.metric("prometheus_config_last_reload_successful"),
        Some(1.0)
    );
    let info = argus.get_json("/api/v1/status/runtimeinfo");
    assert_eq!(info["data"]["reloadConfigSuccess"], true);
    // /api/v1/status/config shows the configuration now in effect, defaults filled in.
    let yaml = argus.get_json("/api/v1/status/config")["data"]["yaml"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        yaml.contains("scrape_interval: 30s")
            && yaml.contains("out_of_order_time_window: 1h")
            && yaml.contains("evaluation_interval: 1m"),
        "{yaml}"
    );
    // The out-of-order window took effect without a restart.
    let t = now_ms();
    assert_eq!(
        argus
            .write(&WriteRequest {
                timeseries: vec![series(&[("__name__", "o")], &[(t, 1.0)])]
            })
            .status(),
        204
    );
    assert_eq!(
        argus
            .write(&WriteRequest {
                timeseries: vec![series(&[("__name__", "o")], &[(t - 600_000, 1.0)])]
            })
            .status(),
        204
    );
    write_file(&argus.config, "global:\n  scrape_interval: [\n");
    signal(&argus.child, libc::SIGHUP);
    wait_for(Duration::from_secs(10), "SIGHUP reload attempt", || {
        (argus.metric("prometheus_config_last_reload_successful")? == 0.0).then_some(())
    });
    // /-/quit shuts down cleanly.
    let mut argus = argus;
    let r = client().post(argus.url("/-/quit")).send().unwrap();
    assert_eq!(r.status(), 200);
    wait_exit(&mut argus.child);
}
