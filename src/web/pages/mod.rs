//! The dashboard: server-rendered HTML pages over the same engine as the
//! API. Templates are compiled into the binary and rendered with minijinja;
//! their names end in `.html`, so every interpolated value is HTML-escaped.
//! JSON values are formatted on the server and shown as text, so the
//! browser never parses them and large integers stay exact.

mod run_detail;
mod runs;
mod workflows;

pub(super) use run_detail::{cancel_form, replay_form, retry_form, show_run};
pub(super) use runs::list_runs;
pub(super) use workflows::list_workflows;

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde_json::Value;

/// Templates by name; the loader below serves them from this table.
const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../templates/base.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    (
        "workflows.html",
        include_str!("../templates/workflows.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
    ("login.html", include_str!("../templates/login.html")),
];

static TEMPLATE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_loader(|name| {
        let found = TEMPLATES.iter().find(|(known, _)| *known == name);
        Ok(found.map(|(_, text)| (*text).to_string()))
    });
    env
});

/// Renders the template `name` with `context` into a 200 page.
pub(in crate::web) fn render(
    name: &str,
    context: minijinja::Value,
) -> Result<Html<String>, PageError> {
    let template = TEMPLATE_ENV
        .get_template(name)
        .map_err(PageError::internal)?;
    let html = template.render(context).map_err(PageError::internal)?;
    Ok(Html(html))
}

/// A failed page request, shown as an HTML page with the status.
#[derive(Debug)]
pub(in crate::web) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// Logs a server-side failure in full and returns a page error with a
    /// short message.
    pub(super) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "page request failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> Self {
        PageError::internal(error)
    }
}

impl From<crate::engine::EngineError> for PageError {
    fn from(error: crate::engine::EngineError) -> Self {
        let api = super::ApiError::from(error);
        PageError::new(api.status, api.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let context = minijinja::context! {
            title => self.status.canonical_reason().unwrap_or("Error"),
            status => self.status.as_u16(),
            message => self.message,
        };
        let body = match render("error.html", context) {
            Ok(page) => page.0,
            Err(_) => format!("{} {}", self.status.as_u16(), self.message),
        };
        (self.status, Html(body)).into_response()
    }
}

/// Formats a JSON value as indented text for a `<pre>` block.
pub(super) fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|error| format!("(not shown: {error})"))
}

/// Formats a time as `2026-12-04 17:13:07Z`.
pub(super) fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Formats the time between two instants, such as `1.250 s` or `35 ms`.
pub(super) fn format_duration(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> String {
    let Some(end) = end else {
        return String::new();
    };
    let millis = (end - start).num_milliseconds().max(0);
    if millis < 1000 {
        format!("{millis} ms")
    } else {
        format!("{:.3} s", millis as f64 / 1000.0)
    }
}
