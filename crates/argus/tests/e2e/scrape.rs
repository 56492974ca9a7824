//! Scraping end to end: argus scrapes itself and test exporters on loopback; targets API,
//! staleness when an exporter stops, file SD rewrites, reloads.

use std::time::Duration;

use super::harness::*;

fn scrape_config(interval: &str, jobs: &str) -> String {
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:\n{jobs}"
    )
}

fn static_job(name: &str, targets: &[String]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "  - job_name: {name}\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

fn value_of(result: &[serde_json::Value]) -> Option<String> {
    result
        .first()
        .and_then(|r| r["value"][1].as_str())
        .map(str::to_string)
}

#[test]
fn argus_scrapes_itself_and_reports_targets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a");
    // The self-scrape target needs the server's port, known only once the builder picked it:
    // start once with a placeholder, then reload with the real address.
    let argus = ArgusBuilder::new(&data).start();
    let own = format!("127.0.0.1:{}", argus.port);
    write_file(
        &argus.config,
        &scrape_config(
            "1s",
            &format!(
                "{}{}",
                static_job("argus", std::slice::from_ref(&own)),
                static_job("nothing-there", &["127.0.0.1:1".to_string()])
            ),
        ),
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200, "reload: {}", r.text().unwrap_or_default());
    wait_for(Duration::from_secs(30), "up{job=argus} == 1", || {
        (value_of(&instant(&argus, "up{job=\"argus\"}")).as_deref() == Some("1")).then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "up of the dead target == 0",
        || {
            (value_of(&instant(&argus, "up{job=\"nothing-there\"}")).as_deref() == Some("0"))
                .then_some(())
        },
    );
    // Scraped series carry the target labels, and the synthetic series exist.
    let tsdb = instant(&argus, "prometheus_tsdb_head_series{job=\"argus\"}");
    assert_eq!(tsdb.len(), 1, "{tsdb:?}");
    assert_eq!(tsdb[0]["metric"]["instance"], own.as_str());
    for name in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert_eq!(
            instant(&argus, &format!("{name}{{job=\"argus\"}}")).len(),
            1,
            "{name}"
        );
    }
    let samples: f64 = value_of(&instant(&argus, "scrape_samples_scraped{job=\"argus\"}"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(samples > 20.0, "{samples}");

    let targets = argus.get_json("/api/v1/targets");
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2, "{targets}");
    let me = active.iter().find(|t| t["scrapePool"] == "argus").unwrap();
    assert_eq!(me["health"], "up");
    assert_eq!(me["labels"]["instance"], own.as_str());
    assert_eq!(me["discoveredLabels"]["__address__"], own.as_str());
    assert_eq!(me["scrapeUrl"], format!("http://{own}/metrics"));
    assert_eq!(me["scrapeInterval"], "1s");
    let dead = active
        .iter()
        .find(|t| t["scrapePool"] == "nothing-there")
        .unwrap();
    assert_eq!(dead["health"], "down");
    assert!(
        dead["lastError"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{dead}"
    );
    let only_dropped = argus.get_json("/api/v1/targets?state=dropped");
    assert_eq!(only_dropped["data"]["activeTargets"], serde_json::json!([]));
    let pools = argus.get_json("/api/v1/scrape_pools");
    assert_eq!(
        pools["data"]["scrapePools"],
        serde_json::json!(["argus", "nothing-there"])
    );
    // Metadata from the scraped HELP/TYPE lines.
    let meta = argus.get_json("/api/v1/metadata?metric=prometheus_tsdb_head_series");
    assert_eq!(
        meta["data"]["prometheus_tsdb_head_series"][0]["type"], "gauge",
        "{meta}"
    );
    let tmeta = argus.get_json(&format!(
        "/api/v1/targets/metadata?match_target={}&metric=prometheus_tsdb_head_series",
        urlencode("{job=\"argus\"}")
    ));
    assert_eq!(tmeta["data"][0]["target"]["job"], "argus", "{tmeta}");
    // As Prometheus: `metric` is only written when the request did not name one.
    assert!(tmeta["data"][0].get("metric").is_none(), "{tmeta}");
    assert_eq!(tmeta["data"][0]["type"], "gauge", "{tmeta}");
    let all = argus.get_json(&format!(
        "/api/v1/targets/metadata?match_target={}",
        urlencode("{job=\"argus\"}")
    ));
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["metric"] == "prometheus_tsdb_head_series"),
        "{all}"
    );
    // Self-monitoring of the scrape layer.
    assert_eq!(
        argus.metric("prometheus_target_scrape_pool_targets"),
        Some(1.0)
    );
    wait_for(Duration::from_secs(30), "observed scrape intervals", || {
        argus.metric("prometheus_target_interval_length_seconds_count")
    });
    // A real summary, as Prometheus exposes it: scraped back with its type and quantiles.
    let meta = wait_for(Duration::from_secs(30), "the summary's metadata", || {
        let m = argus.get_json("/api/v1/metadata?metric=prometheus_target_interval_length_seconds");
        let kind = m["data"]["prometheus_target_interval_length_seconds"][0]["type"].clone();
        (!kind.is_null()).then_some(kind)
    });
    assert_eq!(meta, "summary");
    let p99 = instant(
        &argus,
        "prometheus_target_interval_length_seconds{job=\"argus\",quantile=\"0.99\"}",
    );
    assert_eq!(p99.len(), 1, "{p99:?}");
}

/// A body over `body_size_limit` fails the scrape with Prometheus's error and is counted.
#[test]
fn a_body_over_the_size_limit_fails_the_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start("a_metric_with_a_long_name{label=\"value\"} 1\n");
    let argus = ArgusBuilder::new(&dir.path().join("a"))
        .config(&scrape_config(
            "1s",
            &format!(
                "{}    body_size_limit: 20B\n",
                static_job("small", &[exporter.address()])
            ),
        ))
        .start();
    let error = wait_for(Duration::from_secs(30), "a failed scrape", || {
        let v = argus.get_json("/api/v1/targets");
        let t = v["data"]["activeTargets"][0].clone();
        (t["health"] == "down").then(|| t["lastError"].clone())
    });
    assert_eq!(error, "body size limit exceeded");
    assert_eq!(
        value_of(&instant(&argus, "up{job=\"small\"}")).as_deref(),
        Some("0")
    );
    assert!(instant(&argus, "a_metric_with_a_long_name").is_empty());
    let counted = argus
        .metric("prometheus_target_scrapes_exceeded_body_size_limit_total")
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "{counted}");
}

#[test]
fn a_stopped_exporter_goes_down_and_its_series_go_stale() {
    let dir = tempfile::tempdir().unwrap();
    let mut exporter = Exporter::start(
        "# TYPE demo_value gauge\ndemo_value{kind=\"a\"} 1\ndemo_value{kind=\"b\"} 2\n",
    );
    let argus = ArgusBuilder::new(&dir.path().join("a"))
        .config(&scrape_config(
            "1s",
            &static_job("demo", &[exporter.address()]),
        ))
        .start();
    wait_for(Duration::from_secs(30), "both series", || {
        (instant(&argus, "demo_value").len() == 2).then_some(())
    });
    // A series that disappears from the exposition goes stale at the next scrape.
    exporter.set_body("demo_value{kind=\"a\"} 1\n");
    wait_for(Duration::from_secs(30), "kind=b to vanish", || {
        (instant(&argus, "demo_value").len() == 1).then_some(())
    });
    // The exporter stops: up goes 0 and every series vanishes at once, not after 5m.
    exporter.stop();
    wait_for(Duration::from_secs(30), "up == 0", || {
        (value_of(&instant(&argus, "up{job=\"demo\"}")).as_deref() == Some("0")).then_some(())
    });
    assert!(instant(&argus, "demo_value").is_empty());
    let targets = argus.get_json("/api/v1/targets");
    assert_eq!(targets["data"]["activeTargets"][0]["health"], "down");
}

#[test]
fn file_sd_rewrites_change_targets_without_a_gap_for_the_ones_that_stay() {
    let dir = tempfile::tempdir().unwrap();
    let stays = Exporter::start("m 1\n");
    let leaves = Exporter::start("m 2\n");
    let joins = Exporter::start("m 3\n");
    let sd = dir.path().join("targets.json");
    let write_sd = |targets: &[String]| {
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        // Written to a temporary name and renamed, as config management tools do.
        let tmp = dir.path().join("targets.json.tmp");
        write_file(
            &tmp,
            &format!(
                "[{{\"targets\": [{}], \"labels\": {{\"team\": \"x\"}}}}]",
                list.join(", ")
            ),
        );
        std::fs::rename(&tmp, &sd).unwrap();
    };
    write_sd(&[stays.address(), leaves.address()]);
    let argus = ArgusBuilder::new(&dir.path().join("a"))
        .config(&scrape_config(
            "1s",
            &format!(
                "  - job_name: files\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1m\n",
                dir.path().join("*.json").display()
            ),
        ))
        .start();
    let instances = |argus: &Argus| -> Vec<String> {
        let mut v: Vec<String> = instant(argus, "m")
            .iter()
            .map(|r| r["metric"]["instance"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    let mut want = vec![stays.address(), leaves.address()];
    want.sort();
    wait_for(Duration::from_secs(30), "the first two targets", || {
        (instances(&argus) == want).then_some(())
    });
    let r = instant(&argus, "m");
    assert_eq!(r[0]["metric"]["team"], "x");
    assert!(r[0]["metric"].get("__meta_filepath").is_none());
    let switched = now_ms();
    write_sd(&[stays.address(), joins.address()]);
    let mut want = vec![stays.address(), joins.address()];
    want.sort();
    // Well within the 1m refresh interval: the file is watched.
    wait_for(Duration::from_secs(20), "the rewritten target list", || {
        (instances(&argus) == want).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    // The target that stayed was scraped every second throughout.
    assert_no_gap(
        &argus,
        &format!("m{{instance=\"{}\"}}", stays.address()),
        switched,
    );
}

/// The selector's raw samples over the last 30s: some before `since_ms`, some after, and no
/// two consecutive ones further apart than a scrape interval (1s) plus scheduling slack.
fn assert_no_gap(argus: &Argus, selector: &str, since_ms: i64) {
    let v = argus.get_json(&format!(
        "/api/v1/query?query={}",
        urlencode(&format!("{selector}[30s]"))
    ));
    let times: Vec<f64> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no samples for {selector}: {v}"))
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    let since = since_ms as f64 / 1000.0;
    assert!(
        times.first().is_some_and(|t| *t < since),
        "{selector}: {times:?}"
    );
    assert!(
        times.last().is_some_and(|t| *t > since + 1.0),
        "{selector}: {times:?}"
    );
    let widest = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(widest < 1.9, "{selector}: gap of {widest}s in {times:?}");
}

#[test]
fn reload_keeps_unchanged_jobs_scraping_and_refuses_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let a = Exporter::start("a_metric 1\n");
    let b = Exporter::start("b_metric 1\n");
    let argus = ArgusBuilder::new(&dir.path().join("a"))
        .config(&scrape_config("1s", &static_job("a", &[a.address()])))
        .start();
    wait_for(Duration::from_secs(30), "job a", || {
        (!instant(&argus, "a_metric").is_empty()).then_some(())
    });
    let reloaded = now_ms();
    write_file(
        &argus.config,
        &scrape_config(
            "1s",
            &format!(
                "{}{}",
                static_job("a", &[a.address()]),
                static_job("b", &[b.address()])
            ),
        ),
    );
    signal(&argus.child, libc::SIGHUP);
    wait_for(Duration::from_secs(30), "job b after SIGHUP", || {
        (!instant(&argus, "b_metric").is_empty()).then_some(())
    });
    // A bad config (unknown relabel action) is refused; both jobs keep going.
    write_file(
        &argus.config,
        &scrape_config(
            "1s",
            "  - job_name: a\n    relabel_configs:\n      - action: explode\n",
        ),
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 500);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(instant(&argus, "up").len(), 2);
    assert_eq!(value_of(&instant(&argus, "sum(up)")).as_deref(), Some("2"));
    // Job a was never interrupted by either reload.
    assert_no_gap(&argus, "a_metric", reloaded);
    // A changed relabeling that drops job a's target: its series go stale right away and the
    // target shows up as dropped.
    write_file(
        &argus.config,
        &scrape_config(
            "1s",
            &format!(
                "{}    relabel_configs:\n      - source_labels: [__address__]\n        regex: nothing\n        action: keep\n{}",
                static_job("a", &[a.address()]),
                static_job("b", &[b.address()])
            ),
        ),
    );
    let r = client().post(argus.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200);
    wait_for(
        Duration::from_secs(10),
        "job a's series to go stale",
        || {
            (instant(&argus, "a_metric").is_empty() && instant(&argus, "up{job=\"a\"}").is_empty())
                .then_some(())
        },
    );
    let targets = argus.get_json("/api/v1/targets?state=dropped");
    assert_eq!(targets["data"]["droppedTargetCounts"]["a"], 1, "{targets}");
    assert_eq!(
        targets["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
        a.address().as_str()
    );
}
