//! `GET /runs/{id}`: one run with its trigger event and every step, and the
//! form endpoints behind its retry, replay and cancel buttons.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Redirect};
use serde::Serialize;

use super::{PageError, format_duration, format_time, pretty_json, render};
use crate::engine::run::{Attempt, Run, RunStatus, StepRecord};
use crate::web::AppState;

/// A step as the page shows it, with JSON already formatted as text.
#[derive(Debug, Serialize)]
struct StepView {
    id: String,
    path: String,
    status: String,
    started_at: String,
    duration: String,
    attempts: Vec<AttemptView>,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct AttemptView {
    number: u32,
    started_at: String,
    duration: String,
    error: Option<String>,
}

pub(in crate::web) async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let Some(run) = state.engine.store().load_run(&id)? else {
        let message = format!("run `{id}` not found; pick one from the runs list");
        return Err(PageError::new(StatusCode::NOT_FOUND, message));
    };
    let steps: Vec<StepView> = run.steps.iter().map(step_view).collect();
    let trigger = &run.trigger;
    render(
        "run.html",
        minijinja::context! {
            title => format!("Run {}", run.id),
            page => "runs",
            run => run_view(&run),
            trigger_kind => trigger.kind,
            received_at => format_time(trigger.received_at),
            headers => pretty_json(&serde_json::Value::Object(trigger.headers.clone())),
            query => (!trigger.query.is_empty())
                .then(|| pretty_json(&serde_json::Value::Object(trigger.query.clone()))),
            body => pretty_json(&trigger.body),
            steps,
            can_retry => matches!(run.status, RunStatus::Failed | RunStatus::Cancelled),
            can_replay => run.status.is_terminal(),
            can_cancel => !run.status.is_terminal(),
        },
    )
}

fn run_view(run: &Run) -> minijinja::Value {
    minijinja::context! {
        id => run.id,
        workflow => run.workflow,
        status => run.status,
        terminal => run.status.is_terminal(),
        created_at => format_time(run.created_at),
        started_at => run.started_at.map(format_time),
        finished_at => run.finished_at.map(format_time),
        duration => run.started_at.map(|start| format_duration(start, run.finished_at)),
        error => run.error,
        reason => run.reason,
        replay_of => run.replay_of,
        retries => run.retries,
        output => run.output.as_ref().map(pretty_json),
    }
}

fn step_view(step: &StepRecord) -> StepView {
    StepView {
        id: step.id.clone(),
        path: step.path.clone(),
        status: serde_json::to_value(step.status)
            .ok()
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default(),
        started_at: format_time(step.started_at),
        duration: format_duration(step.started_at, step.finished_at),
        attempts: step.attempts.iter().map(attempt_view).collect(),
        input: step.input.as_ref().map(pretty_json),
        output: step.output.as_ref().map(pretty_json),
        error: step.error.clone(),
    }
}

fn attempt_view(attempt: &Attempt) -> AttemptView {
    AttemptView {
        number: attempt.number,
        started_at: format_time(attempt.started_at),
        duration: format_duration(attempt.started_at, attempt.finished_at),
        error: attempt.error.clone(),
    }
}

/// `POST /runs/{id}/retry`: retries from the failed step, then shows the run.
pub(in crate::web) async fn retry_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    let run = state.engine.retry(&id).await?;
    Ok(Redirect::to(&format!("/runs/{}", run.id)))
}

/// `POST /runs/{id}/replay`: starts a new run with the same trigger event and
/// shows the new run.
pub(in crate::web) async fn replay_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    let run = state.engine.replay(&id).await?;
    Ok(Redirect::to(&format!("/runs/{}", run.id)))
}

/// `POST /runs/{id}/cancel`: cancels the run, then shows it.
pub(in crate::web) async fn cancel_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    let run = state.engine.cancel(&id).await?;
    Ok(Redirect::to(&format!("/runs/{}", run.id)))
}
