//! Simulated user traffic: what each version of each object would have served.
//!
//! Every EAS service, every environment of a routine and every environment of an edge
//! container app receives [`REQUESTS_PER_SECOND`] on the simulator's clock, split over its
//! versions by the share the simulated cloud gives each one at that moment (EAS: replicas
//! per revision; routine: code version percentages; container app: publish percentage
//! against the baseline). A version is *bad* when its identity contains [`BAD_MARKER`]
//! (EAS: the image of its serviceConfig; routine: the code version; app: the version id):
//! it answers [`BAD_ERROR_RATIO`] of its requests with 500 and slowly; a good version
//! answers [`GOOD_ERROR_RATIO`] with 500 and fast.
//!
//! The counters only grow (Prometheus counters); [`Traffic::render`] writes them in the
//! Prometheus text format (`GET /metrics`), and per-service snapshots back CloudMonitor
//! (`acs_pai_eas`, see [`super::cms`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::clock::{add, since};
use super::eas::{EasService, image_of};
use super::esa::{App, Routine};

/// Requests per second each service / routine environment / app environment receives.
pub const REQUESTS_PER_SECOND: f64 = 20.0;
/// Share of a good version's requests answered with 500.
pub const GOOD_ERROR_RATIO: f64 = 0.01;
/// Share of a bad version's requests answered with 500.
pub const BAD_ERROR_RATIO: f64 = 0.6;
/// A version whose identity contains this is bad.
pub const BAD_MARKER: &str = "bad";
/// Upper bounds of the latency histogram, in seconds (`+Inf` follows).
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Share of a good version's requests at or under each bound (cumulative).
const GOOD_CDF: [f64; 10] = [0.0, 0.02, 0.2, 0.6, 0.9, 0.99, 1.0, 1.0, 1.0, 1.0];
/// Share of a bad version's requests at or under each bound (cumulative).
const BAD_CDF: [f64; 10] = [0.0, 0.0, 0.0, 0.0, 0.01, 0.1, 0.3, 0.6, 0.9, 1.0];
const GOOD_MEAN_SECONDS: f64 = 0.06;
const BAD_MEAN_SECONDS: f64 = 1.2;
/// How often (simulator time) a service's totals are kept for CloudMonitor.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);
/// How many snapshots a service keeps (one hour).
pub const SNAPSHOTS_KEPT: usize = 720;
/// Gaps shorter than this are left for a later call.
const MIN_STEP: Duration = Duration::from_millis(100);
/// Most sub-steps one advance takes (a long jump of the clock is split more coarsely).
const MAX_STEPS: u32 = 600;

/// Cumulative totals of one series (fractional; rendered rounded down, so still monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub requests: f64,
    pub errors: f64,
    pub seconds_sum: f64,
    /// Requests at or under each bound of [`BUCKETS`].
    pub buckets: [f64; BUCKETS.len()],
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.seconds_sum += other.seconds_sum;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    /// `self - earlier`, never negative.
    pub fn minus(&self, earlier: &Totals) -> Totals {
        let mut d = Totals {
            requests: (self.requests - earlier.requests).max(0.0),
            errors: (self.errors - earlier.errors).max(0.0),
            seconds_sum: (self.seconds_sum - earlier.seconds_sum).max(0.0),
            buckets: self.buckets,
        };
        for (a, b) in d.buckets.iter_mut().zip(earlier.buckets) {
            *a = (*a - b).max(0.0);
        }
        d
    }

    fn serve(n: f64, bad: bool) -> Totals {
        let (ratio, mean, cdf) = if bad {
            (BAD_ERROR_RATIO, BAD_MEAN_SECONDS, &BAD_CDF)
        } else {
            (GOOD_ERROR_RATIO, GOOD_MEAN_SECONDS, &GOOD_CDF)
        };
        let mut buckets = [0.0; BUCKETS.len()];
        for (b, share) in buckets.iter_mut().zip(cdf) {
            *b = n * share;
        }
        Totals {
            requests: n,
            errors: n * ratio,
            seconds_sum: n * mean,
            buckets,
        }
    }

    /// The latency under which `q` (0..=1) of the requests fall, in seconds, interpolated
    /// within a bucket; `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.requests <= 0.0 {
            return None;
        }
        let want = q.clamp(0.0, 1.0) * self.requests;
        let mut lower = (0.0, 0.0);
        for (bound, count) in BUCKETS.iter().zip(self.buckets) {
            if count >= want && count > lower.1 {
                let within = (want - lower.1) / (count - lower.1);
                return Some(lower.0 + (bound - lower.0) * within.clamp(0.0, 1.0));
            }
            lower = (*bound, count);
        }
        Some(BUCKETS[BUCKETS.len() - 1])
    }
}

/// What one series is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// `eas`, `routine` or `app`.
    pub kind: &'static str,
    /// EAS only: the service's region.
    pub region: String,
    /// EAS service name, routine name or app id.
    pub target: String,
    /// ESA only: the environment (`staging`/`production`, `staging`/`prod`).
    pub env: String,
    /// EAS revision, routine code version or app version id.
    pub version: String,
}

/// One version's share of its object's traffic right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub key: SeriesKey,
    pub share: f64,
    pub bad: bool,
}

/// The traffic model of one account's cloud.
#[derive(Debug, Default)]
pub struct Traffic {
    /// The instant the counters are accounted up to.
    pub last: Option<Timestamp>,
    pub series: BTreeMap<SeriesKey, Totals>,
    /// Current share of each series (for `sim_traffic_share`).
    pub shares: BTreeMap<SeriesKey, f64>,
    /// Per EAS service (`region/name`): its totals over every version.
    pub services: BTreeMap<String, Totals>,
    /// Per EAS service: its totals every [`SNAPSHOT_EVERY`], for CloudMonitor.
    pub snapshots: BTreeMap<String, VecDeque<(Timestamp, Totals)>>,
    /// Versions marked bad by name (`POST /_sim/bad`): an EAS revision, version number
    /// or image, a routine code version, an app version id.
    pub marked_bad: BTreeSet<String>,
}

/// Whether a version is bad: its identity contains [`BAD_MARKER`], or one of its names
/// was marked bad through `POST /_sim/bad`.
fn is_bad(marked: &BTreeSet<String>, identity: &str, names: &[&str]) -> bool {
    identity.to_ascii_lowercase().contains(BAD_MARKER)
        || names.iter().chain([&identity]).any(|n| marked.contains(*n))
}

/// How an EAS service's traffic splits: by replicas on the stable and the target version.
pub fn eas_shares(s: &EasService, marked: &BTreeSet<String>) -> Vec<Share> {
    if s.replicas <= 0 {
        return Vec::new();
    }
    let total = s.replicas as f64;
    let mut parts = vec![(s.target, s.updated.clamp(0, s.replicas) as f64 / total)];
    if s.stable != s.target {
        parts.push((
            s.stable,
            (s.replicas - s.updated).clamp(0, s.replicas) as f64 / total,
        ));
    }
    parts
        .into_iter()
        .filter(|(_, share)| *share > 0.0)
        .filter_map(|(v, share)| {
            let rec = s.versions.iter().find(|r| r.version == v)?;
            let image = image_of(&rec.config).unwrap_or_default();
            let number = rec.version.to_string();
            Some(Share {
                key: SeriesKey {
                    kind: "eas",
                    region: s.region.clone(),
                    target: s.name.clone(),
                    env: String::new(),
                    version: rec.revision.clone(),
                },
                share,
                bad: is_bad(marked, &image, &[&rec.revision, &number]),
            })
        })
        .collect()
}

/// How a routine's traffic splits in each environment: by the deployment's percentages.
pub fn routine_shares(r: &Routine, marked: &BTreeSet<String>) -> Vec<Share> {
    let mut out = Vec::new();
    for (env, d) in &r.envs {
        let sum: i64 = d
            .splits
            .iter()
            .map(|s| i64::from(s.percentage.max(0)))
            .sum();
        if sum <= 0 {
            continue;
        }
        for s in &d.splits {
            out.push(Share {
                key: SeriesKey {
                    kind: "routine",
                    region: String::new(),
                    target: r.name.clone(),
                    env: env.clone(),
                    version: s.code_version.clone(),
                },
                share: f64::from(s.percentage.max(0)) / sum as f64,
                bad: is_bad(marked, &s.code_version, &[]),
            });
        }
    }
    out
}

/// How an app's traffic splits in each environment: the publishing version at the
/// publish percentage, the baseline version for the rest.
pub fn app_shares(a: &App, marked: &BTreeSet<String>) -> Vec<Share> {
    let mut out = Vec::new();
    for (env, e) in &a.envs {
        if e.deploy_status == "undeploy" {
            continue;
        }
        let current = e
            .deployed_version
            .as_ref()
            .or(e.publishing_version.as_ref());
        let Some(current) = current else { continue };
        let pct = f64::from(e.publish_percentage.clamp(0, 100)) / 100.0;
        let parts: Vec<(&String, f64)> = match &e.baseline_version {
            Some(base) if base != current => vec![(current, pct), (base, 1.0 - pct)],
            _ => vec![(current, 1.0)],
        };
        for (version, share) in parts.into_iter().filter(|(_, s)| *s > 0.0) {
            out.push(Share {
                key: SeriesKey {
                    kind: "app",
                    region: String::new(),
                    target: a.id.clone(),
                    env: env.clone(),
                    version: version.clone(),
                },
                share,
                bad: is_bad(marked, version, &[]),
            });
        }
    }
    out
}

impl Traffic {
    /// The sub-steps from the last accounted instant to `now`: `(end, seconds)` each.
    pub fn steps(&self, now: Timestamp) -> Vec<(Timestamp, f64)> {
        let Some(from) = self.last else {
            return Vec::new();
        };
        let total = since(now, from);
        if total < MIN_STEP {
            // Counted at a later call: a busy simulator does not walk every object per request.
            return Vec::new();
        }
        let step = (total / MAX_STEPS).max(Duration::from_secs(1));
        let mut out = Vec::new();
        let mut t = from;
        while t < now {
            let next = add(t, step).min(now);
            out.push((next, since(next, t).as_secs_f64()));
            t = next;
        }
        out
    }

    /// Count `seconds` of traffic ending at `end` under `shares`.
    pub fn accrue(&mut self, shares: &[Share], seconds: f64, end: Timestamp) {
        self.last = Some(end);
        self.shares.clear();
        let mut touched: Vec<String> = Vec::new();
        for s in shares {
            let served = Totals::serve(REQUESTS_PER_SECOND * seconds * s.share, s.bad);
            self.series.entry(s.key.clone()).or_default().add(&served);
            self.shares.insert(s.key.clone(), s.share);
            if s.key.kind == "eas" {
                let service = format!("{}/{}", s.key.region, s.key.target);
                self.services
                    .entry(service.clone())
                    .or_default()
                    .add(&served);
                touched.push(service);
            }
        }
        touched.dedup();
        for service in touched {
            self.snapshot(&service, end);
        }
    }

    fn snapshot(&mut self, service: &str, at: Timestamp) {
        let totals = self.services.get(service).copied().unwrap_or_default();
        let kept = self.snapshots.entry(service.to_string()).or_default();
        let due = kept
            .back()
            .is_none_or(|(last, _)| since(at, *last) >= SNAPSHOT_EVERY);
        if !due {
            return;
        }
        kept.push_back((at, totals));
        while kept.len() > SNAPSHOTS_KEPT {
            kept.pop_front();
        }
    }

    /// A service's totals as of `at` (the last snapshot at or before it; zero before the
    /// first one).
    pub fn service_at(&self, service: &str, at: Timestamp) -> Totals {
        self.snapshots
            .get(service)
            .and_then(|k| k.iter().rev().find(|(t, _)| *t <= at))
            .map(|(_, totals)| *totals)
            .unwrap_or_default()
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP sim_requests_total Requests the simulated users sent, by version and HTTP status.\n# TYPE sim_requests_total counter\n");
        for (k, t) in &self.series {
            let ok = (t.requests - t.errors).max(0.0).floor();
            let _ = writeln!(out, "sim_requests_total{{{},code=\"200\"}} {ok}", labels(k));
            let bad = t.errors.floor();
            let _ = writeln!(
                out,
                "sim_requests_total{{{},code=\"500\"}} {bad}",
                labels(k)
            );
        }
        out.push_str("# HELP sim_request_duration_seconds How long the simulated requests took.\n# TYPE sim_request_duration_seconds histogram\n");
        for (k, t) in &self.series {
            let l = labels(k);
            for (bound, count) in BUCKETS.iter().zip(t.buckets) {
                let _ = writeln!(
                    out,
                    "sim_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {}",
                    count.floor()
                );
            }
            let n = t.requests.floor();
            let _ = writeln!(
                out,
                "sim_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {n}"
            );
            let _ = writeln!(
                out,
                "sim_request_duration_seconds_sum{{{l}}} {}",
                t.seconds_sum
            );
            let _ = writeln!(out, "sim_request_duration_seconds_count{{{l}}} {n}");
        }
        out.push_str("# HELP sim_traffic_share Share of its object's traffic a version gets now (0..1).\n# TYPE sim_traffic_share gauge\n");
        for (k, share) in &self.shares {
            let _ = writeln!(out, "sim_traffic_share{{{}}} {share}", labels(k));
        }
        out
    }
}

/// `kind="eas",region="...",target="...",version="..."` (region for EAS, env for ESA).
fn labels(k: &SeriesKey) -> String {
    let mut out = format!("kind=\"{}\"", k.kind);
    if !k.region.is_empty() {
        let _ = write!(out, ",region=\"{}\"", escape(&k.region));
    }
    let _ = write!(out, ",target=\"{}\"", escape(&k.target));
    if !k.env.is_empty() {
        let _ = write!(out, ",env=\"{}\"", escape(&k.env));
    }
    let _ = write!(out, ",version=\"{}\"", escape(&k.version));
    out
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: &str) -> SeriesKey {
        SeriesKey {
            kind: "routine",
            region: String::new(),
            target: "edge-auth".into(),
            env: "production".into(),
            version: version.into(),
        }
    }

    #[test]
    fn a_bad_version_errs_and_is_slow_in_proportion_to_its_share() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut tr = Traffic {
            last: Some(t0),
            ..Traffic::default()
        };
        let shares = [
            Share {
                key: key("v1"),
                share: 0.9,
                bad: false,
            },
            Share {
                key: key("v2-bad"),
                share: 0.1,
                bad: true,
            },
        ];
        let now = add(t0, Duration::from_secs(100));
        for (end, secs) in tr.steps(now) {
            tr.accrue(&shares, secs, end);
        }
        let good = tr.series[&key("v1")];
        let bad = tr.series[&key("v2-bad")];
        assert!((good.requests - 1800.0).abs() < 1e-6, "{good:?}");
        assert!((bad.requests - 200.0).abs() < 1e-6, "{bad:?}");
        assert!((bad.errors / bad.requests - BAD_ERROR_RATIO).abs() < 1e-9);
        assert!((good.errors / good.requests - GOOD_ERROR_RATIO).abs() < 1e-9);
        let (g99, b99) = (good.quantile(0.99).unwrap(), bad.quantile(0.99).unwrap());
        assert!(g99 < 0.26 && b99 > 1.0, "{g99} {b99}");
        let text = tr.render();
        assert!(text.contains(
            "sim_requests_total{kind=\"routine\",target=\"edge-auth\",env=\"production\",version=\"v2-bad\",code=\"500\"} 120\n"
        ), "{text}");
        assert!(text.contains("le=\"+Inf\"} 1800\n"), "{text}");
    }

    #[test]
    fn escaping_and_quantiles_without_requests() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(Totals::default().quantile(0.5), None);
    }

    #[test]
    fn steps_are_bounded_and_cover_the_gap() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let tr = Traffic {
            last: Some(t0),
            ..Traffic::default()
        };
        let steps = tr.steps(add(t0, Duration::from_secs(36_000)));
        assert!(steps.len() <= MAX_STEPS as usize + 1);
        let total: f64 = steps.iter().map(|(_, s)| s).sum();
        assert!((total - 36_000.0).abs() < 1e-6);
        assert!(tr.steps(t0).is_empty());
        assert!(tr.steps(add(t0, Duration::from_millis(50))).is_empty());
    }
}
