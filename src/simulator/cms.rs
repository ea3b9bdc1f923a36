//! CloudMonitor (`cms`, version 2019-01-01, RPC style): DescribeMetricLast and
//! DescribeMetricList for the PAI-EAS service metrics (namespace `acs_pai_eas`), answered
//! from the same traffic model `/metrics` exposes ([`super::traffic`]).
//!
//! Like the cloud, CloudMonitor sees a service as a whole: its datapoints sum every
//! revision the service runs (no per-revision series).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::api::{Params, World};
use super::error::{ApiError, ApiResult};
use super::traffic::Totals;

pub const CMS_VERSION: &str = "2019-01-01";
pub const EAS_NAMESPACE: &str = "acs_pai_eas";
/// Most services one call may name (the cloud's limit).
const MAX_DIMENSIONS: usize = 50;
/// Most datapoints one page holds when `Length` is not given.
const DEFAULT_LENGTH: usize = 1000;
/// How far back DescribeMetricList looks when `StartTime` is not given.
const DEFAULT_SPAN_MS: i64 = 3_600_000;

/// The metrics of `acs_pai_eas` the simulator serves.
pub const METRICS: [&str; 13] = [
    "QueryPerSecondTotal",
    "ResponsePerSecondWithStatusCode2xx",
    "ResponsePerSecondWithStatusCode4xx",
    "ResponsePerSecondWithStatusCode5xx",
    "2xxResponseRatio",
    "4xxResponseRatio",
    "5xxResponseRatio",
    "ResponseTime",
    "ResponseTimeTP80",
    "ResponseTimeTP90",
    "ResponseTimeTP95",
    "ResponseTimeTP99",
    "ResponseTimeTP100",
];

/// Is this a CloudMonitor action the simulator serves?
pub fn cms_action(a: &str) -> bool {
    matches!(a, "DescribeMetricLast" | "DescribeMetricList")
}

/// The value of `metric` over `d` (the requests of one period of `seconds`); `None`
/// when the metric has no data (a ratio or a latency without requests).
pub fn metric_value(metric: &str, d: &Totals, seconds: f64) -> Option<f64> {
    let per_second = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
    let ok = (d.requests - d.errors).max(0.0);
    let percent = |n: f64| (d.requests > 0.0).then(|| 100.0 * n / d.requests);
    let ms = |q: f64| d.quantile(q).map(|s| s * 1000.0);
    let v = match metric {
        "QueryPerSecondTotal" => Some(per_second(d.requests)),
        "ResponsePerSecondWithStatusCode2xx" => Some(per_second(ok)),
        "ResponsePerSecondWithStatusCode4xx" => Some(0.0),
        "ResponsePerSecondWithStatusCode5xx" => Some(per_second(d.errors)),
        "2xxResponseRatio" => percent(ok),
        "4xxResponseRatio" => percent(0.0),
        "5xxResponseRatio" => percent(d.errors),
        "ResponseTime" => (d.requests > 0.0).then(|| 1000.0 * d.seconds_sum / d.requests),
        "ResponseTimeTP80" => ms(0.80),
        "ResponseTimeTP90" => ms(0.90),
        "ResponseTimeTP95" => ms(0.95),
        "ResponseTimeTP99" => ms(0.99),
        "ResponseTimeTP100" => ms(1.0),
        _ => None,
    }?;
    Some((v * 1000.0).round() / 1000.0)
}

/// One CloudMonitor call on `world` (of `account`).
pub(crate) fn dispatch(
    world: &World,
    action: &str,
    p: &Params,
    now: Timestamp,
    account: &str,
) -> ApiResult<Value> {
    let q = Query::parse(p, now, action == "DescribeMetricLast")?;
    let services = q.services(world)?;
    let mut points = Vec::new();
    for (key, name) in &services {
        for (start, end) in &q.windows {
            let d = world
                .traffic
                .service_at(key, ms_to_ts(*end))
                .minus(&world.traffic.service_at(key, ms_to_ts(*start)));
            let seconds = (end - start) as f64 / 1000.0;
            if let Some(v) = metric_value(&q.metric, &d, seconds) {
                points.push(datapoint(*start, account, name, &q.dimension_keys, v));
            }
        }
    }
    let offset: usize = match p.opt("NextToken") {
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad("InvalidParameter", "NextToken is not valid."))?,
        None => 0,
    };
    let page: Vec<Value> = points.iter().skip(offset).take(q.length).cloned().collect();
    let next = offset + page.len();
    let datapoints = serde_json::to_string(&page)
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    Ok(json!({
        "Code": "200",
        "Success": true,
        "Message": "",
        "Period": q.period.to_string(),
        "Datapoints": datapoints,
        "NextToken": (next < points.len()).then(|| next.to_string()),
    }))
}

fn datapoint(start_ms: i64, account: &str, service: &str, keys: &[String], v: f64) -> Value {
    let mut m = Map::new();
    m.insert("timestamp".into(), json!(start_ms));
    m.insert("userId".into(), json!(account));
    for k in keys {
        m.insert(k.clone(), json!(service));
    }
    if keys.is_empty() {
        m.insert("serviceName".into(), json!(service));
    }
    for stat in ["Average", "Maximum", "Minimum", "Value"] {
        m.insert(stat.into(), json!(v));
    }
    Value::Object(m)
}

/// A parsed DescribeMetricLast / DescribeMetricList request.
struct Query {
    metric: String,
    period: i64,
    /// `[start, end)` in milliseconds, one per datapoint.
    windows: Vec<(i64, i64)>,
    /// Services asked for: `None` for all.
    wanted: Option<Vec<(Option<String>, String)>>,
    /// The dimension keys used (echoed in each datapoint).
    dimension_keys: Vec<String>,
    length: usize,
}

impl Query {
    fn parse(p: &Params, now: Timestamp, last: bool) -> ApiResult<Query> {
        let namespace = p.req("Namespace")?;
        if namespace != EAS_NAMESPACE {
            return Err(ApiError::bad(
                "InvalidParameter",
                format!("The simulator serves namespace {EAS_NAMESPACE} only, not {namespace:?}."),
            ));
        }
        let metric = p.req("MetricName")?.to_string();
        if !METRICS.contains(&metric.as_str()) {
            return Err(ApiError::bad(
                "InvalidParameter",
                format!("MetricName {metric:?} is not a metric of {EAS_NAMESPACE}."),
            ));
        }
        let period = p.int("Period", "InvalidParameter")?.unwrap_or(60);
        if !(1..=86_400).contains(&period) {
            return Err(ApiError::invalid(
                "Period must be within 1..=86400 seconds.",
            ));
        }
        let end = match p.opt("EndTime") {
            Some(t) => parse_time(t, "EndTime")?,
            None => now.as_millisecond(),
        }
        .min(now.as_millisecond());
        let start = match p.opt("StartTime") {
            Some(t) => parse_time(t, "StartTime")?,
            None if last => end - period * 1000,
            None => end - DEFAULT_SPAN_MS,
        };
        if start >= end {
            return Err(ApiError::invalid("StartTime must be before EndTime."));
        }
        let windows = windows(start, end, period * 1000, last);
        let (wanted, dimension_keys) = parse_dimensions(p.opt("Dimensions"))?;
        let length = match p.int("Length", "InvalidParameter")? {
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            Some(_) => return Err(ApiError::invalid("Length must be within 1..=10000.")),
            None => DEFAULT_LENGTH,
        };
        Ok(Query {
            metric,
            period,
            windows,
            wanted,
            dimension_keys,
            length,
        })
    }

    /// The services asked for, as (`region/name`, name), in order.
    fn services(&self, world: &World) -> ApiResult<Vec<(String, String)>> {
        let all = world
            .services
            .values()
            .map(|s| (s.region.clone(), s.name.clone()));
        let found: Vec<(String, String)> = match &self.wanted {
            None => all.map(|(r, n)| (format!("{r}/{n}"), n)).collect(),
            Some(wanted) => all
                .filter(|(r, n)| {
                    wanted
                        .iter()
                        .any(|(wr, wn)| wn == n && wr.as_ref().is_none_or(|wr| wr == r))
                })
                .map(|(r, n)| (format!("{r}/{n}"), n))
                .collect(),
        };
        Ok(found)
    }
}

/// DescribeMetricLast: the one period ending at `end`. DescribeMetricList: every whole
/// period aligned to the epoch inside `[start, end]` (at most 1440).
fn windows(start: i64, end: i64, period_ms: i64, last: bool) -> Vec<(i64, i64)> {
    if last {
        return vec![(end - period_ms, end)];
    }
    let mut out = Vec::new();
    let mut t = start.div_euclid(period_ms) * period_ms;
    if t < start {
        t += period_ms;
    }
    while t + period_ms <= end && out.len() < 1440 {
        out.push((t, t + period_ms));
        t += period_ms;
    }
    out
}

/// `[{"serviceName":"llm-chat"}]`, `{"serviceId":"llm-chat"}` (a service's name: the
/// simulator has no separate ids), optionally with `regionId`.
#[allow(clippy::type_complexity)]
fn parse_dimensions(
    raw: Option<&str>,
) -> ApiResult<(Option<Vec<(Option<String>, String)>>, Vec<String>)> {
    let Some(raw) = raw else {
        return Ok((None, Vec::new()));
    };
    let bad = || {
        ApiError::bad(
            "InvalidParameter",
            "Dimensions must be a JSON object or array of objects with serviceName or serviceId.",
        )
    };
    let value: Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let list = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err(bad()),
    };
    if list.len() > MAX_DIMENSIONS {
        return Err(ApiError::invalid("Dimensions name at most 50 instances."));
    }
    let mut wanted = Vec::new();
    let mut keys = Vec::new();
    for item in &list {
        let obj = item.as_object().ok_or_else(bad)?;
        let (key, name) = ["serviceName", "serviceId"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_str).map(|v| (*k, v)))
            .ok_or_else(bad)?;
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
        let region = obj
            .get("regionId")
            .and_then(Value::as_str)
            .map(str::to_string);
        wanted.push((region, name.to_string()));
    }
    Ok((Some(wanted), keys))
}

/// Milliseconds since the epoch, or `yyyy-MM-dd HH:mm:ss` read as UTC+8 (the cloud's
/// console time), or RFC 3339.
fn parse_time(v: &str, name: &str) -> ApiResult<i64> {
    let v = v.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", v)
        .map_err(|_| ApiError::invalid(format!("{name} {v:?} is not a time.")))?;
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
    civil
        .to_zoned(tz)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| ApiError::invalid(format!("{name} {v:?} is not a time.")))
}

fn ms_to_ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_forms() {
        assert_eq!(parse_time("1700000000000", "T").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", "T").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-15 06:13:20", "T").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("yesterday", "T").is_err());
    }

    #[test]
    fn list_windows_are_aligned_whole_periods() {
        assert_eq!(
            windows(30_000, 200_000, 60_000, false),
            vec![(60_000, 120_000), (120_000, 180_000)]
        );
        assert_eq!(windows(0, 200_000, 60_000, true), vec![(140_000, 200_000)]);
    }

    #[test]
    fn dimensions_accept_an_object_or_a_list() {
        let (w, k) = parse_dimensions(Some(r#"{"serviceId":"a"}"#)).unwrap();
        assert_eq!(w.unwrap(), vec![(None, "a".to_string())]);
        assert_eq!(k, vec!["serviceId".to_string()]);
        let (w, _) =
            parse_dimensions(Some(r#"[{"serviceName":"a","regionId":"cn-shanghai"}]"#)).unwrap();
        assert_eq!(w.unwrap(), vec![(Some("cn-shanghai".into()), "a".into())]);
        for bad in ["[1]", "\"x\"", "{\"instanceId\":\"i\"}", "{"] {
            assert!(parse_dimensions(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ratios_are_percentages_and_need_requests() {
        let d = Totals {
            requests: 100.0,
            errors: 60.0,
            seconds_sum: 120.0,
            ..Totals::default()
        };
        assert_eq!(metric_value("5xxResponseRatio", &d, 60.0), Some(60.0));
        assert_eq!(metric_value("ResponseTime", &d, 60.0), Some(1200.0));
        assert_eq!(
            metric_value("5xxResponseRatio", &Totals::default(), 60.0),
            None
        );
        assert_eq!(
            metric_value("QueryPerSecondTotal", &Totals::default(), 60.0),
            Some(0.0)
        );
    }
}
