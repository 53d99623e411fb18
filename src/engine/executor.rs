//! Executes one run from its journal: steps with a recorded result are
//! skipped and their outputs reused, the first step without one runs next.

use chrono::{DateTime, Utc};
use tokio::sync::OwnedSemaphorePermit;

use super::recovery::FAILURE_HANDLER;
use super::run::{Run, RunStatus};
use super::step::StepOutcome;
use super::walk::{Extras, ListOutcome, Walk};
use super::{Engine, EngineError};
use crate::workflow::{Step, StepKind};

/// How long the flush of a finished run's end may wait to share a flush.
const END_FLUSH_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

/// Runs `run_id` until it ends, parks or is interrupted, and returns the
/// run as it then is. A terminal run is returned unchanged.
pub(crate) async fn execute(engine: &Engine, run_id: &str) -> Result<Run, EngineError> {
    let run = engine
        .store()
        .load_run(run_id)?
        .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
    execute_run(engine, run, Vec::new()).await
}

/// Like [`execute`], for a run already loaded with its journal. `slots` are
/// the concurrency permits the run holds. They are released once its end is
/// written, before the wait for the final flush, so the next run starts
/// meanwhile. That run's side-effect steps flush before they call out, so
/// its calls still come after this run's results are on disk.
pub(crate) async fn execute_run(
    engine: &Engine,
    mut run: Run,
    slots: Vec<OwnedSemaphorePermit>,
) -> Result<Run, EngineError> {
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
    let Some(workflow) = engine.workflow_for(&run) else {
        let message = format!(
            "workflow `{}` is not loaded; fix its file and retry the run",
            run.workflow
        );
        tracing::error!(run_id, workflow = %run.workflow, "run's workflow is not loaded");
        let end = (RunStatus::Failed, Some(message));
        finish(engine, &mut run, end, true, slots).await?;
        return Ok(run);
    };

    if run.status == RunStatus::Waiting && run.debounce_key.is_some() {
        super::debounce::claim(engine, &mut run).await?;
    }
    let resumed = run.status != RunStatus::Queued;
    run.status = RunStatus::Running;
    run.wake_at = None;
    run.started_at.get_or_insert_with(Utc::now);
    engine.save_header(&run)?;
    if !resumed {
        engine.metrics().run_started(&workflow.name);
        if let Some(tick) = run.trigger.scheduled_at {
            let lag = (Utc::now() - tick).num_milliseconds() as f64 / 1000.0;
            engine.metrics().schedule_started(&workflow.name, lag);
        }
    }
    tracing::info!(run_id, workflow = %workflow.name, resumed, "run started");

    let mut walk = Walk::new(engine, &workflow, &run);
    let (outcome, outputs) = walk
        .run_list(
            &workflow.steps,
            "steps".to_string(),
            rhai::Map::new(),
            Extras::default(),
        )
        .await?;
    let (status, error) = match outcome {
        ListOutcome::Interrupted => {
            run.steps = walk.into_records();
            tracing::info!(run_id, workflow = %workflow.name, "run interrupted by shutdown; it resumes on the next start");
            return Ok(run);
        }
        ListOutcome::Cancelled => {
            run.steps = walk.into_records();
            engine.forget_cancel(run_id);
            tracing::info!(run_id, workflow = %workflow.name, "run cancelled");
            let run = store.load_run(run_id)?.unwrap_or(run);
            engine.notify_end(&run);
            return Ok(run);
        }
        ListOutcome::Ended(StepOutcome::Park(wake_at)) => {
            run.steps = walk.into_records();
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
        run.error = error.clone();
        walk.set_run_error(&run);
        let handler = &workflow.on_failure;
        let (handled, _) = walk
            .run_list(
                handler,
                FAILURE_HANDLER.to_string(),
                outputs,
                Extras::default(),
            )
            .await?;
        if let ListOutcome::Ended(StepOutcome::Failed(message)) = handled {
            tracing::error!(run_id, workflow = %workflow.name, error = %message, "failure handler failed");
        }
    }
    run.steps = walk.into_records();
    let effects = workflow
        .steps
        .iter()
        .chain(&workflow.on_failure)
        .any(has_effects);
    finish(engine, &mut run, (status, error), effects, slots).await?;
    Ok(run)
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

/// Records the run's end and releases its `slots`. With `flush`, waits
/// until the end is on disk. Runs without side effects skip that wait,
/// because repeating them after a crash changes nothing outside the engine.
/// The end's flush may start up to [`END_FLUSH_WINDOW`] later, so that the
/// ends of concurrent runs share flushes with the rest of the engine's
/// writes instead of costing one each. A crash in that window repeats the
/// last call with the same idempotency key, as a crash during the call
/// would. A run someone waits for (a child run, or a webhook that responds
/// with the output) flushes at once.
async fn finish(
    engine: &Engine,
    run: &mut Run,
    (status, error): (RunStatus, Option<String>),
    flush: bool,
    slots: Vec<OwnedSemaphorePermit>,
) -> Result<(), EngineError> {
    let redactor = engine.registry().redactor.clone();
    run.status = status;
    run.error = error.map(|e| redactor.text(&e));
    run.finished_at = Some(Utc::now());
    run.wake_at = None;
    // Counted before the header is saved, so a client that reads the
    // terminal status finds the run counted in the metrics too.
    engine.metrics().run_finished(&run.workflow, status);
    engine.save_header(run)?;
    drop(slots);
    if engine.is_cancelled(&run.id) {
        // An operator cancelled the run while its last step ran; so the stored
        // cancellation is kept and returned to callers.
        engine.forget_cancel(&run.id);
        if let Some(stored) = engine.store().load_run(&run.id)? {
            *run = stored;
        }
        engine.notify_end(run);
        return Ok(());
    }
    if flush && (run.parent.is_some() || engine.waiters.is_awaited(&run.id)) {
        engine.store().sync().await?;
    } else if flush {
        engine.store().sync_within(END_FLUSH_WINDOW).await?;
    }
    engine.notify_end(run);
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

/// Returns whether the step, or a step nested in it, can have an effect
/// outside the engine.
fn has_effects(step: &Step) -> bool {
    let nested = match &step.kind {
        StepKind::Foreach { steps, .. } => steps.iter().any(has_effects),
        StepKind::Switch { cases, default, .. } => cases
            .iter()
            .flat_map(|(_, steps)| steps)
            .chain(default.iter().flatten())
            .any(has_effects),
        StepKind::Parallel { branches } => branches
            .iter()
            .flat_map(|(_, steps)| steps)
            .any(has_effects),
        // The child flushes its own end, and the parent's record of it is
        // part of this run's outcome.
        StepKind::Call { .. } => true,
        _ => false,
    };
    step.kind.has_side_effects() || nested || step.on_failure.iter().any(has_effects)
}
