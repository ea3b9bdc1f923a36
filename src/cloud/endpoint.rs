//! Where each product's API lives: the documented per-region hosts, or an override.

use super::error::CloudError;

/// The products this client speaks: EAS and ESA, and STS (GetCallerIdentity, to know
/// which account a resource's credentials belong to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    Eas,
    Esa,
    Sts,
    /// CloudMonitor (metrics of the EAS services, for analysis).
    Cms,
}

impl Product {
    pub fn as_str(&self) -> &'static str {
        match self {
            Product::Eas => "eas",
            Product::Esa => "esa",
            Product::Sts => "sts",
            Product::Cms => "cms",
        }
    }

    /// The API version sent in `x-acs-version`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Product::Eas => "2021-07-01",
            Product::Esa => "2024-09-10",
            Product::Sts => "2015-04-01",
            Product::Cms => "2019-01-01",
        }
    }
}

/// The regions that have an ESA API endpoint.
pub const ESA_REGIONS: &[&str] = &["cn-hangzhou", "ap-southeast-1"];

/// A scheme and an authority (`host` or `host:port`): the base of every URL and the value
/// of the signed `host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    pub authority: String,
}

impl Endpoint {
    pub fn https(authority: impl Into<String>) -> Self {
        Endpoint {
            scheme: "https".into(),
            authority: authority.into(),
        }
    }

    /// Parse an override: `http://127.0.0.1:18080`, `https://host`, or a bare `host[:port]`.
    ///
    /// A bare authority whose host is an IP literal or `localhost` means plain `http` (a
    /// local simulator); any other bare host means `https`.
    pub fn parse(value: &str) -> Result<Self, CloudError> {
        let value = value.trim();
        let invalid = |why: &str| CloudError::InvalidRequest(format!("endpoint {value:?}: {why}"));
        let (scheme, authority) = match value.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(invalid("scheme must be http or https"));
                }
                (Some(scheme), rest)
            }
            None => (None, value),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(invalid("expected host or host:port"));
        }
        let url =
            url::Url::parse(&format!("http://{authority}")).map_err(|e| invalid(&e.to_string()))?;
        let host = match url.host() {
            Some(h) => h,
            None => return Err(invalid("no host")),
        };
        let scheme = scheme.unwrap_or_else(|| {
            let local = matches!(host, url::Host::Ipv4(_) | url::Host::Ipv6(_))
                || host.to_string().eq_ignore_ascii_case("localhost");
            if local { "http".into() } else { "https".into() }
        });
        Ok(Endpoint {
            scheme,
            authority: authority.to_string(),
        })
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// A region id as the cloud writes them (`cn-shanghai`, `ap-southeast-1`): lowercase
/// letters, digits and dashes. Checked because it becomes part of a host name.
pub fn validate_region(region: &str) -> Result<(), CloudError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CloudError::InvalidRequest(format!(
            "invalid region id {region:?}"
        )))
    }
}

/// The documented endpoint of `product` in `region`.
pub fn default_endpoint(product: Product, region: &str, vpc: bool) -> Result<Endpoint, CloudError> {
    if product == Product::Sts {
        // STS answers GetCallerIdentity the same everywhere: the global endpoint.
        return default_sts_endpoint(None, vpc);
    }
    validate_region(region)?;
    match product {
        Product::Eas => Ok(Endpoint::https(if vpc {
            format!("pai-eas-manage-vpc.{region}.aliyuncs.com")
        } else {
            format!("pai-eas.{region}.aliyuncs.com")
        })),
        Product::Esa => {
            if !ESA_REGIONS.contains(&region) {
                return Err(CloudError::InvalidRequest(format!(
                    "ESA has no API endpoint in {region:?}; use one of {ESA_REGIONS:?}"
                )));
            }
            Ok(Endpoint::https(if vpc {
                format!("esa-vpc.{region}.aliyuncs.com")
            } else {
                format!("esa.{region}.aliyuncs.com")
            }))
        }
        Product::Sts => default_sts_endpoint(None, vpc),
        // CloudMonitor has one host per region, reachable from a VPC too.
        Product::Cms => Ok(Endpoint::https(format!("metrics.{region}.aliyuncs.com"))),
    }
}

/// The STS endpoint the official SDKs pick: `sts[-vpc].{region}.aliyuncs.com` when a region
/// is given, else `sts.aliyuncs.com`.
pub fn default_sts_endpoint(region: Option<&str>, vpc: bool) -> Result<Endpoint, CloudError> {
    match region.filter(|r| !r.is_empty()) {
        Some(region) => {
            validate_region(region)?;
            let prefix = if vpc { "sts-vpc" } else { "sts" };
            Ok(Endpoint::https(format!("{prefix}.{region}.aliyuncs.com")))
        }
        None => Ok(Endpoint::https("sts.aliyuncs.com")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_hosts() {
        assert_eq!(
            default_endpoint(Product::Eas, "cn-shanghai", false).unwrap(),
            Endpoint::https("pai-eas.cn-shanghai.aliyuncs.com")
        );
        assert_eq!(
            default_endpoint(Product::Eas, "cn-shanghai", true)
                .unwrap()
                .authority,
            "pai-eas-manage-vpc.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            default_endpoint(Product::Esa, "ap-southeast-1", false)
                .unwrap()
                .base_url(),
            "https://esa.ap-southeast-1.aliyuncs.com"
        );
        assert!(default_endpoint(Product::Esa, "cn-shanghai", false).is_err());
        assert_eq!(
            default_endpoint(Product::Cms, "cn-shanghai", true)
                .unwrap()
                .base_url(),
            "https://metrics.cn-shanghai.aliyuncs.com"
        );
        assert!(default_endpoint(Product::Eas, "cn-shanghai.evil.com/x", false).is_err());
        assert!(default_endpoint(Product::Eas, "", false).is_err());
        assert_eq!(
            default_sts_endpoint(None, true).unwrap().authority,
            "sts.aliyuncs.com"
        );
        assert_eq!(
            default_sts_endpoint(Some("cn-beijing"), true)
                .unwrap()
                .authority,
            "sts-vpc.cn-beijing.aliyuncs.com"
        );
    }

    #[test]
    fn overrides() {
        let e = Endpoint::parse("http://127.0.0.1:18080").unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str()),
            ("http", "127.0.0.1:18080")
        );
        let e = Endpoint::parse("127.0.0.1:18080").unwrap();
        assert_eq!(e.base_url(), "http://127.0.0.1:18080");
        let e = Endpoint::parse("localhost:9000/").unwrap();
        assert_eq!(e.base_url(), "http://localhost:9000");
        let e = Endpoint::parse("eas.example.internal").unwrap();
        assert_eq!(e.base_url(), "https://eas.example.internal");
        let e = Endpoint::parse("HTTPS://[::1]:8443").unwrap();
        assert_eq!(e.base_url(), "https://[::1]:8443");
        for bad in ["", "ftp://x", "http://", "http://a/b", "a b", "user@host"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
