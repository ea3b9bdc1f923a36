//! The `web` provider: an HTTP GET or POST answering JSON, the value picked with JSONPath
//! (RFC 9535, with the `jsonpath-rust` crate the Kubernetes client already depends on).
//! A 2xx answer with no `jsonPath` gives `true`: a gate any CI job or smoke test can open.

use std::time::Duration;

use jsonpath_rust::JsonPath;
use serde_json::Value;

use super::http::send;
use super::{Provider, ProviderError};
use crate::crd::analysis::WebMethod;

/// One web metric, with its arguments substituted.
pub struct WebProvider {
    pub http: reqwest::Client,
    pub method: WebMethod,
    pub url: String,
    /// Plain headers, then the Secret one.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub json_path: Option<String>,
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl Provider for WebProvider {
    async fn measure(&self) -> Result<Value, ProviderError> {
        let mut request = match self.method {
            WebMethod::Get => self.http.get(&self.url),
            WebMethod::Post => self.http.post(&self.url),
        };
        let has_content_type = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &self.body {
            if !has_content_type {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body.clone());
        }
        let answer = send(request, self.timeout).await?;
        if !answer.is_success() {
            return Err(ProviderError::Failed(format!(
                "HTTP {}: {}",
                answer.status,
                answer.snippet()
            )));
        }
        match &self.json_path {
            None => Ok(Value::Bool(true)),
            Some(path) => pick(&answer.body, path),
        }
    }

    fn query(&self) -> String {
        let method = match self.method {
            WebMethod::Get => "GET",
            WebMethod::Post => "POST",
        };
        match &self.json_path {
            Some(path) => format!("{method} {} {path}", self.url),
            None => format!("{method} {}", self.url),
        }
    }
}

/// The value at `path` in a JSON body: one match is that value, several a list.
pub fn pick(body: &[u8], path: &str) -> Result<Value, ProviderError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Failed(format!("the answer is not JSON: {e}")))?;
    let found = json
        .query(path)
        .map_err(|e| ProviderError::Failed(format!("jsonPath {path:?} is not valid: {e}")))?;
    match found.as_slice() {
        [] => Err(ProviderError::Failed(format!(
            "jsonPath {path:?} matched nothing in the answer"
        ))),
        [one] => Ok((*one).clone()),
        many => Ok(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_path_picks_one_value_or_a_list() {
        let body = br#"{"data":{"errorRate":0.02,"checks":[{"ok":true},{"ok":false}]}}"#;
        assert_eq!(pick(body, "$.data.errorRate"), Ok(json!(0.02)));
        assert_eq!(pick(body, "$.data.checks[*].ok"), Ok(json!([true, false])));
        assert_eq!(
            pick(body, "$.data"),
            Ok(json!({"errorRate":0.02,"checks":[{"ok":true},{"ok":false}]}))
        );
    }

    #[test]
    fn no_match_bad_path_and_bad_json_are_errors() {
        let body = br#"{"a":1}"#;
        assert!(
            pick(body, "$.b")
                .unwrap_err()
                .to_string()
                .contains("matched nothing")
        );
        assert!(
            pick(body, "$[")
                .unwrap_err()
                .to_string()
                .contains("not valid")
        );
        assert!(
            pick(b"not json", "$.a")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
