//! Runs: accepting trigger events, the worker pool that executes runs, and
//! the journal that lets a run resume after a crash.

pub mod error;
mod executor;
pub mod recovery;
pub mod redact;
pub mod retention;
pub mod run;
mod step;
mod timer;
mod walk;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::task::TaskTracker;

use crate::connector::HttpRuntime;
use crate::expr::{Context, ScriptEngine};
use crate::metrics::Metrics;
use crate::store::{Inserted, Store, StoreError};
use crate::trigger::schedule::{self, Clock, ScheduleBoard, SystemClock};
use crate::workflow::Registry;
use run::{Run, RunStatus, TriggerEvent};

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
    #[error("run `{id}` is {status}; {hint}")]
    InvalidState {
        id: String,
        status: RunStatus,
        hint: &'static str,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
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
    timers: Mutex<Option<timer::TimerSender>>,
    workers: Arc<Semaphore>,
    /// Semaphores of workflow `concurrency` and of each concurrency key.
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Runs just stored by `submit`, handed to their worker without reading
    /// them back from the store.
    fresh: Mutex<HashMap<String, Run>>,
    /// Runs an operator cancelled while they may be executing.
    cancelled: Mutex<HashSet<String>>,
    stopping: AtomicBool,
    stop_signal: watch::Sender<bool>,
    tasks: TaskTracker,
    /// Status of each schedule as its task last reported it.
    schedules: ScheduleBoard,
    metrics: Metrics,
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
            timers: Mutex::new(None),
            workers: Arc::new(Semaphore::new(DEFAULT_WORKERS)),
            limits: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
            stop_signal: watch::channel(false).0,
            tasks: TaskTracker::new(),
            schedules: ScheduleBoard::default(),
            metrics: Metrics::new(),
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

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts the dispatcher, the timers and the schedules, and queues the
    /// runs a previous process left unfinished. Call once, inside a tokio
    /// runtime.
    pub fn start(self: &Arc<Self>) -> Result<(), EngineError> {
        self.start_with_clock(Arc::new(SystemClock))
    }

    /// Like [`Engine::start`], with schedules reading the time from `clock`.
    pub fn start_with_clock(self: &Arc<Self>, clock: Arc<dyn Clock>) -> Result<(), EngineError> {
        let pending = lock(&self.pending).take();
        let Some(mut pending) = pending else {
            return Ok(());
        };
        *lock(&self.timers) = Some(timer::start(self.queue.clone()));

        let unfinished = self.store.unfinished_runs()?;
        if !unfinished.is_empty() {
            tracing::info!(count = unfinished.len(), "resuming unfinished runs");
        }
        for run in unfinished {
            match run.wake_at {
                Some(wake_at) if run.status == RunStatus::Waiting => {
                    self.schedule(wake_at, &run.id)
                }
                _ => {
                    let _ = self.queue.send(run.id);
                }
            }
        }

        let engine = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(run_id) = pending.recv().await {
                if engine.is_stopping() {
                    break;
                }
                let worker = Arc::clone(&engine);
                engine
                    .tasks
                    .spawn(async move { worker.run_queued(run_id).await });
            }
        });
        schedule::start(self, clock);
        Ok(())
    }

    /// Returns the status of each schedule, by workflow name.
    pub fn schedules(&self) -> &ScheduleBoard {
        &self.schedules
    }

    /// Stores a run for `workflow` durably and queues it. With a
    /// deduplication key seen before, stores nothing and returns the first
    /// run's id.
    pub async fn submit(
        &self,
        workflow: &str,
        trigger: TriggerEvent,
    ) -> Result<Submitted, EngineError> {
        if self.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        let run = self.create_run(workflow, trigger)?;
        let dedup = run.trigger.dedup_key.clone();
        match self.store.insert_run(&run, dedup.as_deref()).await? {
            Inserted::New => {
                tracing::info!(run_id = %run.id, workflow, "run queued");
                let run_id = run.id.clone();
                lock(&self.fresh).insert(run_id.clone(), run);
                let _ = self.queue.send(run_id.clone());
                Ok(Submitted::New(run_id))
            }
            Inserted::Duplicate(first) => {
                tracing::info!(run_id = %first, workflow, "duplicate delivery ignored");
                Ok(Submitted::Duplicate(first))
            }
        }
    }

    /// Stores a run and executes it in the caller's task, for `tether run`.
    /// A run that parks on a timer is returned while waiting.
    pub async fn run_now(&self, workflow: &str, trigger: TriggerEvent) -> Result<Run, EngineError> {
        let run = self.create_run(workflow, trigger)?;
        self.store.insert_run(&run, None).await?;
        executor::execute(self, &run.id).await
    }

    /// Executes a stored run in the caller's task until it ends or parks.
    pub async fn execute(&self, run_id: &str) -> Result<Run, EngineError> {
        executor::execute(self, run_id).await
    }

    fn create_run(&self, workflow: &str, mut trigger: TriggerEvent) -> Result<Run, EngineError> {
        let registry = self.registry();
        let Some(definition) = registry.workflow(workflow) else {
            return Err(EngineError::UnknownWorkflow(workflow.to_string()));
        };
        redact::mask_trigger(&registry.redactor, &mut trigger);
        let mut run = Run::new(workflow, trigger);
        if let Some(grouping) = &definition.concurrency_key {
            let mut context = Context::new();
            context.set("trigger", &run.trigger.to_scope_value());
            context.set("vars", &definition.vars);
            run.concurrency_key = match self.scripts.render(&grouping.key, &context) {
                Ok(Value::String(key)) => Some(key),
                Ok(Value::Null) => None,
                Ok(other) => Some(other.to_string()),
                Err(error) => {
                    // The run still happens, only without grouping.
                    tracing::warn!(workflow, %error, "evaluating concurrency_key failed; the run is not grouped");
                    None
                }
            };
        }
        Ok(run)
    }

    async fn run_queued(self: Arc<Self>, run_id: String) {
        let fresh = lock(&self.fresh).remove(&run_id);
        let run = match fresh {
            Some(run) => run,
            None => match self.store.load_run(&run_id) {
                Ok(Some(run)) => run,
                Ok(None) => {
                    tracing::error!(%run_id, "queued run not found in the store");
                    return;
                }
                Err(error) => {
                    tracing::error!(%run_id, %error, "loading a queued run failed");
                    return;
                }
            },
        };
        let permits = self.acquire_limits(&run).await;
        let _worker = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        if let Err(error) = executor::execute_run(&self, run).await {
            tracing::error!(%run_id, %error, "run could not be executed");
        }
        drop(permits);
        self.release_idle_limits();
    }

    /// Waits for the run's workflow `concurrency` and concurrency-key limits.
    async fn acquire_limits(&self, run: &Run) -> Vec<OwnedSemaphorePermit> {
        let registry = self.registry();
        let Some(workflow) = registry.workflow(&run.workflow) else {
            return Vec::new();
        };
        let mut wanted = Vec::new();
        if let Some(limit) = workflow.concurrency {
            wanted.push((run.workflow.clone(), limit));
        }
        if let (Some(grouping), Some(key)) = (&workflow.concurrency_key, &run.concurrency_key) {
            wanted.push((format!("{}\0{key}", run.workflow), grouping.per_key));
        }
        let mut permits = Vec::new();
        for (name, limit) in wanted {
            let semaphore = Arc::clone(
                lock(&self.limits)
                    .entry(name)
                    .or_insert_with(|| Arc::new(Semaphore::new(limit))),
            );
            let permit = semaphore
                .acquire_owned()
                .await
                .expect("limit semaphores are never closed");
            permits.push(permit);
        }
        permits
    }

    /// Drops semaphores that nobody holds or waits for, so one per
    /// concurrency key does not accumulate forever.
    fn release_idle_limits(&self) {
        lock(&self.limits).retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
    }

    /// Queues the run again at `wake_at`.
    pub(crate) fn schedule(&self, wake_at: DateTime<Utc>, run_id: &str) {
        if let Some(timers) = lock(&self.timers).as_ref() {
            let _ = timers.send((wake_at, run_id.to_string()));
        }
    }

    /// Writes a run header unless an operator cancelled the run meanwhile,
    /// so a terminal status never goes back.
    pub(crate) fn save_header(&self, run: &Run) -> Result<(), EngineError> {
        if run.status != RunStatus::Cancelled && self.is_cancelled(&run.id) {
            return Ok(());
        }
        self.store.save_run(run)?;
        Ok(())
    }

    pub(crate) fn is_cancelled(&self, run_id: &str) -> bool {
        lock(&self.cancelled).contains(run_id)
    }

    pub(crate) fn forget_cancel(&self, run_id: &str) {
        lock(&self.cancelled).remove(run_id);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Sleeps for `wait`; returns false early when shutdown begins.
    pub(crate) async fn sleep_unless_stopping(&self, wait: Duration) -> bool {
        let mut signal = self.stop_signal.subscribe();
        if self.is_stopping() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = signal.changed() => false,
        }
    }

    /// Stops taking new events and starting steps, then waits up to `grace`
    /// for steps in flight. What is left stays in the store and resumes on
    /// the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_signal.send_replace(true);
        self.tasks.close();
        tracing::info!(
            in_flight = self.tasks.len(),
            grace_s = grace.as_secs_f64(),
            "waiting for steps in flight"
        );
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tasks.len(),
                "grace period over; unfinished runs resume on the next start"
            );
        }
        if let Err(error) = self.store.sync().await {
            tracing::error!(%error, "final flush of the store failed");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("engine locks are never poisoned: no code panics while holding one")
}
