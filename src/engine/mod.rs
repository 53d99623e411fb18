//! Runs: accepting trigger events, the worker pool that executes runs, and
//! the journal that lets a run resume after a crash.

pub mod error;
mod executor;
pub mod redact;
pub mod run;
mod step;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{Semaphore, mpsc};

use crate::connector::HttpRuntime;
use crate::expr::ScriptEngine;
use crate::store::{Inserted, Store, StoreError};
use crate::workflow::Registry;
use run::{Run, TriggerEvent};

/// Runs executing at once across all workflows.
pub const DEFAULT_WORKERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("workflow `{0}` is not loaded")]
    UnknownWorkflow(String),
    #[error("run `{0}` not found")]
    UnknownRun(String),
}

/// Outcome of accepting a trigger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A new run was stored and queued.
    New(String),
    /// The event was delivered before; holds the id of the run it started.
    Duplicate(String),
}

pub struct Engine {
    registry: RwLock<Arc<Registry>>,
    store: Arc<dyn Store>,
    scripts: ScriptEngine,
    http: HttpRuntime,
    queue: mpsc::UnboundedSender<String>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    workers: Arc<Semaphore>,
    workflow_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Engine {
    pub fn new(registry: Registry, store: Arc<dyn Store>, scripts: ScriptEngine) -> Arc<Self> {
        let (queue, pending) = mpsc::unbounded_channel();
        Arc::new(Engine {
            registry: RwLock::new(Arc::new(registry)),
            store,
            http: HttpRuntime::new(scripts.clone()),
            scripts,
            queue,
            pending: Mutex::new(Some(pending)),
            workers: Arc::new(Semaphore::new(DEFAULT_WORKERS)),
            workflow_limits: Mutex::new(HashMap::new()),
        })
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .expect("registry lock is never poisoned: writers do not panic")
            .clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Starts the dispatcher and queues the runs a previous process left
    /// unfinished. Call once.
    pub fn start(self: &Arc<Self>) -> Result<(), EngineError> {
        let pending = self
            .pending
            .lock()
            .expect("the pending-queue lock is never poisoned")
            .take();
        let Some(mut pending) = pending else {
            return Ok(());
        };

        let unfinished = self.store.unfinished_runs()?;
        if !unfinished.is_empty() {
            tracing::info!(count = unfinished.len(), "resuming unfinished runs");
        }
        for run in unfinished {
            let _ = self.queue.send(run.id);
        }

        let engine = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(run_id) = pending.recv().await {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move { engine.run_queued(run_id).await });
            }
        });
        Ok(())
    }

    /// Stores a run for `workflow` durably and queues it. With a
    /// deduplication key seen before, stores nothing and returns the first
    /// run's id.
    pub async fn submit(
        &self,
        workflow: &str,
        trigger: TriggerEvent,
    ) -> Result<Submitted, EngineError> {
        let run = self.create_run(workflow, trigger)?;
        let dedup = run.trigger.dedup_key.clone();
        match self.store.insert_run(&run, dedup.as_deref()).await? {
            Inserted::New => {
                tracing::info!(run_id = %run.id, workflow, "run queued");
                let _ = self.queue.send(run.id.clone());
                Ok(Submitted::New(run.id))
            }
            Inserted::Duplicate(first) => {
                tracing::info!(run_id = %first, workflow, "duplicate delivery ignored");
                Ok(Submitted::Duplicate(first))
            }
        }
    }

    /// Stores a run and executes it in the caller's task, for `tether run`.
    pub async fn run_now(&self, workflow: &str, trigger: TriggerEvent) -> Result<Run, EngineError> {
        let run = self.create_run(workflow, trigger)?;
        self.store.insert_run(&run, None).await?;
        executor::execute(self, &run.id).await
    }

    fn create_run(&self, workflow: &str, mut trigger: TriggerEvent) -> Result<Run, EngineError> {
        let registry = self.registry();
        if registry.workflow(workflow).is_none() {
            return Err(EngineError::UnknownWorkflow(workflow.to_string()));
        }
        redact::mask_trigger(&registry.redactor, &mut trigger);
        Ok(Run::new(workflow, trigger))
    }

    async fn run_queued(self: Arc<Self>, run_id: String) {
        let _worker = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        let workflow_permit = match self.workflow_semaphore(&run_id) {
            Some(limit) => Some(
                limit
                    .acquire_owned()
                    .await
                    .expect("workflow semaphores are never closed"),
            ),
            None => None,
        };
        if let Err(error) = executor::execute(&self, &run_id).await {
            tracing::error!(%run_id, %error, "run could not be executed");
        }
        drop(workflow_permit);
    }

    /// The semaphore limiting runs of this run's workflow, if it sets
    /// `concurrency`.
    fn workflow_semaphore(&self, run_id: &str) -> Option<Arc<Semaphore>> {
        let run = self.store.load_run(run_id).ok().flatten()?;
        let registry = self.registry();
        let limit = registry.workflow(&run.workflow)?.concurrency?;
        let mut limits = self
            .workflow_limits
            .lock()
            .expect("the workflow-limit lock is never poisoned");
        let semaphore = limits
            .entry(run.workflow.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)));
        Some(Arc::clone(semaphore))
    }
}
