use std::collections::BTreeMap;

use argus_model::{MatchOp, Matcher, is_stale_nan};

use super::*;
use crate::target::{discovered_labels, populate_labels};

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    target: Target,
    settings: ScrapeSettings,
    metrics: ScrapeMetrics,
    state: LoopState,
}

fn fixture(job_yaml: &str) -> Fixture {
    let yaml = format!("scrape_configs:\n- job_name: test\n{job_yaml}");
    let config = argus_config::parse_str(&yaml, "t.yml").expect("config");
    let settings = ScrapeSettings::new(&config.scrape_configs[0], &config.global).unwrap();
    let discovered = discovered_labels(
        &settings,
        &BTreeMap::from([("__address__".to_string(), "host:9100".to_string())]),
        &BTreeMap::new(),
    )
    .build();
    let labels = populate_labels(&settings, &discovered).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
    Fixture {
        target: Target::new(labels, discovered, &settings),
        _dir: dir,
        db,
        settings,
        metrics: ScrapeMetrics::default(),
        state: LoopState::default(),
    }
}

impl Fixture {
    fn scrape(&mut self, body: &str, t: i64) -> Result<AppendStats, String> {
        self.scrape_as(body, MediaType::PromText, t)
    }

    fn scrape_as(&mut self, body: &str, media: MediaType, t: i64) -> Result<AppendStats, String> {
        let result = self.state.append_scrape(
            &self.db,
            &self.target,
            &self.settings,
            &self.metrics,
            body.as_bytes(),
            media,
            t,
        );
        if result.is_err() {
            self.state.mark_all_stale(&self.db, t);
        }
        result
    }

    /// Every stored series as `labels => [(t, value or "stale")]`.
    fn dump(&self) -> BTreeMap<String, Vec<(i64, String)>> {
        let matcher = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap();
        self.db
            .querier(i64::MIN, i64::MAX)
            .select(&[matcher])
            .into_iter()
            .map(|s| {
                let samples = s
                    .samples(i64::MIN, i64::MAX)
                    .into_iter()
                    .map(|x| {
                        let v = if is_stale_nan(x.value) {
                            "stale".to_string()
                        } else {
                            argus_model::gofmt::format_g(x.value)
                        };
                        (x.timestamp_ms, v)
                    })
                    .collect();
                (s.labels.to_string(), samples)
            })
            .collect()
    }
}

fn v(t: i64, s: &str) -> (i64, String) {
    (t, s.to_string())
}

#[test]
fn samples_get_target_labels_and_vanished_series_go_stale() {
    let mut f = fixture("");
    let stats = f
        .scrape("# TYPE a gauge\na 1\nb{x=\"1\"} 2\n", 1000)
        .unwrap();
    assert_eq!(
        stats,
        AppendStats {
            scraped: 2,
            post_relabel: 2,
            series_added: 2
        }
    );
    let stats = f.scrape("a 3\n", 2000).unwrap();
    assert_eq!(stats.series_added, 0);
    let dump = f.dump();
    assert_eq!(
        dump["{__name__=\"a\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(1000, "1"), v(2000, "3")]
    );
    assert_eq!(
        dump["{__name__=\"b\", instance=\"host:9100\", job=\"test\", x=\"1\"}"],
        vec![v(1000, "2"), v(2000, "stale")]
    );
    assert_eq!(f.state.metadata["a"].metric_type, MetricType::Gauge);
    // A series that comes back is a new series for the cache.
    assert_eq!(
        f.scrape("a 4\nb{x=\"1\"} 5\n", 3000).unwrap().series_added,
        1
    );
}

#[test]
fn a_parse_error_stores_nothing_and_marks_everything_stale() {
    let mut f = fixture("");
    f.scrape("a 1\nb 2\n", 1000).unwrap();
    let err = f.scrape("a 2\nb 3\nc{ 4\n", 2000).unwrap_err();
    assert!(err.starts_with("expected label name"), "{err}");
    let dump = f.dump();
    assert_eq!(dump.len(), 2, "{dump:?}");
    for samples in dump.values() {
        assert_eq!(
            samples,
            &vec![v(1000, samples[0].1.as_str()), v(2000, "stale")]
        );
    }
}

#[test]
fn conflicting_labels_are_exported_unless_honored() {
    let body = "m{job=\"inner\",exported_job=\"taken\",instance=\"i\"} 1\n";
    let mut f = fixture("");
    f.scrape(body, 1000).unwrap();
    let keys: Vec<String> = f.dump().into_keys().collect();
    assert_eq!(
        keys,
        vec![
            "{__name__=\"m\", exported_exported_job=\"inner\", exported_instance=\"i\", exported_job=\"taken\", instance=\"host:9100\", job=\"test\"}"
        ]
    );
    let mut f = fixture("  honor_labels: true\n");
    f.scrape(body, 1000).unwrap();
    let keys: Vec<String> = f.dump().into_keys().collect();
    assert_eq!(
        keys,
        vec!["{__name__=\"m\", exported_job=\"taken\", instance=\"i\", job=\"inner\"}"]
    );
}

#[test]
fn metric_relabeling_drops_and_rewrites() {
    let mut f = fixture(
        "  metric_relabel_configs:\n  - source_labels: [__name__]\n    regex: drop_.*\n    action: drop\n  - source_labels: [x]\n    target_label: y\n",
    );
    let stats = f
        .scrape("drop_me 1\nkeep{x=\"v\"} 2\ndrop_too 3\n", 1000)
        .unwrap();
    assert_eq!(stats.scraped, 3);
    assert_eq!(stats.post_relabel, 1);
    // Dropped series stay dropped from the cache on the next scrape.
    let stats = f.scrape("drop_me 1\nkeep{x=\"v\"} 2\n", 2000).unwrap();
    assert_eq!((stats.scraped, stats.post_relabel), (2, 1));
    let keys: Vec<String> = f.dump().into_keys().collect();
    assert_eq!(
        keys,
        vec!["{__name__=\"keep\", instance=\"host:9100\", job=\"test\", x=\"v\", y=\"v\"}"]
    );
}

#[test]
fn limits_fail_the_scrape_whole() {
    let mut f = fixture("  sample_limit: 2\n");
    f.scrape("a 1\nb 1\n", 1000).unwrap();
    assert_eq!(
        f.scrape("a 1\nb 1\nc 1\n", 2000).unwrap_err(),
        "sample limit exceeded"
    );
    assert!(
        f.dump()
            .values()
            .all(|s| s.last() == Some(&v(2000, "stale")))
    );
    let mut f = fixture("  label_limit: 3\n");
    let err = f.scrape("m{a=\"1\",b=\"2\"} 1\n", 1000).unwrap_err();
    assert_eq!(
        err,
        "label_limit exceeded (metric: m, number of labels: 5, limit: 3)"
    );
    let mut f = fixture("  label_value_length_limit: 3\n");
    let err = f.scrape("m{a=\"long\"} 1\n", 1000).unwrap_err();
    assert!(
        err.starts_with(
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"long\""
        ),
        "{err}"
    );
    assert!(f.dump().is_empty());
    let mut f = fixture("  label_name_length_limit: 5\n");
    let err = f.scrape("m{abcdef=\"x\"} 1\n", 1000).unwrap_err();
    assert!(err.starts_with("label_name_length_limit exceeded"), "{err}");
}

#[test]
fn explicit_timestamps_are_honored_and_not_staled() {
    let mut f = fixture("");
    f.scrape("a 1 500\nb 2\n", 1000).unwrap();
    f.scrape("\n", 2000).unwrap();
    let dump = f.dump();
    assert_eq!(
        dump["{__name__=\"a\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(500, "1")]
    );
    assert_eq!(
        dump["{__name__=\"b\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(1000, "2"), v(2000, "stale")]
    );
    let mut f = fixture("  honor_timestamps: false\n");
    f.scrape("a 1 500\n", 1000).unwrap();
    assert_eq!(
        f.dump()["{__name__=\"a\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(1000, "1")]
    );
    let mut f = fixture("  track_timestamps_staleness: true\n");
    f.scrape("a 1 500\n", 1000).unwrap();
    f.scrape("\n", 2000).unwrap();
    assert_eq!(
        f.dump()["{__name__=\"a\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(500, "1"), v(2000, "stale")]
    );
}

#[test]
fn out_of_order_and_duplicates_are_counted_not_fatal() {
    let mut f = fixture("");
    f.scrape("a 1 5000\n", 1000).unwrap();
    f.scrape("a 2 4000\nb 1\nb 2\n", 2000).unwrap();
    assert_eq!(f.metrics.sample_out_of_order.load(Ordering::Relaxed), 1);
    assert_eq!(
        f.metrics.sample_duplicate_timestamp.load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        f.dump()["{__name__=\"b\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(2000, "1")]
    );
}

#[test]
fn report_series_carry_target_labels_and_go_stale() {
    let mut f = fixture("");
    let stats = f.scrape("a 1\n", 1000).unwrap();
    f.state
        .report(&f.db, &f.target, 1000, Some((true, 0.25, stats)));
    f.state.report(&f.db, &f.target, 2000, None);
    let dump = f.dump();
    let key = |name: &str| format!("{{__name__=\"{name}\", instance=\"host:9100\", job=\"test\"}}");
    assert_eq!(dump[&key("up")], vec![v(1000, "1"), v(2000, "stale")]);
    assert_eq!(dump[&key("scrape_duration_seconds")][0], v(1000, "0.25"));
    assert_eq!(dump[&key("scrape_samples_scraped")][0], v(1000, "1"));
    assert_eq!(
        dump[&key("scrape_samples_post_metric_relabeling")][0],
        v(1000, "1")
    );
    assert_eq!(dump[&key("scrape_series_added")][0], v(1000, "1"));
}

#[test]
fn openmetrics_bodies_are_ingested() {
    let mut f = fixture("");
    let body =
        "# TYPE c counter\n# HELP c Help.\nc_total 3 1.5 # {id=\"x\"} 1\nc_created 1\n# EOF\n";
    let stats = f.scrape_as(body, MediaType::OpenMetrics, 2000).unwrap();
    assert_eq!(stats.scraped, 2);
    assert_eq!(
        f.dump()["{__name__=\"c_total\", instance=\"host:9100\", job=\"test\"}"],
        vec![v(1500, "3")]
    );
    assert_eq!(f.state.metadata["c"].help, "Help.");
}

#[tokio::test]
async fn basic_auth_and_bearer_headers() {
    let config = argus_config::parse_str(
        "scrape_configs:\n- job_name: a\n  basic_auth: {username: user, password: pass}\n- job_name: b\n  authorization: {credentials: tok}\n",
        "t.yml",
    )
    .unwrap();
    assert_eq!(
        auth_header(&config.scrape_configs[0].http).await.unwrap(),
        Some("Basic dXNlcjpwYXNz".to_string())
    );
    assert_eq!(
        auth_header(&config.scrape_configs[1].http).await.unwrap(),
        Some("Bearer tok".to_string())
    );
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"abc"), "YWJj");
}
