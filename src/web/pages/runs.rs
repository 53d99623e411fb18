//! `GET /`: the runs list, newest first, with filters and cursor paging.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PageError, format_duration, format_time, render};
use crate::engine::run::{Run, RunStatus};
use crate::store::RunQuery;
use crate::web::AppState;

const PAGE_SIZE: usize = 50;

/// Filters of the runs list as they arrive from its form; empty fields mean
/// no filter.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(in crate::web) struct RunFilters {
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    status: String,
    /// Earliest creation time, RFC 3339 or `YYYY-MM-DDTHH:MM` in UTC.
    #[serde(default)]
    since: String,
    /// Latest creation time, in the same forms as `since`.
    #[serde(default)]
    until: String,
    /// Text to find in the trigger payload, such as `#1042` or an email.
    #[serde(default)]
    q: String,
    #[serde(default)]
    before: String,
}

/// One line of the runs list.
#[derive(Debug, Serialize)]
struct RunRow {
    id: String,
    workflow: String,
    status: RunStatus,
    created_at: String,
    duration: String,
    error: String,
}

pub(in crate::web) async fn list_runs(
    State(state): State<AppState>,
    Query(filters): Query<RunFilters>,
) -> Result<Html<String>, PageError> {
    let query = to_query(&filters)?;
    let runs = state.engine.store().list_runs(&query)?;
    let next_before = (runs.len() == PAGE_SIZE)
        .then(|| runs.last().map(|run| run.id.clone()))
        .flatten();
    let rows: Vec<RunRow> = runs.iter().map(row).collect();
    let registry = state.engine.registry();
    let workflows: Vec<&String> = registry.workflows.keys().collect();
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    let next_link = next_before.map(|cursor| next_page_link(&filters, &cursor));
    render(
        "runs.html",
        minijinja::context! {
            title => "Runs",
            page => "runs",
            rows,
            filters,
            workflows,
            statuses,
            next_link,
        },
    )
}

fn row(run: &Run) -> RunRow {
    let end = run.finished_at;
    RunRow {
        id: run.id.clone(),
        workflow: run.workflow.clone(),
        status: run.status,
        created_at: format_time(run.created_at),
        duration: run
            .started_at
            .map(|start| format_duration(start, end))
            .unwrap_or_default(),
        error: shorten(run.error.as_deref().or(run.reason.as_deref()).unwrap_or("")),
    }
}

/// Cuts an error message to the first 160 characters for the list.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 160;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn to_query(filters: &RunFilters) -> Result<RunQuery, PageError> {
    let bad_request = |message: String| PageError::new(StatusCode::BAD_REQUEST, message);
    let status = match filters.status.as_str() {
        "" => None,
        text => Some(text.parse::<RunStatus>().map_err(bad_request)?),
    };
    Ok(RunQuery {
        workflow: non_empty(&filters.workflow),
        status,
        before: non_empty(&filters.before),
        since: parse_time("since", &filters.since).map_err(bad_request)?,
        until: parse_time("until", &filters.until).map_err(bad_request)?,
        text: non_empty(filters.q.trim()),
        limit: PAGE_SIZE,
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Parses a time filter: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in UTC as a
/// browser's `datetime-local` input sends it.
fn parse_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(time.and_utc()));
        }
    }
    Err(format!(
        "invalid `{field}` time `{text}`; use RFC 3339 such as 2026-12-04T17:00:00Z, or 2026-12-04T17:00 in UTC"
    ))
}

/// Builds the link to the next page: the same filters with a new cursor.
fn next_page_link(filters: &RunFilters, cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("workflow", &filters.workflow),
        ("status", &filters.status),
        ("since", &filters.since),
        ("until", &filters.until),
        ("q", &filters.q),
    ];
    for (name, value) in fields {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    query.append_pair("before", cursor);
    format!("/?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filter_accepts_browser_form() {
        let time = parse_time("since", "2026-12-04T17:05").expect("a valid time");
        assert_eq!(
            time.map(format_time).as_deref(),
            Some("2026-12-04 17:05:00Z")
        );
    }

    #[test]
    fn time_filter_rejects_words() {
        let error = parse_time("since", "yesterday").expect_err("not a time");
        assert!(error.contains("`yesterday`"), "{error}");
        assert!(error.contains("RFC 3339"), "{error}");
    }

    #[test]
    fn next_link_keeps_filters() {
        let filters = RunFilters {
            status: "failed".into(),
            q: "#1042".into(),
            ..RunFilters::default()
        };
        let link = next_page_link(&filters, "0193-abc");
        assert_eq!(link, "/?status=failed&q=%231042&before=0193-abc");
    }
}
