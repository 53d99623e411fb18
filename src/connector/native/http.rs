//! `http`: one HTTP request described entirely by the step's `with`, for
//! services without a connector file: `method` (default GET), `url`,
//! `headers`, `query`, `body` (sent as JSON) and `timeout_seconds`
//! (default 30). The output is `{status, headers, body}`. Errors follow the
//! same rules as connector operations: 408, 429 and 5xx may be retried,
//! other non-2xx answers fail the step with the status and the start of
//! the body. The step's idempotency key is sent as `Idempotency-Key`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{NativeCall, NativeConnector, required_str};
use crate::connector::http::{describe_send_error, response_value, status_error};
use crate::engine::error::StepError;

pub const HTTP_OPERATIONS: &[&str] = &["request"];

pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Self {
        crate::app::install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(crate::connector::http::CONNECT_TIMEOUT)
            .build()
            .expect("building the HTTP client needs only a TLS provider, installed above");
        Http { client }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl NativeConnector for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn operations(&self) -> &'static [&'static str] {
        HTTP_OPERATIONS
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
        call: &NativeCall<'_>,
    ) -> Result<Value, StepError> {
        if operation != "request" {
            return Err(StepError::permanent(format!(
                "http has no operation `{operation}`; use request"
            )));
        }
        let url = required_str(input, "url", "http.request")?;
        let method = input
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            StepError::permanent(format!("http.request: invalid method `{method}`"))
        })?;
        let seconds = input
            .get("timeout_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(30.0);
        let mut request = self
            .client
            .request(method, url)
            .timeout(Duration::from_secs_f64(seconds.max(0.001)))
            .header("Idempotency-Key", call.idempotency_key);
        for (name, value) in input
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            request = request.header(name.as_str(), text(value));
        }
        let query: Vec<(String, String)> = input
            .get("query")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), text(value)))
            .collect();
        if !query.is_empty() {
            request = request.query(&query);
        }
        if let Some(body) = input.get("body").filter(|body| !body.is_null()) {
            request = request.json(body);
        }

        let name = format!("http.request to {url}");
        let response = request
            .send()
            .await
            .map_err(|error| describe_send_error(&name, &error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| describe_send_error(&name, &error))?;
        if !status.is_success() {
            return Err(status_error(&name, status, &headers, &bytes));
        }
        Ok(response_value(status, &headers, &bytes))
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
