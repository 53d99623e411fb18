//! `POST /hooks/...`: verify, store durably, then acknowledge.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::engine::Submitted;
use crate::engine::run::RunStatus;
use crate::trigger::webhook;
use crate::workflow::Trigger;
use crate::workflow::model::{Ping, Respond};

/// Handles a webhook delivery and counts its outcome in the metrics.
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(path): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let full_path = format!("/hooks/{path}");
    let outcome = handle(&state, &full_path, uri, headers, body).await;
    let metrics = state.engine.metrics();
    match &outcome {
        Ok(_) => {
            let registry = state.engine.registry();
            let workflow = registry.hooks.get(&full_path).map_or("", String::as_str);
            metrics.webhook_acknowledged(workflow);
        }
        Err(error) => metrics.webhook_rejected(rejection_reason(error.status)),
    }
    outcome
}

/// Names the reason of a rejected delivery for the metrics, from its
/// status.
fn rejection_reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "invalid_signature",
        StatusCode::NOT_FOUND => "unknown_path",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::BAD_REQUEST => "invalid_body",
        StatusCode::SERVICE_UNAVAILABLE => "shutting_down",
        _ => "internal_error",
    }
}

async fn handle(
    state: &AppState,
    full_path: &str,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if state.engine.is_stopping() {
        let message = "the server is shutting down; deliver the event again later";
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message));
    }
    let registry = state.engine.registry();
    let Some(workflow) = registry
        .hooks
        .get(full_path)
        .and_then(|name| registry.workflow(name))
    else {
        tracing::debug!(path = %full_path, "webhook for unknown path");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no workflow listens on {full_path}"),
        ));
    };
    let Trigger::Webhook(trigger) = &workflow.trigger else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no workflow listens on {full_path}"),
        ));
    };

    let too_large = || {
        tracing::debug!(workflow = %workflow.name, limit = trigger.max_body, "webhook body too large");
        let message = format!(
            "body is larger than the limit of {} bytes",
            trigger.max_body
        );
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > trigger.max_body) {
        return Err(too_large());
    }
    let body = to_bytes(body, trigger.max_body)
        .await
        .map_err(|_| too_large())?;

    if trigger.ping == Some(Ping::WooCommerce) && is_woocommerce_ping(&body) {
        tracing::info!(workflow = %workflow.name, "responded 200 to a WooCommerce ping without starting a run");
        return Ok((StatusCode::OK, Json(json!({ "ping": "ok" }))).into_response());
    }
    if let Some(verify) = &trigger.verify
        && let Err(reason) = webhook::verify_request(verify, &headers, &body, Utc::now())
    {
        tracing::info!(workflow = %workflow.name, %reason, "webhook signature rejected");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid signature"));
    }
    let event = webhook::event_from_request(trigger, &headers, uri.query(), &body)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    if trigger.dedup_header.is_some() && event.dedup_key.is_none() {
        tracing::warn!(workflow = %workflow.name, "webhook without its deduplication header; accepted without deduplication");
    }

    match state.engine.submit(&workflow.name, event).await {
        Ok(Submitted::New(run_id)) => match trigger.respond {
            Respond::Accepted => Ok(accepted(&run_id)),
            Respond::Sync(timeout) => respond_when_ended(state, &run_id, timeout).await,
        },
        Ok(Submitted::Duplicate(run_id)) => {
            let body = serde_json::json!({ "run_id": run_id, "duplicate": true });
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

fn accepted(run_id: &str) -> Response {
    let body = serde_json::json!({ "run_id": run_id });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Builds the response of `respond: sync`: 200 with the run's output once it succeeds, 500
/// with its error when it fails, and 202 with its id when `timeout` passes
/// first. The run goes on after a 202.
async fn respond_when_ended(
    state: &AppState,
    run_id: &str,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let Some(run) = state.engine.wait_for_end(run_id, timeout).await? else {
        tracing::info!(
            run_id,
            "run did not end within respond_timeout; answering 202"
        );
        return Ok(accepted(run_id));
    };
    let response = match run.status {
        RunStatus::Succeeded => {
            let output = run.output.unwrap_or(Value::Null);
            (StatusCode::OK, Json(output)).into_response()
        }
        RunStatus::Skipped => {
            let body = serde_json::json!({ "run_id": run_id, "skipped": run.reason });
            (StatusCode::OK, Json(body)).into_response()
        }
        status => {
            let error = run.error.unwrap_or_else(|| format!("the run is {status}"));
            let body = serde_json::json!({ "error": error, "run_id": run_id });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    };
    Ok(response)
}

/// Tells whether `body` is WooCommerce's ping, `webhook_id=` and a number.
/// It carries no signature, and an error response to it makes
/// WooCommerce count a failed delivery.
fn is_woocommerce_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit))
}
