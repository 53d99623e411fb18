//! Durable state behind one trait. The engine, triggers and web layer only
//! see [`Store`]; [`SledStore`] is the embedded implementation, and a shared
//! database can implement the same trait to back several engine processes.
//!
//! Writes are buffered until [`Store::sync`] returns: callers decide which
//! writes must be on disk before they go on (an acknowledged webhook, a step
//! result before the next step calls a remote side).

mod commit;
mod durable;
mod run_index;
mod sled_store;
mod trigger_format;

pub use sled_store::{CommitMode, SledStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::engine::run::{Run, RunStatus, StepRecord, TriggerEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record `{key}` is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("could not encode record: {0}")]
    Encode(#[source] serde_json::Error),
    /// The flush after a new run's write failed, so what was written may
    /// or may not survive a crash.
    #[error(
        "flushing the store after run {run_id} failed: {message}. Check the disk of the data directory. A run that was written starts when its event is delivered again or when the engine restarts"
    )]
    NotFlushed {
        run_id: String,
        /// Outcome of the write: the run stored, or a duplicate found.
        inserted: Inserted,
        message: String,
    },
    #[error("the flush thread has stopped")]
    FlusherGone,
    /// A key-value operation that cannot apply, such as incrementing text.
    #[error("{0}")]
    Kv(String),
}

/// A change to one key of the `kv` state.
#[derive(Debug, Clone)]
pub enum KvWrite {
    Set {
        value: serde_json::Value,
    },
    /// Sets `value` only if the current value equals `expected` (null for
    /// a missing key).
    CompareAndSet {
        expected: serde_json::Value,
        value: serde_json::Value,
    },
    /// Adds `by` to an integer value; a missing key counts as 0.
    Increment {
        by: i64,
    },
    Delete,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Result of inserting a run that may carry a deduplication key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The run was stored under its own id.
    New,
    /// The key was seen before; nothing was stored. Holds the first run's id.
    Duplicate(String),
}

/// Filter for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs whose id sorts before this one (cursor pagination).
    pub before: Option<String>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only runs whose stored trigger event contains this text, compared
    /// without regard to ASCII case. A webhook body is matched as the sender
    /// wrote it, spacing and number format included. Quotes and
    /// backslashes match as written or escaped.
    pub text: Option<String>,
    pub limit: usize,
}

/// Returns the smallest run id created at `time` or later. Run ids are
/// UUIDv7 in text form, whose first 12 hex digits are the creation time in
/// Unix milliseconds, so this prefix bounds a range of ids by time.
pub fn id_bound(time: DateTime<Utc>) -> String {
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
    let high = (millis >> 16) & 0xffff_ffff;
    let low = millis & 0xffff;
    format!("{high:08x}-{low:04x}")
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a new run and, when `dedup_key` is set, claims that key for
    /// the run's workflow in the same atomic transaction, so two concurrent
    /// copies of one delivery make one run. Durable when it returns.
    async fn insert_run(&self, run: &Run, dedup_key: Option<&str>) -> Result<Inserted>;

    /// Claims `dedup_key` for `workflow` without a run, so a later
    /// [`Store::insert_run`] with the same key is a duplicate. Returns false
    /// when the key was already claimed. Durable after the next
    /// [`Store::sync`].
    fn claim_key(&self, workflow: &str, dedup_key: &str) -> Result<bool>;

    /// Forgets deduplication keys of `workflow` that start with `key_prefix`
    /// and were claimed before `older_than`, so a key seen long ago counts
    /// as new again. Returns how many were forgotten. Keys claimed before
    /// claim times were recorded are kept.
    fn expire_claims(
        &self,
        workflow: &str,
        key_prefix: &str,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize>;

    /// Writes the run's header (everything except its steps).
    fn save_run(&self, run: &Run) -> Result<()>;

    /// Replaces the trigger event of a stored run that has not started,
    /// for debounced runs that carry the latest event.
    fn save_trigger(&self, run_id: &str, trigger: &TriggerEvent) -> Result<()>;

    /// Writes one step record of a run's journal.
    fn save_step(&self, run_id: &str, step: &StepRecord) -> Result<()>;

    /// Deletes the run's step records whose path starts with `path_prefix`.
    fn remove_steps(&self, run_id: &str, path_prefix: &str) -> Result<()>;

    /// Waits until every write made before the call is on disk. Concurrent
    /// callers share one flush.
    async fn sync(&self) -> Result<()>;

    /// Waits like [`Store::sync`], but the flush may start up to `window`
    /// later, so that writes which can wait share a flush with other writers.
    async fn sync_within(&self, window: std::time::Duration) -> Result<()> {
        let _ = window;
        self.sync().await
    }

    /// Loads a run with its journal.
    fn load_run(&self, id: &str) -> Result<Option<Run>>;

    /// Lists run headers, newest first, without their steps and trigger
    /// events.
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>>;

    /// Counts the runs of `workflow` with `status` created at `since` or
    /// later.
    fn count_runs(&self, workflow: &str, status: RunStatus, since: DateTime<Utc>) -> Result<usize>;

    /// Counts every run with `status`. Meant for the unfinished statuses,
    /// whose runs are few; the time grows with the count.
    fn count_in_status(&self, status: RunStatus) -> Result<usize>;

    /// Deletes up to `limit` finished runs created before `cutoff`, oldest
    /// first, with their trigger events, journals and index keys, and
    /// returns how many it deleted. Unfinished runs are kept at any age.
    fn delete_finished_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<usize>;

    /// Reads a small named value kept for the engine itself, such as the
    /// last tick a schedule fired or a poll cursor.
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes such a value; durable after the next [`Store::sync`].
    fn put_state(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Reads a `kv` value.
    fn kv_get(&self, key: &str) -> Result<Option<serde_json::Value>>;

    /// Up to `limit` `kv` entries whose keys start with `prefix` and sort
    /// after `after` (when given), in key order.
    fn kv_list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>>;

    /// Applies a `kv` change once per `idempotency_key`: a repeated key
    /// returns the first result and changes nothing. The result describes
    /// the change (`value`, and `swapped` or `deleted` where they apply).
    /// Durable after the next [`Store::sync`].
    fn kv_write(
        &self,
        key: &str,
        write: KvWrite,
        idempotency_key: &str,
    ) -> Result<serde_json::Value>;

    /// Run headers (without steps and trigger events) that are not terminal,
    /// oldest first, for resuming after a restart.
    fn unfinished_runs(&self) -> Result<Vec<Run>>;
}
