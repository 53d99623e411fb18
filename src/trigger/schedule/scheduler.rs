//! The scheduler: one task per schedule workflow that sleeps until the next
//! tick, starts a run for it, and stores the newest tick it handled, so
//! that after a restart it can tell which ticks were missed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::{Overlap, plan};
use super::{Schedule, dedup_key, format_utc};
use crate::engine::run::{RunStatus, TriggerEvent};
use crate::engine::{Engine, EngineError, Submitted};
use crate::store::RunQuery;
use crate::workflow::Trigger;
use crate::workflow::Workflow;
use crate::workflow::model::ScheduleTrigger;

/// Maximum length of one sleep. The scheduler reads the clock again after each, so
/// a wall clock that jumps (a suspended host, an NTP step) delays a tick by
/// at most this long.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Source of the current time. Tests pass a clock set to the time they need.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Status of one schedule as its task reports it, for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleStatus {
    pub next_fire: Option<DateTime<Utc>>,
    /// Newest tick handled: run, skipped or missed.
    pub last_tick: Option<DateTime<Utc>>,
    /// Ticks left out by the catch-up policy since the engine started.
    pub missed: u64,
    /// Ticks skipped because an earlier run was unfinished.
    pub skipped: u64,
    /// Error that stopped the schedule, if one did.
    pub error: Option<String>,
}

/// Status of every running schedule, by workflow name.
#[derive(Debug, Default)]
pub struct ScheduleBoard {
    statuses: Mutex<BTreeMap<String, ScheduleStatus>>,
}

impl ScheduleBoard {
    pub fn get(&self, workflow: &str) -> Option<ScheduleStatus> {
        self.lock().get(workflow).cloned()
    }

    fn update(&self, workflow: &str, change: impl FnOnce(&mut ScheduleStatus)) {
        change(self.lock().entry(workflow.to_string()).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ScheduleStatus>> {
        // A panic while holding this lock can only come from a bug in a
        // short update closure, so the map stays usable either way.
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Stored under `schedule/<workflow>`.
#[derive(Debug, Serialize, serde::Deserialize)]
struct StoredTick {
    /// Every tick up to this instant was handled. On first activation it is
    /// the activation time, which need not be a tick.
    handled_until: DateTime<Utc>,
}

/// Starts the task of one schedule workflow; `None` for other triggers.
pub(crate) fn start_one(
    engine: &Arc<Engine>,
    clock: &Arc<dyn Clock>,
    workflow: &Workflow,
) -> Option<tokio::task::JoinHandle<()>> {
    let Trigger::Schedule(trigger) = &workflow.trigger else {
        return None;
    };
    let task = ScheduleTask {
        engine: Arc::clone(engine),
        clock: Arc::clone(clock),
        workflow: workflow.name.clone(),
        trigger: ScheduleTrigger::clone(trigger),
    };
    Some(tokio::spawn(task.run()))
}

/// Reason a schedule task ends.
enum Stop {
    /// The engine is shutting down.
    Shutdown,
    /// The schedule cannot continue, for the reason in the message.
    Failed(String),
}

struct ScheduleTask {
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    workflow: String,
    trigger: ScheduleTrigger,
}

impl ScheduleTask {
    fn schedule(&self) -> &Schedule {
        &self.trigger.schedule
    }

    async fn run(self) {
        tracing::info!(
            workflow = %self.workflow,
            cron = self.schedule().expression(),
            timezone = self.schedule().timezone().name(),
            "schedule started"
        );
        match self.run_until_stopped().await {
            Stop::Shutdown => tracing::info!(workflow = %self.workflow, "schedule stopped"),
            Stop::Failed(error) => {
                tracing::error!(workflow = %self.workflow, %error, "schedule stopped by an error; fix the workflow and restart");
                self.board().update(&self.workflow, |status| {
                    status.next_fire = None;
                    status.error = Some(error);
                });
            }
        }
    }

    async fn run_until_stopped(&self) -> Stop {
        let mut cursor = match self.catch_up().await {
            Ok(cursor) => cursor,
            Err(stop) => return stop,
        };
        loop {
            let next = match self.schedule().next_after(cursor) {
                Ok(next) => next,
                Err(error) => return Stop::Failed(error.to_string()),
            };
            self.board()
                .update(&self.workflow, |status| status.next_fire = Some(next));
            if !self.sleep_until(next).await {
                return Stop::Shutdown;
            }
            // Ticks after `next` are due too when the process slept past
            // them. When none is due after all (the clock went back), the
            // cursor stays and the loop sleeps again.
            cursor = match self.handle_due(cursor, self.clock.now(), true).await {
                Ok(handled) => handled,
                Err(stop) => return stop,
            };
        }
    }

    /// Handles the ticks missed while the engine was down and returns the
    /// instant up to which ticks are handled.
    async fn catch_up(&self) -> Result<DateTime<Utc>, Stop> {
        let now = self.clock.now();
        let Some(handled_until) = self.load_handled_until() else {
            // First activation: nothing was missed, so nothing is caught up.
            self.save_handled_until(now).await;
            return Ok(now);
        };
        self.handle_due(handled_until, now, false).await
    }

    /// Runs or records the ticks in `(after, now]` by the catch-up policy
    /// and returns the newest of them, or `after` when none is due.
    async fn handle_due(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        on_time: bool,
    ) -> Result<DateTime<Utc>, Stop> {
        let limit = self.trigger.catch_up_limit;
        let due = match self.schedule().due(after, now, limit + 1) {
            Ok(due) => due,
            Err(error) => return Err(Stop::Failed(error.to_string())),
        };
        let Some(&newest) = due.newest.last() else {
            return Ok(after);
        };
        let decided = plan(
            &due.newest,
            due.total,
            self.trigger.catch_up,
            limit,
            on_time,
        );
        if decided.missed > 0 {
            tracing::info!(
                workflow = %self.workflow,
                missed = decided.missed,
                since = %format_utc(after),
                catch_up = self.trigger.catch_up.as_str(),
                "schedule ticks missed; no run started for them"
            );
        }
        let mut all_stored = true;
        for tick in &decided.run {
            all_stored &= self.fire(*tick).await?;
        }
        self.board().update(&self.workflow, |status| {
            status.missed += decided.missed as u64;
            status.last_tick = Some(newest);
        });
        // After a failed submit the stored value stays behind, so the next
        // start catches the tick up by the policy.
        if all_stored {
            self.save_handled_until(newest).await;
        }
        Ok(newest)
    }

    /// Starts the run of one tick, unless the overlap policy skips it.
    /// Returns false when the run could not be stored.
    async fn fire(&self, tick: DateTime<Utc>) -> Result<bool, Stop> {
        let scheduled_at = format_utc(tick);
        if self.trigger.overlap == Overlap::Skip && self.has_unfinished_run() {
            tracing::info!(workflow = %self.workflow, %scheduled_at, "schedule tick skipped: an earlier run is unfinished");
            self.board()
                .update(&self.workflow, |status| status.skipped += 1);
            return Ok(true);
        }
        let mut event = TriggerEvent::schedule(tick);
        event.dedup_key = Some(dedup_key(tick));
        match self.engine.submit(&self.workflow, event).await {
            Ok(Submitted::New(run_id)) => {
                tracing::info!(workflow = %self.workflow, %scheduled_at, %run_id, "schedule fired");
            }
            Ok(Submitted::Duplicate(run_id)) => {
                tracing::info!(workflow = %self.workflow, %scheduled_at, %run_id, "schedule tick already has a run");
            }
            Err(EngineError::ShuttingDown) => return Err(Stop::Shutdown),
            Err(error) => {
                tracing::error!(workflow = %self.workflow, %scheduled_at, %error, "starting a scheduled run failed");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Returns whether a queued, running or waiting run of the workflow exists.
    /// A failed lookup is logged and counts as none, so the tick still runs.
    fn has_unfinished_run(&self) -> bool {
        // A run moves from queued to running, then between running and
        // waiting. The second running lookup finds a run that went from
        // waiting to running after the first one, and the second queued
        // lookup one queued meanwhile (by hand, or by an operator's retry
        // or replay).
        // NOTE: a run that changes status twice during these lookups, such
        // as one queued and then started after the first queued lookup, can
        // still be missed, and its tick then starts beside it.
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Running,
            RunStatus::Queued,
        ]
        .into_iter()
            .any(|status| {
                let query = RunQuery {
                    workflow: Some(self.workflow.clone()),
                    status: Some(status),
                    before: None,
                    limit: 1,
                    ..RunQuery::default()
                };
                match self.engine.store().list_runs(&query) {
                    Ok(runs) => !runs.is_empty(),
                    Err(error) => {
                        tracing::error!(workflow = %self.workflow, %error, "listing unfinished runs failed");
                        false
                    }
                }
            })
    }

    /// Sleeps until the clock reads `at` or later. Returns false when the
    /// engine begins shutting down first.
    async fn sleep_until(&self, at: DateTime<Utc>) -> bool {
        loop {
            let now = self.clock.now();
            if now >= at {
                return true;
            }
            let wait = (at - now).to_std().unwrap_or_default().min(MAX_SLEEP);
            // Sleeping a millisecond longer than requested keeps a timer that
            // rounds down from waking just before `at` over and over.
            let wait = wait + Duration::from_millis(1);
            if !self.engine.sleep_unless_stopping(wait).await {
                return false;
            }
        }
    }

    fn state_key(&self) -> String {
        format!("schedule/{}", self.workflow)
    }

    fn load_handled_until(&self) -> Option<DateTime<Utc>> {
        let key = self.state_key();
        let bytes = match self.engine.store().get_state(&key) {
            Ok(bytes) => bytes?,
            Err(error) => {
                tracing::error!(workflow = %self.workflow, %error, "reading the last schedule tick failed; starting from now");
                return None;
            }
        };
        match serde_json::from_slice::<StoredTick>(&bytes) {
            Ok(stored) => Some(stored.handled_until),
            Err(error) => {
                tracing::warn!(workflow = %self.workflow, %key, %error, "stored schedule tick is invalid; starting from now");
                None
            }
        }
    }

    /// Stores `handled_until` durably. A failure is logged: the ticks since
    /// the last stored value then count as missed on the next start, and
    /// deduplication keeps any of them from running twice.
    async fn save_handled_until(&self, handled_until: DateTime<Utc>) {
        let stored = StoredTick { handled_until };
        let result = match serde_json::to_vec(&stored) {
            Ok(bytes) => self.engine.store().put_state(&self.state_key(), &bytes),
            Err(error) => Err(crate::store::StoreError::Encode(error)),
        };
        let result = match result {
            Ok(()) => self.engine.store().sync().await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::error!(workflow = %self.workflow, %error, "storing the last schedule tick failed");
        }
    }

    fn board(&self) -> &ScheduleBoard {
        self.engine.schedules()
    }
}
