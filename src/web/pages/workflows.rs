//! `GET /workflows`: each loaded workflow with its trigger, last run and
//! recent success rate, and the files that failed validation.

use axum::extract::State;
use axum::response::Html;
use chrono::{Duration, Utc};
use serde::Serialize;

use super::{PageError, render};
use crate::engine::run::RunStatus;
use crate::store::RunQuery;
use crate::web::AppState;
use crate::web::api::schedule_json;
use crate::workflow::{Trigger, Workflow};

/// A workflow as the page shows it.
#[derive(Debug, Serialize)]
struct WorkflowView {
    name: String,
    description: Option<String>,
    file: String,
    trigger: String,
    next_fire: Option<String>,
    schedule_error: Option<String>,
    last_run: Option<LastRun>,
    /// Percentage of runs finished in the last 24 hours that succeeded.
    success_rate: Option<String>,
    finished_24h: usize,
}

#[derive(Debug, Serialize)]
struct LastRun {
    id: String,
    status: RunStatus,
}

pub(in crate::web) async fn list_workflows(
    State(state): State<AppState>,
) -> Result<Html<String>, PageError> {
    let registry = state.engine.registry();
    let mut views = Vec::with_capacity(registry.workflows.len());
    for workflow in registry.workflows.values() {
        views.push(workflow_view(&state, workflow)?);
    }
    let problems: Vec<String> = registry.problems.iter().map(ToString::to_string).collect();
    render(
        "workflows.html",
        minijinja::context! {
            title => "Workflows",
            page => "workflows",
            workflows => views,
            problems,
        },
    )
}

fn workflow_view(state: &AppState, workflow: &Workflow) -> Result<WorkflowView, PageError> {
    let store = state.engine.store();
    let (trigger, next_fire, schedule_error) = match &workflow.trigger {
        Trigger::Webhook(hook) => (format!("webhook POST {}", hook.path), None, None),
        Trigger::Manual => ("manual".to_string(), None, None),
        Trigger::Schedule(schedule) => {
            let status = state.engine.schedules().get(&workflow.name);
            let json = schedule_json(schedule, status);
            let text = |field: &str| json[field].as_str().map(str::to_string);
            let description = format!(
                "schedule `{}` in {}",
                schedule.schedule.expression(),
                schedule.schedule.timezone().name()
            );
            (description, text("next_fire"), text("error"))
        }
        Trigger::Poll(poll) => {
            let every = humantime::format_duration(poll.every);
            let description = format!("poll {}.{} every {every}", poll.connector, poll.operation);
            (description, None, None)
        }
    };
    let last = store.list_runs(&RunQuery {
        workflow: Some(workflow.name.clone()),
        limit: 1,
        ..RunQuery::default()
    })?;
    let last_run = last.first().map(|run| LastRun {
        id: run.id.clone(),
        status: run.status,
    });
    let since = Utc::now() - Duration::hours(24);
    let mut finished = 0;
    let mut succeeded = 0;
    for status in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
        let count = store.count_runs(&workflow.name, status, since)?;
        finished += count;
        if status == RunStatus::Succeeded {
            succeeded = count;
        }
    }
    let success_rate =
        (finished > 0).then(|| format!("{:.1} %", 100.0 * succeeded as f64 / finished as f64));
    Ok(WorkflowView {
        name: workflow.name.clone(),
        description: workflow.description.clone(),
        file: workflow.file.display().to_string(),
        trigger,
        next_fire,
        schedule_error,
        last_run,
        success_rate,
        finished_24h: finished,
    })
}
