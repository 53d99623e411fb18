//! Runs: accepting trigger events, the worker pool that executes runs, and
//! the journal that lets a run resume after a crash.

mod debounce;
pub mod error;
mod executor;
mod flow;
pub mod recovery;
pub mod redact;
pub mod retention;
pub mod run;
mod step;
mod timer;
mod waiters;
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
use crate::connector::native::{self, NativeConnector};
use crate::expr::{Context, ScriptEngine};
use crate::metrics::Metrics;
use crate::store::{Inserted, Store, StoreError};
use crate::trigger::schedule::{self, Clock, ScheduleBoard, SystemClock};
use crate::workflow::{Registry, Workflow};
use run::{Run, RunStatus, TriggerEvent};

/// Runs executing at once across all workflows.
pub const DEFAULT_WORKERS: usize = 64;

/// Queued runs kept in memory for their worker. A few thousand cover the
/// queue of a busy engine, and a longer backlog is read back from the store.
const FRESH_RUNS_HELD: usize = 4_096;

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
    #[error("the engine is shutting down; send the request again later")]
    ShuttingDown,
}

/// State of storing a new run with a deduplication key. A copy of its
/// event can arrive meanwhile and get the duplicate response, so the
/// engine must still start the run if the storing then fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storing {
    /// Not returned yet.
    InFlight,
    /// Not returned yet, and a copy got the duplicate response.
    Repeated,
    /// Returned an error and no copy has come since.
    Stranded,
}

/// Outcome of accepting a trigger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A new run was stored and queued.
    New(String),
    /// The event was delivered before; contains the id of the run it started.
    Duplicate(String),
}

pub struct Engine {
    registry: RwLock<Arc<Registry>>,
    store: Arc<dyn Store>,
    scripts: ScriptEngine,
    http: HttpRuntime,
    natives: Vec<Arc<dyn NativeConnector>>,
    queue: mpsc::UnboundedSender<String>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    timers: Mutex<Option<timer::TimerSender>>,
    workers: Arc<Semaphore>,
    /// Semaphores of workflow `concurrency` and of each concurrency key.
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Workflows by version, so a run keeps the version it started with
    /// across reloads. Contains the current and previous versions and those
    /// of unfinished runs.
    versions: Mutex<HashMap<String, Arc<Workflow>>>,
    /// Clock of the schedules, kept to start their tasks again on reload.
    clock: Mutex<Option<Arc<dyn Clock>>>,
    /// Running schedule and poll tasks by workflow, with the workflow
    /// version each was started for.
    trigger_tasks: Mutex<HashMap<String, (String, tokio::task::JoinHandle<()>)>>,
    /// Held while a debounced event folds into its pending run, and while
    /// such a run takes its last event to start.
    debounce_lock: tokio::sync::Mutex<()>,
    /// Runs just stored by `submit`, handed to their worker without reading
    /// them back from the store. Contains at most [`FRESH_RUNS_HELD`]. Runs
    /// queued beyond that are read back, so a backlog stays on disk.
    fresh: Mutex<HashMap<String, Run>>,
    /// Locks of the runs taken from the queue, one per run id. A run queued
    /// twice (a timer and a retry, say) executes once at a time: the later
    /// entry waits, then finds the run finished.
    executing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Runs an operator cancelled while they may be executing.
    cancelled: Mutex<HashSet<String>>,
    /// A lock taken shared by operator retries and exclusively by each
    /// retention batch, so retention never deletes a run while a retry
    /// rewrites it.
    retries_or_retention: tokio::sync::RwLock<()>,
    /// Runs with a deduplication key whose storing has not returned yet,
    /// or returned an error after they were written, or when the flush
    /// thread was gone (see [`Storing`]).
    // NOTE: a stranded entry stays until a repeated delivery comes, so a
    // long disk outage leaves one entry per run whose flush failed.
    storing: Mutex<HashMap<String, Storing>>,
    stopping: AtomicBool,
    stop_signal: watch::Sender<bool>,
    tasks: TaskTracker,
    /// Status of each schedule as its task last reported it.
    schedules: ScheduleBoard,
    waiters: waiters::Waiters,
    metrics: Metrics,
}

impl Engine {
    pub fn new(registry: Registry, store: Arc<dyn Store>, scripts: ScriptEngine) -> Arc<Self> {
        Self::with_env(
            registry,
            store,
            scripts,
            &crate::workflow::Env::from_process(),
        )
    }

    /// Like [`Engine::new`], with the built-in connectors (such as
    /// `email`'s SMTP server) configured from `env`.
    pub fn with_env(
        registry: Registry,
        store: Arc<dyn Store>,
        scripts: ScriptEngine,
        env: &crate::workflow::Env,
    ) -> Arc<Self> {
        let (queue, pending) = mpsc::unbounded_channel();
        let versions = registry
            .workflows
            .values()
            .map(|workflow| (workflow.version.clone(), Arc::clone(workflow)))
            .collect();
        Arc::new(Engine {
            registry: RwLock::new(Arc::new(registry)),
            store,
            http: HttpRuntime::new(scripts.clone()),
            natives: native::builtin(env),
            scripts,
            queue,
            pending: Mutex::new(Some(pending)),
            timers: Mutex::new(None),
            workers: Arc::new(Semaphore::new(DEFAULT_WORKERS)),
            limits: Mutex::new(HashMap::new()),
            versions: Mutex::new(versions),
            clock: Mutex::new(None),
            trigger_tasks: Mutex::new(HashMap::new()),
            debounce_lock: tokio::sync::Mutex::new(()),
            fresh: Mutex::new(HashMap::new()),
            executing: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashSet::new()),
            storing: Mutex::new(HashMap::new()),
            retries_or_retention: tokio::sync::RwLock::new(()),
            stopping: AtomicBool::new(false),
            stop_signal: watch::channel(false).0,
            tasks: TaskTracker::new(),
            schedules: ScheduleBoard::default(),
            waiters: waiters::Waiters::default(),
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

    /// The workflow version a run started with: the current one, or an
    /// older one kept since a reload. A version no longer known (after a
    /// restart) falls back to the current one.
    pub(crate) fn workflow_for(&self, run: &Run) -> Option<Arc<Workflow>> {
        let current = self.registry().workflow(&run.workflow).cloned();
        let wanted = run.workflow_version.as_deref();
        if current
            .as_ref()
            .is_some_and(|w| Some(w.version.as_str()) == wanted)
            || wanted.is_none()
        {
            return current;
        }
        let versions = lock(&self.versions);
        match versions.get(wanted.unwrap_or_default()) {
            Some(older) if older.name == run.workflow => Some(Arc::clone(older)),
            _ => {
                tracing::warn!(run_id = %run.id, workflow = %run.workflow, version = wanted.unwrap_or_default(), "the run's workflow version is gone; using the current one");
                current
            }
        }
    }

    /// Loads `dir` again and serves what it holds. A file that fails
    /// validation keeps its previous version serving; its problems are
    /// logged and listed by `GET /api/workflows`. Runs keep the version they
    /// started with.
    pub fn reload(self: &Arc<Self>, dir: &std::path::Path, env: &crate::workflow::Env) -> usize {
        let mut registry = crate::workflow::load_dir(dir, &self.scripts, env);
        let previous = self.registry();
        let kept = registry.keep_previous(&previous);
        for problem in &registry.problems {
            tracing::error!(problem = %problem, "workflow file has a problem; its previous version keeps serving");
        }
        for name in &kept {
            tracing::warn!(kept = %name, "kept the previous version");
        }
        self.remember_versions(&registry, &previous);
        let problems = registry.problems.len();
        tracing::info!(
            workflows = registry.workflows.len(),
            problems,
            "reloaded workflows"
        );
        *self
            .registry
            .write()
            .expect("registry lock is never poisoned: writers do not panic") = Arc::new(registry);
        self.restart_trigger_tasks();
        problems
    }

    /// Starts a task for each schedule and poll workflow that has none, or
    /// whose version changed, and stops the tasks of workflows that are
    /// gone. Stopping a task mid-poll or mid-tick is safe: the runs it
    /// starts carry deduplication keys, and a run being stored is queued
    /// all the same (see [`Engine::submit`]).
    fn restart_trigger_tasks(self: &Arc<Self>) {
        let Some(clock) = lock(&self.clock).clone() else {
            return;
        };
        let registry = self.registry();
        let mut tasks = lock(&self.trigger_tasks);
        tasks.retain(|name, (version, handle)| {
            let current = registry.workflow(name).map(|w| w.version.as_str());
            let keep = current == Some(version.as_str());
            if !keep {
                handle.abort();
            }
            keep
        });
        for workflow in registry.workflows.values() {
            if tasks.contains_key(&workflow.name) {
                continue;
            }
            let handle = schedule::start_one(self, &clock, workflow)
                .or_else(|| crate::trigger::poll::start_one(self, workflow));
            if let Some(handle) = handle {
                tasks.insert(workflow.name.clone(), (workflow.version.clone(), handle));
            }
        }
    }

    /// Adds the versions of `registry` and drops those that neither it,
    /// the `previous` registry (runs may have just started on it) nor an
    /// unfinished run uses. When the unfinished runs cannot be read, every
    /// version is kept.
    fn remember_versions(&self, registry: &Registry, previous: &Registry) {
        let in_use = self.store.unfinished_runs().map(|runs| {
            runs.into_iter()
                .filter_map(|run| run.workflow_version)
                .collect::<HashSet<_>>()
        });
        let mut versions = lock(&self.versions);
        for workflow in registry.workflows.values() {
            versions
                .entry(workflow.version.clone())
                .or_insert_with(|| Arc::clone(workflow));
        }
        let in_use = match in_use {
            Ok(in_use) => in_use,
            Err(error) => {
                tracing::error!(%error, "listing unfinished runs failed; keeping every workflow version");
                return;
            }
        };
        let loaded = registry
            .workflows
            .values()
            .chain(previous.workflows.values())
            .map(|workflow| workflow.version.as_str())
            .collect::<HashSet<_>>();
        versions.retain(|version, _| loaded.contains(version.as_str()) || in_use.contains(version));
    }

    /// Returns the native connector called `name`, if there is one.
    pub(crate) fn native(&self, name: &str) -> Option<&Arc<dyn NativeConnector>> {
        self.natives.iter().find(|native| native.name() == name)
    }

    pub(crate) fn http(&self) -> &HttpRuntime {
        &self.http
    }

    pub(crate) fn scripts(&self) -> &ScriptEngine {
        &self.scripts
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts the dispatcher, the timers, the schedules and the polls, and queues the
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
        *lock(&self.clock) = Some(clock);
        self.restart_trigger_tasks();
        Ok(())
    }

    /// Returns the status of each schedule, by workflow name.
    pub fn schedules(&self) -> &ScheduleBoard {
        &self.schedules
    }

    /// Stores a run for `workflow` durably and queues it. With a
    /// deduplication key seen before, stores nothing and returns the first
    /// run's id. Storing goes on when the returned future is dropped.
    pub async fn submit(
        self: &Arc<Self>,
        workflow: &str,
        trigger: TriggerEvent,
    ) -> Result<Submitted, EngineError> {
        if self.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        // A sender that disconnects, or a reload that stops a trigger task,
        // drops this future. Storing goes on in a task of its own, so a run
        // that gets written and claimed is also queued.
        let engine = Arc::clone(self);
        let workflow = workflow.to_string();
        let storing = self.tasks.spawn(async move {
            // Shutdown may have waited for the tasks between the check
            // above and this spawn, and then this task is not waited for.
            if engine.is_stopping() {
                return Err(EngineError::ShuttingDown);
            }
            engine.store_and_queue(&workflow, trigger).await
        });
        match storing.await {
            Ok(submitted) => submitted,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only the end of the runtime cancels the task. A run it wrote
            // is claimed, so a repeat gets the duplicate response and the
            // run resumes on the next start.
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }

    async fn store_and_queue(
        &self,
        workflow: &str,
        trigger: TriggerEvent,
    ) -> Result<Submitted, EngineError> {
        let debounce = self
            .registry()
            .workflow(workflow)
            .and_then(|w| w.debounce.clone());
        if let Some(debounce) = debounce {
            return debounce::submit(self, workflow, trigger, &debounce).await;
        }
        let run = self.create_run(workflow, trigger)?;
        let dedup = run.trigger.dedup_key.clone();
        if dedup.is_some() {
            lock(&self.storing).insert(run.id.clone(), Storing::InFlight);
        }
        let inserted = match self.store.insert_run(&run, dedup.as_deref()).await {
            Ok(inserted) => {
                lock(&self.storing).remove(&run.id);
                inserted
            }
            Err(error) => {
                if dedup.is_some() {
                    self.storing_returned(&run.id, &error);
                }
                return Err(error.into());
            }
        };
        match inserted {
            Inserted::New => {
                tracing::info!(run_id = %run.id, workflow, "run queued");
                let run_id = run.id.clone();
                let mut fresh = lock(&self.fresh);
                if fresh.len() < FRESH_RUNS_HELD {
                    fresh.insert(run_id.clone(), run);
                }
                drop(fresh);
                let _ = self.queue.send(run_id.clone());
                Ok(Submitted::New(run_id))
            }
            Inserted::Duplicate(first) => {
                tracing::info!(run_id = %first, workflow, "duplicate delivery ignored");
                self.repeated(&first);
                Ok(Submitted::Duplicate(first))
            }
        }
    }

    /// Records the error that storing run `run_id` returned. Only a run
    /// that was written, or whose fate is unknown, can be claimed.
    fn storing_returned(&self, run_id: &str, error: &StoreError) {
        match error {
            StoreError::NotFlushed {
                inserted: Inserted::New,
                ..
            }
            | StoreError::FlusherGone => self.storing_failed(run_id),
            // A duplicate, or a write that failed before the claim, so no
            // repeat can name this run.
            _ => {
                lock(&self.storing).remove(run_id);
            }
        }
    }

    /// Records that storing run `run_id` failed after its write. The run
    /// may be on disk and claimed, and then only a repeated delivery or the
    /// next start can start it. If a repeat arrived while the run was being
    /// stored, this queues the run now.
    fn storing_failed(&self, run_id: &str) {
        let mut storing = lock(&self.storing);
        if storing.remove(run_id) == Some(Storing::Repeated) {
            drop(storing);
            self.queue_if_still_queued(run_id);
        } else {
            storing.insert(run_id.to_string(), Storing::Stranded);
        }
    }

    /// Handles a repeated delivery of run `first`: queues it when its own
    /// storing returned an error, and marks it when that storing has not
    /// returned yet.
    fn repeated(&self, first: &str) {
        let mut storing = lock(&self.storing);
        match storing.get(first) {
            Some(Storing::Stranded) => {
                storing.remove(first);
                drop(storing);
                self.queue_if_still_queued(first);
            }
            Some(Storing::InFlight) => {
                storing.insert(first.to_string(), Storing::Repeated);
            }
            Some(Storing::Repeated) | None => {}
        }
    }

    /// Queues a run whose storing returned an error, once a repeated
    /// delivery shows the run is claimed, if the run is still queued. It
    /// may be stored and claimed although `submit` never queued it, and
    /// without this it would wait for the next start. Only such runs come
    /// here, so a run is never queued twice.
    fn queue_if_still_queued(&self, run_id: &str) {
        match self.store.load_run(run_id) {
            Ok(Some(run)) if run.status == RunStatus::Queued => {
                let _ = self.queue.send(run.id);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%run_id, %error,
                    "loading a run whose delivery was repeated failed; if it is queued, it starts when the engine next starts");
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

    /// [`Engine::execute`] behind a box, for `call` steps, whose child run
    /// executes inside the parent's execution.
    pub(crate) fn execute_boxed<'e>(
        &'e self,
        run_id: &'e str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Run, EngineError>> + Send + 'e>>
    {
        Box::pin(executor::execute(self, run_id))
    }

    /// Stores a child run for a `call` step. It is not queued: its parent
    /// executes it.
    pub(crate) async fn start_child(
        &self,
        workflow: &str,
        input: Value,
        parent: run::ParentRef,
        depth: u32,
    ) -> Result<Run, EngineError> {
        let mut trigger = TriggerEvent::manual(input);
        trigger.kind = run::TriggerKind::Call;
        let mut run = self.create_run(workflow, trigger)?;
        run.parent = Some(parent);
        run.depth = depth;
        self.store.insert_run(&run, None).await?;
        tracing::info!(run_id = %run.id, workflow, parent = %run.parent.as_ref().map_or("", |p| p.run_id.as_str()), "child run started");
        Ok(run)
    }

    pub(crate) fn create_run(
        &self,
        workflow: &str,
        mut trigger: TriggerEvent,
    ) -> Result<Run, EngineError> {
        let registry = self.registry();
        let Some(definition) = registry.workflow(workflow) else {
            return Err(EngineError::UnknownWorkflow(workflow.to_string()));
        };
        redact::mask_trigger(&registry.redactor, &mut trigger);
        let mut run = Run::new(workflow, trigger);
        run.workflow_version = Some(definition.version.clone());
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
        let slot = Arc::clone(lock(&self.executing).entry(run_id.clone()).or_default());
        let running = slot.lock().await;
        Arc::clone(&self).run_queued_alone(run_id.clone()).await;
        drop(running);
        let mut executing = lock(&self.executing);
        // Only the map and this task hold the lock, so no other task waits.
        if Arc::strong_count(&slot) == 2 {
            executing.remove(&run_id);
        }
    }

    /// Loads and executes a queued run; the caller holds the run's lock.
    async fn run_queued_alone(self: Arc<Self>, run_id: String) {
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
        if run.parent.is_some() {
            // Its parent's `call` step executes it.
            tracing::debug!(%run_id, "child run left to its parent");
            return;
        }
        let mut slots = self.acquire_limits(&run).await;
        let worker = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed");
        slots.push(worker);
        if let Err(error) = executor::execute_run(&self, run, slots).await {
            tracing::error!(%run_id, %error, "run could not be executed");
        }
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

    /// Drops semaphores that no run holds or waits for, so one per
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

    /// Tells callers of [`Engine::wait_for_end`] that the run ended.
    pub(crate) fn notify_end(&self, run: &Run) {
        self.waiters.notify(run);
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
    /// for steps in flight and for new runs being stored. What is left
    /// stays in the store and resumes on the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_signal.send_replace(true);
        self.tasks.close();
        tracing::info!(
            in_flight = self.tasks.len(),
            grace_s = grace.as_secs_f64(),
            "waiting for steps in flight and runs being stored"
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

#[cfg(test)]
mod tests;
