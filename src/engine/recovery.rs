//! Operator actions on runs: cancel, retry from the failed step, replay
//! from the start, and retry of many failed runs at once.

use chrono::Utc;

use super::run::{Run, RunStatus, StepStatus};
use super::{Engine, EngineError, lock};
use crate::store::RunQuery;

/// Path prefix of the workflow's `on_failure` steps in the journal.
pub(crate) const FAILURE_HANDLER: &str = "on_failure";

/// Runs loaded per page while retrying many.
const PAGE: usize = 500;

impl Engine {
    /// Cancels a run that has not ended: no further step starts, and a call
    /// in flight is left to finish.
    pub async fn cancel(&self, run_id: &str) -> Result<Run, EngineError> {
        let mut run = self.load(run_id)?;
        if run.status.is_terminal() {
            return Err(EngineError::InvalidState {
                id: run.id,
                status: run.status,
                hint: "only queued, running or waiting runs can be cancelled",
            });
        }
        lock(&self.cancelled).insert(run.id.clone());
        run.status = RunStatus::Cancelled;
        run.finished_at = Some(Utc::now());
        run.wake_at = None;
        run.error = Some("cancelled by an operator".to_string());
        self.store.save_run(&run)?;
        self.store.sync().await?;
        tracing::info!(run_id, workflow = %run.workflow, "run cancelled by an operator");
        Ok(run)
    }

    /// Retries a failed or cancelled run from its first step without a
    /// result. Outputs of earlier steps are kept, and the failed step gets a
    /// fresh retry budget and the same idempotency key.
    pub async fn retry(&self, run_id: &str) -> Result<Run, EngineError> {
        // Retention reads a finished run and then deletes it. A retry in
        // between would be lost or come back without its event.
        let _no_retention = self.retries_or_retention.read().await;
        let mut run = self.load(run_id)?;
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(EngineError::InvalidState {
                id: run.id,
                status: run.status,
                hint: "only failed or cancelled runs can be retried; replay it to run it again from the start",
            });
        }
        // Failure-handler steps run again if the retry fails too.
        run.steps
            .retain(|step| !step.path.starts_with(FAILURE_HANDLER));
        for step in &mut run.steps {
            if step.status == StepStatus::Failed {
                step.status = StepStatus::Running;
                step.error = None;
                step.finished_at = None;
                step.wake_at = None;
                step.budget_start = step.attempts.len();
                self.store.save_step(&run.id, step)?;
            }
        }
        self.store.remove_steps(&run.id, FAILURE_HANDLER)?;

        lock(&self.cancelled).remove(&run.id);
        run.status = RunStatus::Queued;
        run.error = None;
        run.finished_at = None;
        run.wake_at = None;
        run.retries += 1;
        self.store.save_run(&run)?;
        self.store.sync().await?;
        tracing::info!(run_id, workflow = %run.workflow, "run retried by an operator");
        let _ = self.queue.send(run.id.clone());
        Ok(run)
    }

    /// Starts a new run of the same workflow with the same trigger event,
    /// linked to the old one through `replay_of`.
    pub async fn replay(&self, run_id: &str) -> Result<Run, EngineError> {
        let old = self.load(run_id)?;
        let mut trigger = old.trigger.clone();
        trigger.dedup_key = None;
        let mut run = self.create_run(&old.workflow, trigger)?;
        run.replay_of = Some(old.id.clone());
        self.store.insert_run(&run, None).await?;
        tracing::info!(run_id = %run.id, replay_of = %old.id, workflow = %run.workflow, "run replayed by an operator");
        let _ = self.queue.send(run.id.clone());
        Ok(run)
    }

    /// Retries every run of `workflow` with `status` (failed or cancelled)
    /// and returns their ids.
    pub async fn retry_matching(
        &self,
        workflow: &str,
        status: RunStatus,
    ) -> Result<Vec<String>, EngineError> {
        let mut matching = Vec::new();
        let mut query = RunQuery {
            workflow: Some(workflow.to_string()),
            status: Some(status),
            before: None,
            limit: PAGE,
            ..RunQuery::default()
        };
        loop {
            let page = self.store.list_runs(&query)?;
            matching.extend(page.iter().map(|run| run.id.clone()));
            if page.len() < PAGE {
                break;
            }
            query.before = page.last().map(|run| run.id.clone());
        }
        self.retry_listed(workflow, matching).await
    }

    /// Retries each listed run of `workflow` and returns the ids retried.
    /// A run deleted or retried since the listing is skipped.
    pub(crate) async fn retry_listed(
        &self,
        workflow: &str,
        listed: Vec<String>,
    ) -> Result<Vec<String>, EngineError> {
        let mut retried = Vec::new();
        for run_id in listed {
            match self.retry(&run_id).await {
                Ok(_) => retried.push(run_id),
                // Deleted by retention, or retried by someone else, since
                // the listing.
                Err(EngineError::UnknownRun(_) | EngineError::InvalidState { .. }) => {
                    tracing::info!(%run_id, workflow, "skipped a run deleted or retried since the listing");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(retried)
    }

    fn load(&self, run_id: &str) -> Result<Run, EngineError> {
        self.store
            .load_run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))
    }
}
