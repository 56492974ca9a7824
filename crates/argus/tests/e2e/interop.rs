//! Interop with the real Prometheus 2.42 (Debian package `prometheus`, installed by
//! `scripts/test.sh`): it scrapes itself and remote-writes to argus; argus must end up with
//! exactly the metric names that Prometheus itself stores.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::*;

fn prometheus_binary() -> String {
    let found = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    found.unwrap_or_else(|| {
        panic!("the interop test needs the real Prometheus: apt-get install prometheus (scripts/test.sh does this)")
    })
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal(&self.0, libc::SIGTERM);
        wait_exit(&mut self.0);
    }
}

fn names(url: &str) -> Option<BTreeSet<String>> {
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    Some(
        v["data"]
            .as_array()?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
    )
}

#[test]
fn prometheus_remote_write_delivers_every_metric_name() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("argus")).start();
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    write_file(
        &config,
        &format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            argus.url("/api/v1/write")
        ),
    );
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_names = format!("http://127.0.0.1:{prom_port}/api/v1/label/__name__/values");
    let argus_names = argus.url("/api/v1/label/__name__/values");
    // Let Prometheus scrape itself a few times so that its set of names settles.
    wait_for(
        Duration::from_secs(60),
        "Prometheus to store its own metrics",
        || names(&prom_names).filter(|n| n.len() > 100 && n.contains("up")),
    );
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            Duration::from_secs(90),
            "argus to hold the same metric names",
            || {
                let a = names(&argus_names)?;
                let p = names(&prom_names)?;
                let same = a == p;
                last = (a, p);
                same.then_some(())
            },
        )
    }));
    if outcome.is_err() {
        let (a, p) = &last;
        panic!(
            "metric names differ\nonly in prometheus: {:?}\nonly in argus: {:?}\nargus log:\n{}",
            p.difference(a).collect::<Vec<_>>(),
            a.difference(p).collect::<Vec<_>>(),
            argus.log_text()
        );
    }
    // And the series labels carry over too: Prometheus's `up` series for its own job.
    let up = argus.series("up", None);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["job"], "prometheus");
    assert_eq!(up[0]["instance"], format!("127.0.0.1:{prom_port}"));
}
