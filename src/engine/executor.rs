//! Executes one run from its journal: steps with a recorded result are
//! skipped and their outputs reused, the first step without one runs next.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::run::{Run, RunStatus, StepRecord, StepStatus};
use super::step::{self, StepOutcome, StepScope};
use super::{Engine, EngineError};
use crate::expr::{Context, json_to_dynamic};
use crate::workflow::checker::secrets_value;
use crate::workflow::{Step, Workflow};
use rhai::Dynamic;

/// How a list of steps ended.
enum ListOutcome {
    Ended(StepOutcome),
    /// Cancelled by an operator: no further step starts.
    Cancelled,
    /// The engine is shutting down: the run stays resumable.
    Interrupted,
}

/// Runs `run_id` until it ends, parks or is interrupted, and returns the
/// run as it then is. A terminal run is returned unchanged.
pub(crate) async fn execute(engine: &Engine, run_id: &str) -> Result<Run, EngineError> {
    let run = engine
        .store()
        .load_run(run_id)?
        .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
    execute_run(engine, run).await
}

/// Like [`execute`], for a run already loaded with its journal.
pub(crate) async fn execute_run(engine: &Engine, mut run: Run) -> Result<Run, EngineError> {
    let store = engine.store();
    let run_id = run.id.clone();
    let run_id = run_id.as_str();
    if run.status.is_terminal() {
        engine.forget_cancel(run_id);
        return Ok(run);
    }
    if let Some(wake_at) = run.wake_at.filter(|wake_at| *wake_at > Utc::now()) {
        engine.schedule(wake_at, run_id);
        return Ok(run);
    }
    let registry = engine.registry();
    let Some(workflow) = registry.workflow(&run.workflow).cloned() else {
        let message = format!(
            "workflow `{}` is not loaded; fix its file and retry the run",
            run.workflow
        );
        tracing::error!(run_id, workflow = %run.workflow, "run's workflow is not loaded");
        finish(engine, &mut run, RunStatus::Failed, Some(message), true).await?;
        return Ok(run);
    };

    let resumed = run.status != RunStatus::Queued;
    run.status = RunStatus::Running;
    run.wake_at = None;
    run.started_at.get_or_insert_with(Utc::now);
    engine.save_header(&run)?;
    tracing::info!(run_id, workflow = %workflow.name, resumed, "run started");

    let outcome = run_steps(engine, &workflow, &mut run, &workflow.steps, 0).await?;
    let (status, error) = match outcome {
        ListOutcome::Interrupted => {
            tracing::info!(run_id, workflow = %workflow.name, "run interrupted by shutdown; it resumes on the next start");
            return Ok(run);
        }
        ListOutcome::Cancelled => {
            engine.forget_cancel(run_id);
            tracing::info!(run_id, workflow = %workflow.name, "run cancelled");
            return Ok(store.load_run(run_id)?.unwrap_or(run));
        }
        ListOutcome::Ended(StepOutcome::Park(wake_at)) => {
            park(engine, &mut run, wake_at).await?;
            return Ok(run);
        }
        ListOutcome::Ended(StepOutcome::Succeeded(output)) => {
            run.output = Some(engine.registry().redactor.value(&output));
            (RunStatus::Succeeded, None)
        }
        ListOutcome::Ended(StepOutcome::Skipped(reason)) => {
            run.reason = Some(reason);
            (RunStatus::Skipped, None)
        }
        ListOutcome::Ended(StepOutcome::Failed(message)) => (RunStatus::Failed, Some(message)),
    };
    if status == RunStatus::Failed && !workflow.on_failure.is_empty() {
        run_failure_handler(engine, &workflow, &mut run, error.clone()).await?;
    }
    let effects = workflow
        .steps
        .iter()
        .chain(&workflow.on_failure)
        .any(|step| step.kind.has_side_effects());
    finish(engine, &mut run, status, error, effects).await?;
    Ok(run)
}

/// Runs the workflow's `on_failure` steps with `run.error` in scope. Their
/// own failure is logged; the run stays failed either way.
async fn run_failure_handler(
    engine: &Engine,
    workflow: &Workflow,
    run: &mut Run,
    error: Option<String>,
) -> Result<(), EngineError> {
    run.error = error;
    let offset = workflow.steps.len();
    let handled = run_steps(engine, workflow, run, &workflow.on_failure, offset).await?;
    if let ListOutcome::Ended(StepOutcome::Failed(message)) = handled {
        tracing::error!(run_id = %run.id, workflow = %workflow.name, error = %message, "failure handler failed");
    }
    Ok(())
}

/// Runs `steps` in order, journal indexes starting at `offset`. Ends with
/// the last step's output, or with how the list stopped early.
async fn run_steps(
    engine: &Engine,
    workflow: &Workflow,
    run: &mut Run,
    steps: &[Step],
    offset: usize,
) -> Result<ListOutcome, EngineError> {
    let deadline = workflow
        .timeout
        .zip(run.started_at)
        .map(|(limit, started)| {
            started + chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
        });
    let base = base_context(workflow, run);
    let mut outputs = step_outputs(run);
    let mut last = Value::Null;
    for (position, step) in steps.iter().enumerate() {
        let index = offset + position;
        if let Some(ended) = recorded_result(run, index, &mut last) {
            return Ok(ListOutcome::Ended(ended));
        }
        if run
            .steps
            .iter()
            .any(|r| r.index == index && r.status.has_result())
        {
            continue;
        }
        if engine.is_cancelled(&run.id) {
            return Ok(ListOutcome::Cancelled);
        }
        if engine.is_stopping() {
            return Ok(ListOutcome::Interrupted);
        }
        let remaining = match deadline {
            None => None,
            Some(deadline) => match remaining_until(deadline) {
                Some(left) => Some(left),
                None => {
                    let limit = workflow.timeout.map(humantime::format_duration);
                    let message = format!(
                        "run exceeded the workflow timeout of {}",
                        limit.map(|l| l.to_string()).unwrap_or_default()
                    );
                    return Ok(ListOutcome::Ended(StepOutcome::Failed(message)));
                }
            },
        };

        let run_id = run.id.clone();
        let mut context = base.clone();
        context.set_dynamic("steps", Dynamic::from_map(outputs.clone()));
        let scope = StepScope {
            workflow,
            run_id: &run_id,
            step,
            context: Arc::new(context),
            remaining,
        };
        let record = take_record(run, index, step);
        let (record, outcome) = step::run(engine, &scope, record).await?;
        outputs.insert(record.id.as_str().into(), step_entry(&record));
        run.steps.push(record);
        match outcome {
            StepOutcome::Succeeded(output) => last = output,
            ended => return Ok(ListOutcome::Ended(ended)),
        }
    }
    Ok(ListOutcome::Ended(StepOutcome::Succeeded(last)))
}

/// For a step that already has a result in the journal, takes its output
/// into `last`, or returns how the run ended there.
fn recorded_result(run: &Run, index: usize, last: &mut Value) -> Option<StepOutcome> {
    let record = run.steps.iter().find(|r| r.index == index)?;
    match record.status {
        StepStatus::Running => None,
        StepStatus::Succeeded => {
            *last = record.output.clone().unwrap_or(Value::Null);
            None
        }
        StepStatus::Skipped => Some(StepOutcome::Skipped(
            record.error.clone().unwrap_or_default(),
        )),
        StepStatus::Failed => Some(StepOutcome::Failed(
            record.error.clone().unwrap_or_default(),
        )),
    }
}

fn remaining_until(deadline: DateTime<Utc>) -> Option<Duration> {
    (deadline - Utc::now())
        .to_std()
        .ok()
        .filter(|left| !left.is_zero())
}

/// Removes the step's journal entry from the run to update it, or starts a
/// new one.
fn take_record(run: &mut Run, index: usize, step: &Step) -> StepRecord {
    if let Some(position) = run.steps.iter().position(|r| r.index == index) {
        return run.steps.remove(position);
    }
    StepRecord {
        index,
        id: step.id.clone(),
        path: step.path.clone(),
        status: StepStatus::Running,
        attempts: Vec::new(),
        input: None,
        output: None,
        error: None,
        started_at: Utc::now(),
        finished_at: None,
        budget_start: 0,
        wake_at: None,
    }
}

/// What every step of the run sees besides `steps`.
fn base_context(workflow: &Workflow, run: &Run) -> Context {
    let mut context = Context::new();
    context.set("trigger", &run.trigger.to_scope_value());
    context.set("vars", &workflow.vars);
    context.set("secrets", &secrets_value(&workflow.secrets));
    let run_value = serde_json::json!({
        "id": run.id,
        "workflow": run.workflow,
        "error": run.error,
    });
    context.set("run", &run_value);
    context
}

/// The `steps` map for steps already in the journal.
fn step_outputs(run: &Run) -> rhai::Map {
    run.steps
        .iter()
        .map(|record| (record.id.as_str().into(), step_entry(record)))
        .collect()
}

/// `steps.<id>` as expressions see it: the output and the status.
fn step_entry(record: &StepRecord) -> Dynamic {
    let entry = serde_json::json!({
        "output": record.output.clone().unwrap_or(Value::Null),
        "status": record.status,
    });
    json_to_dynamic(&entry)
}

/// Parks the run until `wake_at` on a durable timer, freeing its worker.
async fn park(engine: &Engine, run: &mut Run, wake_at: DateTime<Utc>) -> Result<(), EngineError> {
    run.status = RunStatus::Waiting;
    run.wake_at = Some(wake_at);
    engine.save_header(run)?;
    engine.store().sync().await?;
    engine.schedule(wake_at, &run.id);
    tracing::info!(run_id = %run.id, workflow = %run.workflow, wake_at = %wake_at.to_rfc3339(), "run waiting");
    Ok(())
}

/// Records the run's end. With `flush`, waits until it is on disk; runs
/// without side effects skip that, because repeating them after a crash
/// changes nothing outside the engine.
async fn finish(
    engine: &Engine,
    run: &mut Run,
    status: RunStatus,
    error: Option<String>,
    flush: bool,
) -> Result<(), EngineError> {
    let redactor = engine.registry().redactor.clone();
    run.status = status;
    run.error = error.map(|e| redactor.text(&e));
    run.finished_at = Some(Utc::now());
    run.wake_at = None;
    engine.save_header(run)?;
    if flush {
        engine.store().sync().await?;
    }
    match status {
        RunStatus::Failed => tracing::warn!(
            run_id = %run.id,
            workflow = %run.workflow,
            error = run.error.as_deref().unwrap_or(""),
            "run failed"
        ),
        _ => tracing::info!(run_id = %run.id, workflow = %run.workflow, %status, "run finished"),
    }
    Ok(())
}
