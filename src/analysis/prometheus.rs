//! The `prometheus` provider: an instant query against any Prometheus HTTP API
//! (`GET <address>/api/v1/query?query=...`), self-hosted or ARMS managed Prometheus.
//!
//! Written with reqwest and serde rather than the `prometheus-http-query` crate: the one
//! endpoint and its four result types are a few lines, and that crate would add a second
//! HTTP stack configuration (its own reqwest features, default TLS) to keep in line with
//! the operator's rustls-only client, timeouts and body bound.
//!
//! Results: a vector with one sample is a number, with several a list of numbers (in the
//! order Prometheus gives), with none an empty list; a scalar is a number; a matrix is a
//! list of lists. `NaN` (e.g. 0/0 when there is no traffic) becomes `null`, on which a
//! numeric condition is an error (an Error measurement, never a pass); `+Inf`/`-Inf`
//! become the largest/smallest finite number.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::send;
use super::{Provider, ProviderError};

/// One Prometheus query, with its arguments substituted.
pub struct PrometheusProvider {
    pub http: reqwest::Client,
    pub address: String,
    pub query: String,
    /// Header name and value (from a Secret).
    pub auth: Option<(String, String)>,
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl Provider for PrometheusProvider {
    async fn measure(&self) -> Result<Value, ProviderError> {
        let url = format!("{}/api/v1/query", self.address.trim_end_matches('/'));
        let mut request = self.http.get(url).query(&[("query", &self.query)]);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.as_str(), value.as_str());
        }
        let answer = send(request, self.timeout).await?;
        if answer.is_success() {
            return parse(&answer.body);
        }
        // Prometheus explains a refused query in a JSON body; anything else is shown as is.
        let why = match parse(&answer.body) {
            Err(ProviderError::Failed(m)) if m.starts_with("prometheus:") => m,
            _ => answer.snippet(),
        };
        Err(ProviderError::Failed(format!(
            "HTTP {}: {why}",
            answer.status
        )))
    }

    fn query(&self) -> String {
        self.query.clone()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    Scalar(Point),
    String(Point),
}

#[derive(Deserialize)]
struct Sample {
    value: Point,
}

#[derive(Deserialize)]
struct Series {
    values: Vec<Point>,
}

/// `[ <unix time>, "<value>" ]`
#[derive(Deserialize)]
struct Point(#[allow(dead_code)] Value, String);

/// Read a Prometheus API answer into the CEL `result`.
pub fn parse(body: &[u8]) -> Result<Value, ProviderError> {
    let response: Response = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Failed(format!("the answer is not a Prometheus API response: {e}"))
    })?;
    if response.status != "success" {
        return Err(ProviderError::Failed(format!(
            "prometheus: {}: {}",
            response.error_type.as_deref().unwrap_or("error"),
            response.error.as_deref().unwrap_or("no message")
        )));
    }
    let data = response
        .data
        .ok_or_else(|| ProviderError::Failed("the answer has no data".to_string()))?;
    Ok(match data {
        Data::Vector(samples) if samples.len() == 1 => number(&samples[0].value.1)?,
        Data::Vector(samples) => Value::Array(
            samples
                .iter()
                .map(|s| number(&s.value.1))
                .collect::<Result<_, _>>()?,
        ),
        Data::Matrix(series) => Value::Array(
            series
                .iter()
                .map(|s| s.values.iter().map(|p| number(&p.1)).collect())
                .collect::<Result<_, _>>()?,
        ),
        Data::Scalar(point) => number(&point.1)?,
        Data::String(point) => Value::String(point.1),
    })
}

/// A sample value ("0.25", "NaN", "+Inf") as JSON.
fn number(text: &str) -> Result<Value, ProviderError> {
    let v: f64 = match text {
        "NaN" => return Ok(Value::Null),
        "+Inf" | "Inf" => f64::MAX,
        "-Inf" => f64::MIN,
        _ => text
            .parse()
            .map_err(|_| ProviderError::Failed(format!("sample value {text:?} is not a number")))?,
    };
    if v.is_nan() {
        return Ok(Value::Null);
    }
    Ok(json!(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(values: &[&str]) -> String {
        let samples: Vec<Value> = values
            .iter()
            .map(|v| json!({"metric": {"version": "v2"}, "value": [1700000000.5, v]}))
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": samples}})
            .to_string()
    }

    #[test]
    fn one_sample_is_a_number_several_a_list_none_an_empty_list() {
        assert_eq!(parse(vector(&["0.25"]).as_bytes()), Ok(json!(0.25)));
        assert_eq!(parse(vector(&["1", "2"]).as_bytes()), Ok(json!([1.0, 2.0])));
        assert_eq!(parse(vector(&[]).as_bytes()), Ok(json!([])));
        assert_eq!(parse(vector(&["NaN"]).as_bytes()), Ok(Value::Null));
        assert_eq!(parse(vector(&["+Inf"]).as_bytes()), Ok(json!(f64::MAX)));
    }

    #[test]
    fn scalar_matrix_and_string_results() {
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(parse(scalar.as_bytes()), Ok(json!(3.0)));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#;
        assert_eq!(parse(matrix.as_bytes()), Ok(json!([[1.0, 2.0]])));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"up"]}}"#;
        assert_eq!(parse(string.as_bytes()), Ok(json!("up")));
    }

    #[test]
    fn errors_and_garbage_are_provider_errors() {
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(
            parse(err.as_bytes()),
            Err(ProviderError::Failed(
                "prometheus: bad_data: parse error at char 5".into()
            ))
        );
        assert!(parse(b"<html>").is_err());
        assert!(parse(vector(&["abc"]).as_bytes()).is_err());
    }
}
