//! Settings of the cloud client, parsed once at start-up (flags or environment).

use std::time::Duration;

/// Default of `--cloud-max-response-bytes`: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Options of the cloud client. The controller's `RunArgs` can `#[command(flatten)]` it.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Send every EAS call here instead of `pai-eas.{region}.aliyuncs.com`
    /// (`http://127.0.0.1:18080` or `127.0.0.1:18080`, e.g. the simulator).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_EAS_ENDPOINT")]
    pub eas_endpoint: Option<String>,

    /// Send every ESA call here instead of `esa.{region}.aliyuncs.com`.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_ESA_ENDPOINT")]
    pub esa_endpoint: Option<String>,

    /// Send every CloudMonitor call (analysis with the `cloudMonitor` provider) here
    /// instead of `metrics.{region}.aliyuncs.com`.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_CMS_ENDPOINT")]
    pub cms_endpoint: Option<String>,

    /// STS endpoint: RRSA token exchange (wins over ALIBABA_CLOUD_STS_ENDPOINT) and
    /// GetCallerIdentity (default `sts.aliyuncs.com`).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,

    /// Use the VPC endpoints of EAS and ESA (`pai-eas-manage-vpc.*`, `esa-vpc.*`).
    #[arg(
        long = "cloud-vpc-endpoints",
        env = "ALICLOUD_ROLLOUTS_VPC_ENDPOINTS",
        default_value_t = false
    )]
    pub vpc_endpoints: bool,

    /// Timeout of one HTTP attempt (`500ms`, `10s`, `1m`).
    #[arg(long = "cloud-call-timeout", env = "ALICLOUD_ROLLOUTS_CALL_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub call_timeout: Duration,

    /// Overall deadline of one call, retries and waits included.
    #[arg(long = "cloud-call-deadline", env = "ALICLOUD_ROLLOUTS_CALL_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub call_deadline: Duration,

    /// Retries of a transient or throttled failure (0 disables retrying).
    #[arg(
        long = "cloud-max-retries",
        env = "ALICLOUD_ROLLOUTS_MAX_RETRIES",
        default_value_t = 4
    )]
    pub max_retries: u32,

    /// First backoff delay; it doubles per retry (plus up to 100% jitter).
    #[arg(long = "cloud-retry-base", env = "ALICLOUD_ROLLOUTS_RETRY_BASE", default_value = "200ms", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Largest backoff delay before jitter.
    #[arg(long = "cloud-retry-max", env = "ALICLOUD_ROLLOUTS_RETRY_MAX", default_value = "5s", value_parser = parse_duration)]
    pub retry_max: Duration,

    /// Requests per second allowed per API action (the cloud allows 100/s per account
    /// and API, shared with every other client of the account).
    #[arg(
        long = "cloud-rate-limit",
        env = "ALICLOUD_ROLLOUTS_RATE_LIMIT",
        default_value_t = 20
    )]
    pub rate_limit_per_api: u32,

    /// Largest answer body read from the cloud (and STS), in bytes: past it the call fails
    /// with ResponseTooLarge and reading stops, so a broken endpoint or proxy cannot
    /// exhaust the operator's memory. The largest real answers (a service's config, a page
    /// of versions) are tens of KiB.
    #[arg(
        long = "cloud-max-response-bytes",
        env = "ALICLOUD_ROLLOUTS_MAX_RESPONSE_BYTES",
        default_value_t = DEFAULT_MAX_RESPONSE_BYTES
    )]
    pub max_response_bytes: usize,

    /// Burst size of each per-API token bucket.
    #[arg(
        long = "cloud-rate-burst",
        env = "ALICLOUD_ROLLOUTS_RATE_BURST",
        default_value_t = 20
    )]
    pub rate_limit_burst: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            eas_endpoint: None,
            esa_endpoint: None,
            cms_endpoint: None,
            sts_endpoint: None,
            vpc_endpoints: false,
            call_timeout: Duration::from_secs(10),
            call_deadline: Duration::from_secs(30),
            max_retries: 4,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            rate_limit_per_api: 20,
            rate_limit_burst: 20,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// Parse `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {value:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {value:?} (use ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        cloud: ClientConfig,
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn flags_flatten_with_documented_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.cloud, ClientConfig::default());
        let cli = Cli::try_parse_from([
            "x",
            "--eas-endpoint",
            "127.0.0.1:1",
            "--cloud-call-timeout",
            "750ms",
            "--cloud-rate-limit",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.cloud.eas_endpoint.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(cli.cloud.call_timeout, Duration::from_millis(750));
        assert_eq!(cli.cloud.rate_limit_per_api, 5);
    }
}
