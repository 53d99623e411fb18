//! Sends connector operations over HTTP with reqwest and reads the responses.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value};

use super::model::{Auth, Connector, Operation, ResponseRules};
use crate::engine::error::StepError;
use crate::expr::{Context, ScriptEngine, Template};
use crate::workflow::checker::secrets_value;

/// Time allowed to open a connection, for every call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of a failed answer's body kept in the step error.
const BODY_EXCERPT: usize = 200;

/// Values a call takes from the run that makes it.
pub struct CallContext<'a> {
    pub run_id: &'a str,
    /// Sent as the operation's idempotency header: `<run id>:<step path>`.
    pub idempotency_key: &'a str,
    pub input: &'a Value,
}

/// Page of a paginated listing that a request fetches.
pub(super) enum PageArg {
    None,
    /// A query parameter added to the operation's own.
    Query(String, String),
    /// A full URL from a `Link` header.
    Url(String),
}

#[derive(Clone)]
pub struct HttpRuntime {
    client: reqwest::Client,
    pub(super) scripts: ScriptEngine,
    limits: std::sync::Arc<super::limits::Limits>,
    pub(super) tokens: std::sync::Arc<super::token::TokenCache>,
}

impl HttpRuntime {
    pub fn new(scripts: ScriptEngine) -> Self {
        crate::app::install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the HTTP client needs only a TLS provider, installed at start");
        HttpRuntime {
            client,
            scripts,
            limits: std::sync::Arc::default(),
            tokens: std::sync::Arc::default(),
        }
    }

    /// Calls `operation` of `connector` and returns the step output.
    pub async fn call(
        &self,
        connector: &Connector,
        operation_name: &str,
        operation: &Operation,
        call: &CallContext<'_>,
    ) -> Result<Value, StepError> {
        let name = format!("{}.{operation_name}", connector.name);
        let context = self.request_context(connector, call);
        if let Some(paginate) = &operation.paginate {
            let request = super::paginate::PagedCall {
                name: &name,
                connector,
                operation,
                paginate,
                call,
            };
            return self.call_pages(&request, context).await;
        }
        let answer = self
            .send(&name, connector, operation, &context, call, &PageArg::None)
            .await?;
        self.read_answer(&name, &operation.response, context, answer)
    }

    /// Sends one request, after the connector's rate and concurrency limits
    /// allow it, and returns the `response` value of a 2xx response.
    pub(super) async fn send(
        &self,
        name: &str,
        connector: &Connector,
        operation: &Operation,
        context: &Context,
        call: &CallContext<'_>,
        page: &PageArg,
    ) -> Result<Value, StepError> {
        let mut retried = false;
        loop {
            let token = match &connector.auth {
                Some(Auth::Token(auth)) => Some(self.token_header(connector, auth, context).await?),
                _ => None,
            };
            let mut request = self
                .build_request(connector, operation, context, call, page)
                .map_err(|message| StepError::permanent(format!("{name}: {message}")))?;
            if let PageArg::Query(param, value) = page {
                request = request.query(&[(param, value)]);
            }
            if let Some((header, value)) = &token {
                request = request.header(header.as_str(), value.as_str());
            }
            let _permit = self.limits.acquire(connector).await;
            let (status, headers, bytes) = self.exchange(name, request).await?;
            if let Some(reported) = connector
                .rate_limit
                .as_ref()
                .and_then(|rate| rate.usage_header.as_ref())
                .and_then(|header| headers.get(header.as_str()))
                .and_then(|value| value.to_str().ok())
            {
                self.limits.observe_usage(connector, reported);
            }
            if status == StatusCode::UNAUTHORIZED && token.is_some() && !retried {
                // The token may have been revoked or expired early.
                tracing::info!(connector = %connector.name, "token rejected; fetching a new one");
                self.tokens.invalidate(&connector.name);
                retried = true;
                continue;
            }
            if !status.is_success() {
                return Err(status_error(name, status, &headers, &bytes));
            }
            return Ok(response_value(status, &headers, &bytes));
        }
    }

    /// Sends a request outside any operation (a token request) and returns
    /// the `response` value of a 2xx answer.
    pub(super) async fn send_plain(
        &self,
        name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, StepError> {
        let (status, headers, bytes) = self.exchange(name, request).await?;
        if !status.is_success() {
            return Err(status_error(name, status, &headers, &bytes));
        }
        Ok(response_value(status, &headers, &bytes))
    }

    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn exchange(
        &self,
        name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), StepError> {
        let response = request
            .send()
            .await
            .map_err(|error| describe_send_error(name, &error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| describe_send_error(name, &error))?;
        Ok((status, headers, bytes))
    }

    fn request_context(&self, connector: &Connector, call: &CallContext<'_>) -> Context {
        let mut context = Context::new();
        context.set_shared("input", call.input);
        context.set_shared("config", &Value::Object(connector.config.clone()));
        context.set_shared("secrets", &secrets_value(&connector.secrets));
        context.set_shared("run", &serde_json::json!({ "id": call.run_id }));
        context
    }

    fn build_request(
        &self,
        connector: &Connector,
        operation: &Operation,
        context: &Context,
        call: &CallContext<'_>,
        page: &PageArg,
    ) -> Result<reqwest::RequestBuilder, String> {
        let url = match page {
            PageArg::Url(next) => next.clone(),
            _ => {
                let path = self.render_text(&operation.path, context, "path")?;
                format!("{}{path}", connector.base_url)
            }
        };
        let mut request = self
            .client
            .request(operation.method.clone(), &url)
            .timeout(operation.timeout)
            .header(
                operation.idempotency_key_header.as_str(),
                call.idempotency_key,
            );

        let mut query = Vec::new();
        // A `Link` header's next URL already carries the listing's query.
        let own_query = if matches!(page, PageArg::Url(_)) {
            &[][..]
        } else {
            &operation.query[..]
        };
        for (name, template) in own_query {
            let value = self
                .scripts
                .render_value(template, context)
                .map_err(|e| format!("query `{name}`: {e}"))?;
            match value {
                Value::Null => {}
                Value::String(text) => query.push((name.clone(), text)),
                other => query.push((name.clone(), other.to_string())),
            }
        }
        if !query.is_empty() {
            request = request.query(&query);
        }

        for (name, template) in &operation.headers {
            let value = self.render_text(template, context, name)?;
            request = request.header(name.as_str(), value);
        }
        request = self.apply_auth(request, connector.auth.as_ref(), context)?;

        if let Some(body) = &operation.body {
            let body = self
                .scripts
                .render_value(body, context)
                .map_err(|e| format!("body: {e}"))?;
            request = request.json(&body);
        }
        Ok(request)
    }

    fn apply_auth(
        &self,
        request: reqwest::RequestBuilder,
        auth: Option<&Auth>,
        context: &Context,
    ) -> Result<reqwest::RequestBuilder, String> {
        Ok(match auth {
            None => request,
            Some(Auth::Bearer(token)) => {
                request.bearer_auth(self.render_text(token, context, "auth.bearer")?)
            }
            Some(Auth::Basic { username, password }) => {
                let username = self.render_text(username, context, "auth.basic.username")?;
                let password = self.render_text(password, context, "auth.basic.password")?;
                request.basic_auth(username, Some(password))
            }
            Some(Auth::ApiKey { header, value }) => request.header(
                header.as_str(),
                self.render_text(value, context, "auth.api_key")?,
            ),
            // The token header is added by `send`, which may fetch it.
            Some(Auth::Token(_)) => request,
        })
    }

    fn render_text(
        &self,
        template: &Template,
        context: &Context,
        what: &str,
    ) -> Result<String, String> {
        match self.scripts.render(template, context) {
            Ok(Value::String(text)) => Ok(text),
            Ok(Value::Null) => Ok(String::new()),
            Ok(other) => Ok(other.to_string()),
            Err(error) => Err(format!("{what}: {error}")),
        }
    }

    /// Applies the success condition and output mapping to a 2xx answer.
    pub(super) fn read_answer(
        &self,
        name: &str,
        rules: &ResponseRules,
        mut context: Context,
        answer: Value,
    ) -> Result<Value, StepError> {
        context.set_shared("response", &answer);
        let evaluate = |template: &Template, what: &str| {
            self.scripts.render(template, &context).map_err(|e| {
                StepError::permanent(format!(
                    "{name}: evaluating the response {what} failed: {e}"
                ))
            })
        };

        if let Some(success) = &rules.success
            && !truthy(&evaluate(success, "success condition")?)
        {
            let message = match &rules.error {
                Some(error) => text_of(&evaluate(error, "error message")?),
                None => excerpt(&answer["body"].to_string()),
            };
            let retryable = match &rules.retryable {
                Some(retryable) => truthy(&evaluate(retryable, "retryable condition")?),
                None => false,
            };
            let message = format!("{name}: the remote side reported an error: {message}");
            return Err(if retryable {
                StepError::transient(message)
            } else {
                StepError::permanent(message)
            });
        }
        match &rules.output {
            Some(output) => self.scripts.render_value(output, &context).map_err(|e| {
                StepError::permanent(format!("{name}: mapping the response failed: {e}"))
            }),
            None => Ok(answer["body"].clone()),
        }
    }
}

/// Builds the `response` value that expressions read: status, lower-case headers and the
/// body (parsed JSON when it parses, text otherwise).
pub(crate) fn response_value(status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> Value {
    let body = serde_json::from_slice::<Value>(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    let headers: Map<String, Value> = headers
        .iter()
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_string(), Value::String(value.to_string())))
        })
        .collect();
    serde_json::json!({ "status": status.as_u16(), "headers": headers, "body": body })
}

pub(crate) fn status_error(
    name: &str,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
) -> StepError {
    let body = excerpt(&String::from_utf8_lossy(bytes));
    let message = format!("{name}: HTTP {status}: {body}");
    let transient = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    let mut error = if transient {
        StepError::transient(message)
    } else {
        StepError::permanent(message)
    };
    error.retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| parse_retry_after(value, Utc::now()));
    error
}

pub(crate) fn describe_send_error(name: &str, error: &reqwest::Error) -> StepError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut source = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(inner) = cause {
        source = inner.to_string();
        cause = inner.source();
    }
    let detail = if source.is_empty() {
        error.to_string()
    } else {
        source
    };
    StepError::transient(format!("{name}: {what}: {detail}"))
}

/// Reads `Retry-After` as seconds (whole or fractional) or an HTTP date.
pub fn parse_retry_after(value: &HeaderValue, now: DateTime<Utc>) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = DateTime::parse_from_rfc2822(text).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(BODY_EXCERPT).collect();
    if text.chars().count() > BODY_EXCERPT {
        cut.push('…');
    }
    cut
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => true,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_fraction_and_date() {
        let now = Utc::now();
        let whole = parse_retry_after(&HeaderValue::from_static("3"), now);
        assert_eq!(whole, Some(Duration::from_secs(3)));
        let fraction = parse_retry_after(&HeaderValue::from_static("2.5"), now);
        assert_eq!(fraction, Some(Duration::from_millis(2500)));

        let later = now + chrono::Duration::seconds(90);
        let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let header = HeaderValue::from_str(&date).expect("an HTTP date is a valid header");
        let wait = parse_retry_after(&header, now).expect("an HTTP date parses");
        assert!(
            wait.as_secs() >= 89 && wait.as_secs() <= 90,
            "waited {wait:?}"
        );
    }

    #[test]
    fn retry_after_rejects_garbage() {
        let now = Utc::now();
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("soon"), now),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("-1"), now),
            None
        );
    }

    #[test]
    fn excerpt_keeps_200_characters() {
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 201);
    }
}
