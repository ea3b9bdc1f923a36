//! A real Prometheus server (Debian's `prometheus` package) for one test, scraping the
//! simulator's `GET /metrics` every second. Killed (and its data removed) on drop.
//!
//! ```ignore
//! let prom = Prometheus::start(&sim.endpoint()).await?;      // waits until ready
//! prom.wait_for_series("sim_requests_total", Duration::from_secs(30)).await?;
//! let v = prom.query_value("sum(rate(sim_requests_total[30s]))").await?; // Option<f64>
//! ```

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// One sample of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the `prometheus` binary is installed (`.ci/run` installs it).
pub fn installed() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Prometheus {
    /// Start a Prometheus scraping `http://{target}/metrics` every second (`target` is
    /// `host:port`, e.g. `SimulatorHandle::endpoint()`), and wait until it is ready.
    pub async fn start(target: &str) -> anyhow::Result<Prometheus> {
        if !installed() {
            bail!("prometheus is not installed (apt-get install prometheus; .ci/run does it)");
        }
        let dir = tempfile::tempdir()?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: simulator\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let prom = Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        prom.wait_ready(Duration::from_secs(60)).await?;
        Ok(prom)
    }

    /// `http://127.0.0.1:PORT`: the base URL of its HTTP API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let ready = self.http.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "prometheus not ready within {within:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An instant query (`/api/v1/query`): the samples of the vector it returns.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await?
            .json()
            .await?;
        if body["status"] != "success" {
            bail!("query {promql:?} failed: {body}");
        }
        let result = &body["data"]["result"];
        let mut out = Vec::new();
        match body["data"]["resultType"].as_str() {
            Some("vector") => {
                for s in result.as_array().into_iter().flatten() {
                    let labels = s["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    out.push((labels, sample_value(&s["value"])?));
                }
            }
            Some("scalar") => out.push((BTreeMap::new(), sample_value(result)?)),
            other => bail!("query {promql:?}: unexpected result type {other:?}"),
        }
        Ok(out)
    }

    /// The value of a query that returns one sample (or a scalar); `None` when it returns
    /// none.
    pub async fn query_value(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let samples = self.query(promql).await?;
        match samples.as_slice() {
            [] => Ok(None),
            [(_, v)] => Ok(Some(*v)),
            many => bail!("query {promql:?} returned {} samples", many.len()),
        }
    }

    /// Wait until `promql` returns a value for which `ok` holds; that value.
    pub async fn wait_for_value(
        &self,
        promql: &str,
        within: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> anyhow::Result<f64> {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.query_value(promql).await {
                Ok(Some(v)) if ok(v) => return Ok(v),
                other => format!("{other:?}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "{promql:?} did not reach the expected value within {within:?} (last: {last}); log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until a series of `metric` has been scraped.
    pub async fn wait_for_series(&self, metric: &str, within: Duration) -> anyhow::Result<()> {
        self.wait_for_value(&format!("count({metric})"), within, |n| n > 0.0)
            .await
            .map(|_| ())
    }
}

/// `[ <time>, "<value>" ]` -> the value.
fn sample_value(v: &Value) -> anyhow::Result<f64> {
    let text = v[1].as_str().context("a sample without a value")?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse().with_context(|| format!("sample value {t:?}")),
    }
}
