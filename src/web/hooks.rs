//! `POST /hooks/...`: verify, store durably, then acknowledge.

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::engine::Submitted;
use crate::trigger::webhook;
use crate::workflow::Trigger;

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

    if let Some(verify) = &trigger.verify
        && let Err(reason) = webhook::verify_signature(verify, &headers, &body)
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
        Ok(Submitted::New(run_id)) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "run_id": run_id })),
        )
            .into_response()),
        Ok(Submitted::Duplicate(run_id)) => {
            let body = serde_json::json!({ "run_id": run_id, "duplicate": true });
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        Err(error) => Err(error.into()),
    }
}
