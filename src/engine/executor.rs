//! Executes one run from its journal: steps with a recorded result are
//! skipped and their outputs reused, the first step without one runs next.

use chrono::Utc;
use serde_json::{Map, Value};

use super::run::{Run, RunStatus, StepRecord, StepStatus};
use super::step::{self, StepOutcome};
use super::{Engine, EngineError};
use crate::expr::Context;
use crate::workflow::checker::secrets_value;
use crate::workflow::{Step, Workflow};

/// Runs `run_id` until it ends and returns the final run. A run that is
/// already terminal is returned as it is.
pub(crate) async fn execute(engine: &Engine, run_id: &str) -> Result<Run, EngineError> {
    let store = engine.store();
    let mut run = store
        .load_run(run_id)?
        .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
    if run.status.is_terminal() {
        return Ok(run);
    }
    let registry = engine.registry();
    let Some(workflow) = registry.workflow(&run.workflow).cloned() else {
        let message = format!(
            "workflow `{}` is not loaded; fix its file and retry the run",
            run.workflow
        );
        tracing::error!(run_id, workflow = %run.workflow, "run's workflow is not loaded");
        finish(engine, &mut run, RunStatus::Failed, Some(message)).await?;
        return Ok(run);
    };

    let resumed = run.status != RunStatus::Queued;
    run.status = RunStatus::Running;
    run.started_at.get_or_insert_with(Utc::now);
    store.save_run(&run)?;
    tracing::info!(run_id, workflow = %workflow.name, resumed, "run started");

    let outcome = run_steps(engine, &workflow, &mut run, &workflow.steps, 0).await?;
    let (status, error) = match outcome {
        StepOutcome::Succeeded(output) => {
            run.output = Some(output);
            (RunStatus::Succeeded, None)
        }
        StepOutcome::Skipped(reason) => {
            run.reason = Some(reason);
            (RunStatus::Skipped, None)
        }
        StepOutcome::Failed(message) => (RunStatus::Failed, Some(message)),
    };
    if status == RunStatus::Failed && !workflow.on_failure.is_empty() {
        run.error = error.clone();
        let offset = workflow.steps.len();
        let handled = run_steps(engine, &workflow, &mut run, &workflow.on_failure, offset).await?;
        if let StepOutcome::Failed(message) = handled {
            tracing::error!(run_id, workflow = %workflow.name, error = %message, "failure handler failed");
        }
    }
    finish(engine, &mut run, status, error).await?;
    Ok(run)
}

/// Runs `steps` in order, journal indexes starting at `offset`. Returns the
/// last step's output, or how the list ended early.
async fn run_steps(
    engine: &Engine,
    workflow: &Workflow,
    run: &mut Run,
    steps: &[Step],
    offset: usize,
) -> Result<StepOutcome, EngineError> {
    let mut last = Value::Null;
    for (position, step) in steps.iter().enumerate() {
        let index = offset + position;
        if let Some(record) = run.steps.iter().find(|r| r.index == index)
            && record.status.has_result()
        {
            match record.status {
                StepStatus::Succeeded => {
                    last = record.output.clone().unwrap_or(Value::Null);
                    continue;
                }
                StepStatus::Skipped => {
                    let reason = record.error.clone().unwrap_or_default();
                    return Ok(StepOutcome::Skipped(reason));
                }
                _ => {
                    let message = record.error.clone().unwrap_or_default();
                    return Ok(StepOutcome::Failed(message));
                }
            }
        }

        let context = step_context(workflow, run);
        let record = take_record(run, index, step);
        let (record, outcome) = step::run(engine, workflow, &run.id, step, record, context).await?;
        run.steps.push(record);
        match outcome {
            StepOutcome::Succeeded(output) => last = output,
            ended => return Ok(ended),
        }
    }
    Ok(StepOutcome::Succeeded(last))
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
    }
}

/// The scope expressions of the next step see.
fn step_context(workflow: &Workflow, run: &Run) -> Context {
    let mut steps = Map::new();
    for record in &run.steps {
        let entry = serde_json::json!({
            "output": record.output.clone().unwrap_or(Value::Null),
            "status": record.status,
        });
        steps.insert(record.id.clone(), entry);
    }
    let mut context = Context::new();
    context.set("trigger", &run.trigger.to_scope_value());
    context.set("steps", &Value::Object(steps));
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

async fn finish(
    engine: &Engine,
    run: &mut Run,
    status: RunStatus,
    error: Option<String>,
) -> Result<(), EngineError> {
    let redactor = engine.registry().redactor.clone();
    run.status = status;
    run.error = error.map(|e| redactor.text(&e));
    run.finished_at = Some(Utc::now());
    engine.store().save_run(run)?;
    engine.store().sync().await?;
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
