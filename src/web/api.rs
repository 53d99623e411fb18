//! The JSON API: run history and workflows.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::engine::run::{Run, RunStatus, TriggerEvent};
use crate::engine::{EngineError, Submitted};
use crate::store::RunQuery;
use crate::trigger::schedule::{ScheduleStatus, format_utc};
use crate::workflow::Trigger;
use crate::workflow::model::ScheduleTrigger;

/// Runs per page when the request does not say.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

#[derive(Debug, Deserialize)]
pub(super) struct RunsParams {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

pub(super) async fn list_runs(
    State(state): State<AppState>,
    Query(params): Query<RunsParams>,
) -> Result<Json<Value>, ApiError> {
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<RunStatus>()
                .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?,
        ),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let query = RunQuery {
        workflow: params.workflow.filter(|w| !w.is_empty()),
        status,
        before: params.before.filter(|b| !b.is_empty()),
        limit,
        ..RunQuery::default()
    };
    let runs = state
        .engine
        .store()
        .list_runs(&query)
        .map_err(ApiError::internal)?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let summaries: Vec<Value> = runs.iter().map(summary).collect();
    Ok(Json(
        serde_json::json!({ "runs": summaries, "next_before": next }),
    ))
}

fn summary(run: &Run) -> Value {
    serde_json::json!({
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "reason": run.reason,
    })
}

pub(super) async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    match state
        .engine
        .store()
        .load_run(&id)
        .map_err(ApiError::internal)?
    {
        Some(run) => Ok(Json(run)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run `{id}` not found"),
        )),
    }
}

pub(super) async fn list_workflows(State(state): State<AppState>) -> Json<Value> {
    let registry = state.engine.registry();
    let workflows: Vec<Value> = registry
        .workflows
        .values()
        .map(|workflow| {
            let trigger = match &workflow.trigger {
                Trigger::Webhook(hook) => serde_json::json!({ "webhook": { "path": hook.path } }),
                Trigger::Schedule(schedule) => {
                    let status = state.engine.schedules().get(&workflow.name);
                    serde_json::json!({ "schedule": schedule_json(schedule, status) })
                }
                Trigger::Poll(poll) => serde_json::json!({ "poll": {
                    "uses": format!("{}.{}", poll.connector, poll.operation),
                    "every": humantime::format_duration(poll.every).to_string(),
                } }),
                Trigger::Manual => serde_json::json!("manual"),
            };
            serde_json::json!({
                "name": workflow.name,
                "description": workflow.description,
                "file": workflow.file,
                "trigger": trigger,
            })
        })
        .collect();
    let problems: Vec<String> = registry.problems.iter().map(ToString::to_string).collect();
    Json(serde_json::json!({ "workflows": workflows, "problems": problems }))
}

/// Describes a schedule trigger and its task's status as JSON, with times
/// in UTC. Until the scheduler reports, and without a running scheduler,
/// `next_fire` is computed from the current time.
pub(super) fn schedule_json(trigger: &ScheduleTrigger, status: Option<ScheduleStatus>) -> Value {
    let schedule = &trigger.schedule;
    let status = status.unwrap_or_default();
    let next_fire = match (&status.error, status.next_fire) {
        (Some(_), _) => None,
        (None, Some(next)) => Some(next),
        (None, None) => schedule.next_after(chrono::Utc::now()).ok(),
    };
    serde_json::json!({
        "cron": schedule.expression(),
        "timezone": schedule.timezone().name(),
        "catch_up": trigger.catch_up,
        "catch_up_limit": trigger.catch_up_limit,
        "overlap": trigger.overlap,
        "next_fire": next_fire.map(format_utc),
        "last_tick": status.last_tick.map(format_utc),
        "missed": status.missed,
        "skipped": status.skipped,
        "error": status.error,
    })
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let status = match &error {
            EngineError::UnknownRun(_) | EngineError::UnknownWorkflow(_) => StatusCode::NOT_FOUND,
            EngineError::InvalidState { .. } => StatusCode::CONFLICT,
            EngineError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(_) => return ApiError::internal(error),
        };
        ApiError::new(status, error.to_string())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RetryBody {
    /// Replay the run from the start as a new run instead.
    #[serde(default)]
    from_start: bool,
}

pub(super) async fn retry_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let options: Option<RetryBody> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            let message =
                format!("invalid body: {error}; send nothing, or {{\"from_start\": true}}");
            ApiError::new(StatusCode::BAD_REQUEST, message)
        })?
    };
    let from_start = options.is_some_and(|options| options.from_start);
    let run = if from_start {
        state.engine.replay(&id).await?
    } else {
        state.engine.retry(&id).await?
    };
    let answer =
        serde_json::json!({ "run_id": run.id, "status": run.status, "replay_of": run.replay_of });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

pub(super) async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.engine.cancel(&id).await?;
    Ok(Json(
        serde_json::json!({ "run_id": run.id, "status": run.status }),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkRetryParams {
    workflow: String,
    status: Option<String>,
}

/// `POST /api/runs/retry?workflow=NAME&status=failed`.
pub(super) async fn retry_runs(
    State(state): State<AppState>,
    Query(params): Query<BulkRetryParams>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let status = match params.status.as_deref() {
        None | Some("") => RunStatus::Failed,
        Some(text) => text
            .parse()
            .map_err(|message: String| ApiError::new(StatusCode::BAD_REQUEST, message))?,
    };
    let retried = state
        .engine
        .retry_matching(&params.workflow, status)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "retried": retried })),
    ))
}

/// `POST /api/workflows/{name}/runs`: a manual run with the JSON body as
/// `trigger.body`.
pub(super) async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = body.map_or(Value::Null, |Json(value)| value);
    match state
        .engine
        .submit(&name, TriggerEvent::manual(input))
        .await?
    {
        Submitted::New(run_id) | Submitted::Duplicate(run_id) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "run_id": run_id })),
        )),
    }
}
