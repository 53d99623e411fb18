//! Validated connectors: base URL resolved, auth and every request part
//! compiled, response rules of the connector merged into each operation.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::raw::{
    RawAuth, RawConnector, RawOauth2, RawOperation, RawPaginate, RawResponse, RawTokenAuth,
};
use crate::expr::{Template, ValueTemplate};
use crate::workflow::checker::Checker;
use crate::workflow::de::Spanned;

/// Total time allowed for one HTTP call unless the connector or operation
/// sets its own.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(Debug, Clone)]
pub struct Connector {
    pub name: String,
    /// File the connector was loaded from.
    pub file: std::path::PathBuf,
    pub base_url: String,
    /// Resolved settings, visible to expressions as `config`.
    pub config: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub auth: Option<Auth>,
    pub rate_limit: Option<RateLimit>,
    /// Calls in flight at once across all runs; `None` means no limit.
    pub concurrency: Option<usize>,
    pub operations: IndexMap<String, Operation>,
}

/// A token bucket: `requests` calls per `per`, with bursts up to `requests`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    /// Header, in lower case, whose `used/limit` value empties the bucket
    /// as far as the API reports it used, counting other clients' calls.
    pub usage_header: Option<String>,
}

/// Largest number of pages one paginated call reads unless the operation
/// sets `max_pages`.
pub const DEFAULT_MAX_PAGES: usize = 100;

#[derive(Debug, Clone)]
pub struct Paginate {
    pub kind: PageKind,
    /// Expression over `response` giving the page's items.
    pub items: Template,
    pub max_pages: usize,
}

#[derive(Debug, Clone)]
pub enum PageKind {
    /// A page number in a query parameter, from `start`; an empty page ends
    /// the listing.
    Number { param: String, start: i64 },
    /// A cursor from each response, sent back in a query parameter.
    Cursor { param: String, next: Template },
    /// The `Link` header's `rel="next"` URL.
    Link,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Bearer(Template),
    Basic {
        username: Template,
        password: Template,
    },
    ApiKey {
        header: String,
        value: Template,
    },
    Token(TokenAuth),
}

/// A token endpoint: its request, where the token and its lifetime are in
/// the response, and the header that carries it.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub method: reqwest::Method,
    pub path: Template,
    pub form: Vec<(String, ValueTemplate)>,
    pub body: Option<ValueTemplate>,
    pub token: Template,
    pub expires_in: Option<Template>,
    pub header: String,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub method: reqwest::Method,
    pub path: Template,
    pub query: Vec<(String, ValueTemplate)>,
    pub headers: Vec<(String, Template)>,
    pub body: Option<ValueTemplate>,
    pub response: ResponseRules,
    pub timeout: Duration,
    pub idempotency_key_header: String,
    pub paginate: Option<Paginate>,
}

/// Expressions over `response` (`status`, `headers`, `body`) deciding how an
/// HTTP 2xx response is read.
#[derive(Debug, Clone, Default)]
pub struct ResponseRules {
    /// False means the call failed even though the status was 2xx.
    pub success: Option<Template>,
    /// Message of such a failure.
    pub error: Option<Template>,
    /// True means such a failure may succeed when tried again.
    pub retryable: Option<Template>,
    /// Step output; the whole body when absent.
    pub output: Option<ValueTemplate>,
}

pub fn validate(raw: &RawConnector, checker: &mut Checker<'_>) -> Option<Connector> {
    let config = resolve_config(raw, checker);
    let base_url = match config.get("base_url") {
        Some(Value::String(url)) => url.trim_end_matches('/').to_string(),
        _ => {
            checker.error(
                raw.name.mark,
                "config.base_url",
                "missing `config.base_url`; set it to a URL or to `{ env: NAME, default: URL }`",
            );
            String::new()
        }
    };

    let auth = raw
        .auth
        .as_ref()
        .and_then(|auth| compile_auth(auth, checker));
    let defaults = compile_response(raw.response.as_ref(), checker);
    let timeout = raw.timeout.as_ref().and_then(|t| checker.duration(t));
    let idempotency_header = raw
        .idempotency_key_header
        .as_ref()
        .map(|h| h.value.clone())
        .unwrap_or_else(|| DEFAULT_IDEMPOTENCY_HEADER.to_string());
    let shared_headers = compile_headers(&raw.headers, checker);

    let mut operations = IndexMap::new();
    for (name, operation) in &raw.operations {
        let defaults = OperationDefaults {
            response: &defaults,
            timeout: timeout.unwrap_or(DEFAULT_CALL_TIMEOUT),
            idempotency_header: &idempotency_header,
            headers: &shared_headers,
        };
        if let Some(operation) = compile_operation(operation, &defaults, checker) {
            operations.insert(name.clone(), operation);
        }
    }

    let rate_limit = raw.rate_limit.as_ref().and_then(|limit| {
        let per = checker.duration(&limit.per)?;
        if limit.requests.value == 0 || per.is_zero() {
            checker.error(
                limit.mark,
                &limit.path,
                "a rate limit needs at least 1 request per period longer than 0s",
            );
            return None;
        }
        Some(RateLimit {
            requests: limit.requests.value,
            per,
            usage_header: limit
                .usage_header
                .as_ref()
                .map(|header| header.value.to_ascii_lowercase()),
        })
    });
    let concurrency = raw.concurrency.as_ref().and_then(|limit| {
        if limit.value == 0 {
            checker.error(limit.mark, &limit.path, "concurrency must be at least 1");
            return None;
        }
        Some(limit.value as usize)
    });

    if !checker.diags.is_empty() {
        return None;
    }
    Some(Connector {
        name: raw.name.value.clone(),
        file: std::path::PathBuf::new(),
        base_url,
        config,
        secrets: checker.secrets.clone(),
        auth,
        rate_limit,
        concurrency,
        operations,
    })
}

fn resolve_config(raw: &RawConnector, checker: &mut Checker<'_>) -> Map<String, Value> {
    let mut config = Map::new();
    for (name, value) in &raw.config {
        if let Some(resolved) = resolve_setting(value, checker) {
            config.insert(name.clone(), Value::String(resolved));
        }
    }
    config
}

/// Reads one setting: a literal string, or `{ env: NAME, default: VALUE }`.
fn resolve_setting(value: &Spanned<Value>, checker: &mut Checker<'_>) -> Option<String> {
    let hint = "write a string, or `{ env: NAME, default: VALUE }`";
    match &value.value {
        Value::String(text) => Some(text.clone()),
        Value::Object(fields) => {
            if let Some(unknown) = fields.keys().find(|k| *k != "env" && *k != "default") {
                let message = format!("unknown field `{unknown}` in setting; {hint}");
                checker.error(value.mark, &value.path, message);
                return None;
            }
            let from_env = match fields.get("env") {
                Some(Value::String(name)) => checker.env.get(name).map(str::to_string),
                Some(_) => {
                    checker.error(
                        value.mark,
                        &value.path,
                        format!("`env` must be a name; {hint}"),
                    );
                    return None;
                }
                None => None,
            };
            let default = fields
                .get("default")
                .and_then(Value::as_str)
                .map(str::to_string);
            let resolved = from_env.or(default);
            if resolved.is_none() {
                let name = fields.get("env").and_then(Value::as_str).unwrap_or("?");
                let message = format!(
                    "environment variable {name} is not set and the setting has no default"
                );
                checker.error(value.mark, &value.path, message);
            }
            resolved
        }
        _ => {
            checker.error(value.mark, &value.path, format!("invalid setting; {hint}"));
            None
        }
    }
}

fn compile_auth(auth: &Spanned<RawAuth>, checker: &mut Checker<'_>) -> Option<Auth> {
    match &auth.value {
        RawAuth::Bearer(token) => Some(Auth::Bearer(checker.template(token)?)),
        RawAuth::Basic(basic) => {
            let username = checker.template(&basic.username);
            let password = checker.template(&basic.password);
            Some(Auth::Basic {
                username: username?,
                password: password?,
            })
        }
        RawAuth::ApiKey(key) => Some(Auth::ApiKey {
            header: key.header.value.clone(),
            value: checker.template(&key.value)?,
        }),
        RawAuth::Token(token) => compile_token(token, checker).map(Auth::Token),
        RawAuth::Oauth2(oauth) => compile_oauth2(oauth, checker).map(Auth::Token),
    }
}

fn compile_token(raw: &RawTokenAuth, checker: &mut Checker<'_>) -> Option<TokenAuth> {
    let method = match &raw.method {
        None => reqwest::Method::POST,
        Some(text) => match reqwest::Method::from_bytes(text.value.to_uppercase().as_bytes()) {
            Ok(method) => method,
            Err(_) => {
                checker.error(
                    text.mark,
                    &text.path,
                    format!("invalid HTTP method `{}`", text.value),
                );
                return None;
            }
        },
    };
    let mut form = Vec::new();
    for (name, value) in &raw.form {
        form.push((name.clone(), checker.value(value)?));
    }
    let header = raw
        .header
        .clone()
        .unwrap_or_else(|| "Authorization".to_string());
    let prefix = raw.prefix.clone().unwrap_or_else(|| {
        if header.eq_ignore_ascii_case("authorization") {
            "Bearer ".to_string()
        } else {
            String::new()
        }
    });
    Some(TokenAuth {
        method,
        path: checker.template(&raw.path)?,
        form,
        body: match &raw.body {
            Some(body) => Some(checker.value(body)?),
            None => None,
        },
        token: checker.template(&raw.token)?,
        expires_in: match &raw.expires_in {
            Some(expiry) => Some(checker.template(expiry)?),
            None => None,
        },
        header,
        prefix,
    })
}

/// OAuth 2 client credentials, as a token endpoint.
fn compile_oauth2(raw: &RawOauth2, checker: &mut Checker<'_>) -> Option<TokenAuth> {
    let text = |value: &Spanned<String>| Spanned {
        value: Value::String(value.value.clone()),
        mark: value.mark,
        path: value.path.clone(),
    };
    let mut form = vec![
        (
            "grant_type".to_string(),
            crate::expr::ValueTemplate::Literal(Value::String("client_credentials".into())),
        ),
        (
            "client_id".to_string(),
            checker.value(&text(&raw.client_id))?,
        ),
        (
            "client_secret".to_string(),
            checker.value(&text(&raw.client_secret))?,
        ),
    ];
    if let Some(scope) = &raw.scope {
        form.push(("scope".to_string(), checker.value(&text(scope))?));
    }
    let expression = |source: &str| checker.scripts.compile_template(source).ok();
    Some(TokenAuth {
        method: reqwest::Method::POST,
        path: checker.template(&raw.token_path)?,
        form,
        body: None,
        token: expression("${{ response.body.access_token }}")?,
        expires_in: expression("${{ response.body.expires_in }}"),
        header: "Authorization".to_string(),
        prefix: "Bearer ".to_string(),
    })
}

fn compile_response(raw: Option<&RawResponse>, checker: &mut Checker<'_>) -> ResponseRules {
    let Some(raw) = raw else {
        return ResponseRules::default();
    };
    ResponseRules {
        success: raw.success.as_ref().and_then(|t| checker.template(t)),
        error: raw.error.as_ref().and_then(|t| checker.template(t)),
        retryable: raw.retryable.as_ref().and_then(|t| checker.template(t)),
        output: raw.output.as_ref().and_then(|v| checker.value(v)),
    }
}

fn compile_headers(
    headers: &IndexMap<String, Spanned<String>>,
    checker: &mut Checker<'_>,
) -> Vec<(String, Template)> {
    let mut compiled = Vec::new();
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            checker.error(
                value.mark,
                &value.path,
                format!("invalid header name `{name}`"),
            );
            continue;
        }
        if let Some(template) = checker.template(value) {
            compiled.push((name.clone(), template));
        }
    }
    compiled
}

struct OperationDefaults<'a> {
    response: &'a ResponseRules,
    timeout: Duration,
    idempotency_header: &'a str,
    headers: &'a [(String, Template)],
}

fn compile_operation(
    operation: &Spanned<RawOperation>,
    defaults: &OperationDefaults<'_>,
    checker: &mut Checker<'_>,
) -> Option<Operation> {
    let raw = &operation.value;
    let method = match reqwest::Method::from_bytes(raw.method.value.to_uppercase().as_bytes()) {
        Ok(method) => Some(method),
        Err(_) => {
            let message = format!(
                "invalid HTTP method `{}`; use GET, POST, PUT, PATCH or DELETE",
                raw.method.value
            );
            checker.error(raw.method.mark, &raw.method.path, message);
            None
        }
    };
    if !raw.path.value.starts_with('/') {
        let message = format!("path `{}` must start with `/`", raw.path.value);
        checker.error(raw.path.mark, &raw.path.path, message);
    }
    let path = checker.template(&raw.path);

    let mut query = Vec::new();
    for (name, value) in &raw.query {
        if let Some(template) = checker.value(value) {
            query.push((name.clone(), template));
        }
    }
    let mut headers = defaults.headers.to_vec();
    headers.extend(compile_headers(&raw.headers, checker));
    let body = raw.body.as_ref().and_then(|b| checker.value(b));

    let own = compile_response(raw.response.as_ref(), checker);
    let response = ResponseRules {
        success: own.success.or_else(|| defaults.response.success.clone()),
        error: own.error.or_else(|| defaults.response.error.clone()),
        retryable: own
            .retryable
            .or_else(|| defaults.response.retryable.clone()),
        output: own.output.or_else(|| defaults.response.output.clone()),
    };
    let timeout = raw.timeout.as_ref().and_then(|t| checker.duration(t));
    let paginate = raw
        .paginate
        .as_ref()
        .and_then(|p| compile_paginate(p, checker));
    let idempotency_key_header = raw
        .idempotency_key_header
        .as_ref()
        .map(|h| h.value.clone())
        .unwrap_or_else(|| defaults.idempotency_header.to_string());

    Some(Operation {
        method: method?,
        path: path?,
        query,
        headers,
        body,
        response,
        timeout: timeout.unwrap_or(defaults.timeout),
        idempotency_key_header,
        paginate,
    })
}

fn compile_paginate(raw: &Spanned<RawPaginate>, checker: &mut Checker<'_>) -> Option<Paginate> {
    let given = [raw.page.is_some(), raw.cursor.is_some(), raw.link];
    if given.iter().filter(|g| **g).count() != 1 {
        let message = "`paginate` needs exactly one of `page`, `cursor` or `link: true`";
        checker.error(raw.mark, &raw.path, message);
        return None;
    }
    let items = checker.template(&raw.items);
    let kind = if let Some(page) = &raw.page {
        PageKind::Number {
            param: page.param.clone(),
            start: page.start.unwrap_or(1),
        }
    } else if let Some(cursor) = &raw.cursor {
        PageKind::Cursor {
            param: cursor.param.clone(),
            next: checker.template(&cursor.next)?,
        }
    } else {
        PageKind::Link
    };
    let max_pages = match &raw.max_pages {
        Some(max) if max.value == 0 => {
            checker.error(max.mark, &max.path, "max_pages must be at least 1");
            DEFAULT_MAX_PAGES
        }
        Some(max) => max.value as usize,
        None => DEFAULT_MAX_PAGES,
    };
    Some(Paginate {
        kind,
        items: items?,
        max_pages,
    })
}
