//! The HTTP side, all on one listener: webhook triggers under `/hooks/`, the
//! JSON API under `/api/`, the dashboard pages, and `/healthz`.

mod api;
pub mod auth;
mod hooks;
mod pages;
pub mod server;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::engine::Engine;
use crate::engine::run::RunStatus;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Credentials every request except webhooks and health checks must
    /// carry; `None` turns access control off.
    pub credentials: Option<auth::Credentials>,
}

/// Settings of the HTTP side.
#[derive(Clone, Default)]
pub struct WebOptions {
    /// Token required on the API, pages and metrics; `None` leaves them
    /// open, which `serve` allows only on a loopback address.
    pub api_token: Option<String>,
}

/// Builds the router without access control, for loopback listeners.
pub fn router(engine: Arc<Engine>) -> Router {
    router_with(engine, &WebOptions::default())
}

/// Builds the router; tests call it directly or serve it on `127.0.0.1:0`.
pub fn router_with(engine: Arc<Engine>, options: &WebOptions) -> Router {
    let credentials = options.api_token.as_deref().map(auth::Credentials::new);
    let state = AppState {
        engine,
        credentials,
    };
    Router::new()
        .route(
            "/hooks/{*path}",
            post(hooks::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/api/workflows", get(api::list_workflows))
        .route("/api/workflows/{name}/runs", post(api::start_run))
        .route("/api/runs", get(api::list_runs))
        .route("/api/runs/retry", post(api::retry_runs))
        .route("/api/runs/{id}", get(api::show_run))
        .route("/api/runs/{id}/retry", post(api::retry_run))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/", get(pages::list_runs))
        .route("/runs/{id}", get(pages::show_run))
        .route("/runs/{id}/retry", post(pages::retry_form))
        .route("/runs/{id}/replay", post(pages::replay_form))
        .route("/runs/{id}/cancel", post(pages::cancel_form))
        .route("/workflows", get(pages::list_workflows))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route("/login", get(auth::login_page).post(auth::login))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .with_state(state)
}

/// `GET /metrics`: refreshes the gauges read from the store, then encodes
/// every metric in the Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let metrics = state.engine.metrics();
    for status in RunStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
        let count = state
            .engine
            .store()
            .count_in_status(status)
            .map_err(ApiError::internal)?;
        metrics.set_unfinished(status, count);
    }
    let text = metrics.encode().map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Error response: the status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A server-side failure: logged in full here, returned with a short
    /// message.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// The OpenAPI 3.0 description of the HTTP API, kept next to the router.
const OPENAPI: &str = include_str!("openapi/openapi.json");

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}
