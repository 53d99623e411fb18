//! The embedded store: sled files under the data directory.
//!
//! Trees: `runs` maps a run id to its header as JSON; `triggers` maps it to
//! the event that started it, written once; `steps` maps
//! `<run id>/<step path, numbers zero-padded>` to a step record; `dedup` maps
//! `<workflow>\0<deduplication key>` to the id of the run it started;
//! `claimed_at` when each deduplication key that can expire was claimed
//! (webhook keys that are not debounced never expire and have no entry);
//! `state` contains
//! small named values of the engine; `kv` holds the `kv` connector's values
//! and `kv_applied` the result of each write by its idempotency key;
//! `run_status` and `run_workflow` contain the keys described in
//! [`super::run_index`]. Run ids are time-ordered, so the `runs` tree
//! iterates oldest to newest.

use std::ops::Bound;
use std::path::Path;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionResult};
use sled::{IVec, Transactional};

use super::commit::{GroupCommit, NewRun};
use super::durable::Durable;
use super::run_index;
use super::trigger_format;
use super::{Inserted, KvWrite, Result, RunQuery, Store, StoreError, id_bound};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::engine::run::{Run, RunStatus, StepRecord, TriggerEvent, TriggerKind, path_sort_key};

/// Way writers wait for their writes to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Concurrent writers share one flush (the default).
    #[default]
    Group,
    /// Every sync flushes on its own; kept to measure what grouping saves.
    PerSync,
}

pub struct SledStore {
    durable: Arc<Durable>,
    mode: CommitMode,
    trees: RunTrees,
    steps: sled::Tree,
    state: sled::Tree,
    kv: sled::Tree,
    kv_applied: sled::Tree,
    /// Serializes header writes that read the old status to update the
    /// index without a sled transaction.
    header_lock: std::sync::Mutex<()>,
    commit: GroupCommit,
}

/// The trees a new run is written to.
#[derive(Clone)]
struct RunTrees {
    runs: sled::Tree,
    triggers: sled::Tree,
    dedup: sled::Tree,
    /// When each deduplication key was claimed: 8 bytes, Unix seconds.
    claimed_at: sled::Tree,
    index: sled::Tree,
    /// `<workflow>\0<run id>` for every run, a key that never changes.
    by_workflow: sled::Tree,
}

impl RunTrees {
    /// Writes a run stored for the first time. Its id is new, so no other
    /// writer touches its header or index key yet.
    ///
    /// A webhook run's deduplication claim is written after the run. sled
    /// recovers its log up to the first gap (see `pagecache/iterator.rs` in
    /// sled 0.34), so after a crash a claim never exists without its run.
    /// A run without its claim was never acknowledged, and the next open
    /// drops it. Other runs with a claim
    /// (debounced, polled, scheduled) are written in one transaction with
    /// it, which costs about three times as much.
    fn write_new_run(&self, new: &NewRun) -> Result<Inserted> {
        let Some(claim) = &new.claim else {
            self.write_run_keys(new)?;
            return Ok(Inserted::New);
        };
        if new.claim_in_transaction {
            return self.write_new_run_in_transaction(new, claim);
        }
        if let Some(first) = self.dedup.get(claim)? {
            return Ok(Inserted::Duplicate(lossy(&first)));
        }
        self.write_run_keys(new)?;
        let claimed =
            self.dedup
                .compare_and_swap(claim, None as Option<&[u8]>, Some(new.id.as_bytes()))?;
        if let Err(taken) = claimed {
            // Another writer claimed the key since the check above.
            self.remove_run_keys(&new.id, &new.workflow, new.status)?;
            let first = taken.current.map(|first| lossy(&first)).unwrap_or_default();
            return Ok(Inserted::Duplicate(first));
        }
        // No `claimed_at` entry: only `poll:` keys expire, and a webhook's
        // acknowledgement waits for one sled write fewer.
        Ok(Inserted::New)
    }

    fn write_run_keys(&self, new: &NewRun) -> Result<()> {
        self.triggers
            .insert(new.id.as_bytes(), new.trigger.as_slice())?;
        self.index
            .insert(run_index::key(&new.id, &new.workflow, new.status), &[])?;
        self.by_workflow
            .insert(run_index::workflow_key(&new.id, &new.workflow), &[])?;
        self.runs.insert(new.id.as_bytes(), new.header.as_slice())?;
        Ok(())
    }

    fn remove_run_keys(&self, run_id: &str, workflow: &str, status: RunStatus) -> Result<()> {
        self.runs.remove(run_id.as_bytes())?;
        self.index
            .remove(run_index::key(run_id, workflow, status))?;
        self.by_workflow
            .remove(run_index::workflow_key(run_id, workflow))?;
        self.triggers.remove(run_id.as_bytes())?;
        Ok(())
    }

    fn write_new_run_in_transaction(&self, new: &NewRun, claim: &[u8]) -> Result<Inserted> {
        let keys = (new.id.as_str(), new.workflow.as_str(), new.status);
        let now = unix_seconds();
        let trees = (
            &self.runs,
            &self.triggers,
            &self.dedup,
            &self.index,
            &self.claimed_at,
            &self.by_workflow,
        );
        let outcome =
            trees.transaction(|(runs, triggers, dedup, index, claimed_at, by_workflow)| {
                if let Some(first) = dedup.get(claim)? {
                    return Ok(Inserted::Duplicate(lossy(&first)));
                }
                dedup.insert(claim, new.id.as_bytes())?;
                claimed_at.insert(claim, &now)?;
                triggers.insert(new.id.as_bytes(), new.trigger.as_slice())?;
                run_index::write_new((runs, index, by_workflow), keys, &new.header)?;
                Ok(Inserted::New)
            });
        transaction_result(outcome)
    }

    /// Deletes queued webhook runs whose deduplication claim does not name
    /// them. Such a run was written but the process stopped before its
    /// claim and the flush, so its sender never got an acknowledgement and
    /// delivers the event again. Also deletes `queued` index keys whose run
    /// has no header, with their trigger events, left when the process
    /// stopped partway through writing a new run. Returns how many runs and
    /// such keys were deleted.
    fn drop_unclaimed_runs(&self) -> Result<usize> {
        #[derive(serde::Deserialize)]
        struct TriggerClaim {
            kind: TriggerKind,
            #[serde(default)]
            dedup_key: Option<String>,
        }
        let mut dropped = 0;
        for workflow in run_index::workflows(&self.index)? {
            let prefix = run_index::prefix(&workflow, RunStatus::Queued);
            for entry in self.index.scan_prefix(prefix) {
                let (key, _) = entry?;
                let run_id = run_index::run_id_of(&key);
                let Some(header) = self.runs.get(run_id)? else {
                    // The process stopped between writing a new run's index
                    // key and its header, so the run was never acknowledged.
                    let run_id = lossy(run_id);
                    self.remove_run_keys(&run_id, &workflow, RunStatus::Queued)?;
                    dropped += 1;
                    continue;
                };
                let Some(trigger) = self.triggers.get(run_id)? else {
                    continue;
                };
                let run: Run = decode(run_id, &header)?;
                let trigger: TriggerClaim = decode(run_id, &trigger)?;
                let Some(dedup) = trigger.dedup_key else {
                    continue;
                };
                let fast_path = !claim_in_transaction(trigger.kind, run.debounce_key.is_some());
                if run.status != RunStatus::Queued || !fast_path {
                    continue;
                }
                let claimed = self.dedup.get(dedup_key(&workflow, &dedup))?;
                if claimed.as_deref() == Some(run.id.as_bytes()) {
                    continue;
                }
                tracing::warn!(run_id = %run.id, workflow = %workflow,
                    "dropping a run whose event was never acknowledged; its sender delivers it again");
                self.remove_run_keys(&run.id, &workflow, run.status)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// Whether a run's deduplication claim must be written in one transaction
/// with the run. Webhook runs that are not debounced claim after the run
/// instead. Their claims never expire (only `poll:` keys do), so a queued
/// one without its claim can only be a run whose event was never
/// acknowledged.
fn claim_in_transaction(kind: TriggerKind, debounced: bool) -> bool {
    kind != TriggerKind::Webhook || debounced
}

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl SledStore {
    /// Opens or creates the store in `dir`. Fails when another process has
    /// the directory open.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, CommitMode::Group)
    }

    pub fn open_with(dir: &Path, mode: CommitMode) -> Result<Self> {
        let db = sled::Config::new().path(dir).open()?;
        let runs = db.open_tree("runs")?;
        let triggers = db.open_tree("triggers")?;
        let steps = db.open_tree("steps")?;
        let dedup = db.open_tree("dedup")?;
        let state = db.open_tree("state")?;
        let claimed_at = db.open_tree("claimed_at")?;
        let kv = db.open_tree("kv")?;
        let kv_applied = db.open_tree("kv_applied")?;
        let index = db.open_tree("run_status")?;
        let by_workflow = db.open_tree("run_workflow")?;
        if state.get(run_index::BUILT_MARKER)?.is_none() {
            let count = run_index::build(&runs, &index, &by_workflow)?;
            state.insert(run_index::BUILT_MARKER, &[])?;
            db.flush()?;
            db.drop_tree(run_index::FORMER_TREE)?;
            tracing::info!(
                runs = count,
                "built the run index for runs stored before it existed"
            );
        }
        let trees = RunTrees {
            runs,
            triggers,
            dedup,
            claimed_at,
            index,
            by_workflow,
        };
        let dropped = trees.drop_unclaimed_runs()?;
        let stale = run_index::remove_stale(&trees.runs, &trees.index)?;
        if stale > 0 {
            tracing::info!(keys = stale, "removed index keys left by a crash");
        }
        if dropped + stale > 0 {
            db.flush()?;
        }
        let writer = trees.clone();
        let durable = Arc::new(Durable::new(db.clone(), dir)?);
        let commit = GroupCommit::start(
            Arc::clone(&durable),
            Box::new(move |run| writer.write_new_run(run)),
        );
        Ok(SledStore {
            durable,
            mode,
            trees,
            steps,
            state,
            kv,
            kv_applied,
            header_lock: std::sync::Mutex::new(()),
            commit,
        })
    }

    /// Appends the run stored under `key` to `found` when it matches
    /// `query`. Workflow and status are checked here against the header,
    /// because an index key can name a status the run no longer has: one
    /// left by a crash during a status change, or one read just before a
    /// change.
    fn collect(
        &self,
        key: &[u8],
        bytes: &[u8],
        query: &RunQuery,
        needle: Option<&str>,
        found: &mut Vec<Run>,
    ) -> Result<()> {
        let run: Run = decode(key, bytes)?;
        let workflow_matches = query.workflow.as_deref().is_none_or(|w| w == run.workflow);
        let status_matches = query.status.is_none_or(|s| s == run.status);
        if !(workflow_matches && status_matches) {
            return Ok(());
        }
        if let Some(needle) = needle
            && !self.trigger_contains(key, needle)?
        {
            return Ok(());
        }
        found.push(run);
        Ok(())
    }

    /// Whether the stored trigger event of run `key` contains `needle`,
    /// which must be in lower case.
    fn trigger_contains(&self, key: &[u8], needle: &str) -> Result<bool> {
        let Some(event) = self.trees.triggers.get(key)? else {
            return Ok(false);
        };
        if needle.is_empty() {
            return Ok(true);
        }
        if contains_ignoring_case(&event, needle.as_bytes()) {
            return Ok(true);
        }
        // A body stored only as its text is a JSON string in the event, with
        // its quotes and backslashes escaped.
        if needle.contains(['"', '\\']) {
            let quoted = serde_json::to_string(needle).map_err(StoreError::Encode)?;
            let escaped = &quoted[1..quoted.len() - 1];
            return Ok(contains_ignoring_case(&event, escaped.as_bytes()));
        }
        Ok(false)
    }

    /// Deletes journal entries of runs created before `cutoff` that have no
    /// header, left by a crash while retention deleted their run.
    fn remove_orphan_steps(&self, cutoff: DateTime<Utc>) -> Result<()> {
        let mut checked: Option<Vec<u8>> = None;
        let mut orphan = false;
        for entry in self.steps.range(..id_bound(cutoff).into_bytes()) {
            let (key, _) = entry?;
            let run_id = key.split(|byte| *byte == b'/').next().unwrap_or_default();
            if checked.as_deref() != Some(run_id) {
                orphan = self.trees.runs.get(run_id)?.is_none();
                checked = Some(run_id.to_vec());
            }
            if orphan {
                self.steps.remove(&key)?;
            }
        }
        Ok(())
    }

    /// Flushes without going through the group-commit thread, for shutdown.
    pub fn flush_now(&self) -> Result<()> {
        self.durable.flush()?;
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(StoreError::Encode)
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn header_bytes(run: &Run) -> Result<Vec<u8>> {
    run.header_json().map_err(StoreError::Encode)
}

/// Returns the range of run ids a query covers, as `lower..upper` bounds.
fn id_range(query: &RunQuery) -> (Vec<u8>, Vec<u8>) {
    let lower = query.since.map(id_bound).unwrap_or_default();
    let mut upper = query
        .until
        .map_or_else(|| vec![0xff], |until| id_bound(until).into_bytes());
    if let Some(before) = &query.before
        && before.as_bytes() < upper.as_slice()
    {
        upper = before.as_bytes().to_vec();
    }
    (lower.into_bytes(), upper)
}

fn transaction_result<T>(outcome: TransactionResult<T, StoreError>) -> Result<T> {
    match outcome {
        Ok(value) => Ok(value),
        Err(TransactionError::Abort(error)) => Err(error),
        Err(TransactionError::Storage(error)) => Err(error.into()),
    }
}

/// The value a `kv` write leaves (`None` removes the key) and what the
/// write returns.
fn apply_kv(
    key: &str,
    current: Option<Value>,
    write: &KvWrite,
) -> std::result::Result<(Option<Value>, Value), String> {
    Ok(match write {
        KvWrite::Set { value } => (Some(value.clone()), json!({ "value": value })),
        KvWrite::CompareAndSet { expected, value } => {
            let matches = current.as_ref().unwrap_or(&Value::Null) == expected;
            if matches {
                (
                    Some(value.clone()),
                    json!({ "swapped": true, "value": value }),
                )
            } else {
                let value = current.clone().unwrap_or(Value::Null);
                (current, json!({ "swapped": false, "value": value }))
            }
        }
        KvWrite::Increment { by } => {
            let now = match &current {
                None => 0,
                Some(value) => value.as_i64().ok_or_else(|| {
                    format!("cannot increment `{key}`: its value {value} is not an integer")
                })?,
            };
            let next = now
                .checked_add(*by)
                .ok_or_else(|| format!("incrementing `{key}` by {by} overflows"))?;
            (Some(json!(next)), json!({ "value": next }))
        }
        KvWrite::Delete => (None, json!({ "deleted": current.is_some() })),
    })
}

fn step_key(run_id: &str, path: &str) -> String {
    format!("{run_id}/{}", path_sort_key(path))
}

fn unix_seconds() -> [u8; 8] {
    (chrono::Utc::now().timestamp().max(0) as u64).to_be_bytes()
}

fn dedup_key(workflow: &str, key: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(workflow.len() + key.len() + 1);
    bytes.extend_from_slice(workflow.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

#[async_trait]
impl Store for SledStore {
    async fn insert_run(&self, run: &Run, dedup: Option<&str>) -> Result<Inserted> {
        let new = NewRun {
            id: run.id.clone(),
            workflow: run.workflow.clone(),
            status: run.status,
            header: header_bytes(run)?,
            trigger: trigger_format::encode(&run.trigger).map_err(StoreError::Encode)?,
            claim: dedup.map(|dedup| dedup_key(&run.workflow, dedup)),
            claim_in_transaction: claim_in_transaction(
                run.trigger.kind,
                run.debounce_key.is_some(),
            ),
        };
        match self.mode {
            // A duplicate waits for the flush too: the first copy may not be
            // on disk yet, and acknowledging before it is could lose an
            // event the sender saw acknowledged.
            CommitMode::Group => self.commit.insert(new).await,
            CommitMode::PerSync => {
                let inserted = self.trees.write_new_run(&new)?;
                match self.sync().await {
                    Ok(()) => Ok(inserted),
                    Err(error) => Err(StoreError::NotFlushed {
                        run_id: run.id.clone(),
                        inserted,
                        message: match error {
                            StoreError::Sled(error) => error.to_string(),
                            other => other.to_string(),
                        },
                    }),
                }
            }
        }
    }

    fn claim_key(&self, workflow: &str, dedup_key_text: &str) -> Result<bool> {
        let claim = dedup_key(workflow, dedup_key_text);
        // The empty value marks a key seen without a run.
        let swapped =
            self.trees
                .dedup
                .compare_and_swap(&claim, None as Option<&[u8]>, Some(&b""[..]))?;
        if swapped.is_ok() {
            self.trees.claimed_at.insert(claim, &unix_seconds())?;
        }
        Ok(swapped.is_ok())
    }

    fn expire_claims(
        &self,
        workflow: &str,
        key_prefix: &str,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        let limit = older_than.timestamp().max(0) as u64;
        let prefix = dedup_key(workflow, key_prefix);
        let mut expired = 0;
        for entry in self.trees.claimed_at.scan_prefix(&prefix) {
            let (claim, at) = entry?;
            let at = at.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if at < limit {
                self.trees.dedup.remove(&claim)?;
                self.trees.claimed_at.remove(&claim)?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    fn save_run(&self, run: &Run) -> Result<()> {
        let header = header_bytes(run)?;
        let _serial = self.header_lock.lock().unwrap_or_else(|p| p.into_inner());
        run_index::write_header_direct(&self.trees.runs, &self.trees.index, run, &header)?;
        Ok(())
    }

    fn save_trigger(&self, run_id: &str, trigger: &TriggerEvent) -> Result<()> {
        self.trees.triggers.insert(
            run_id.as_bytes(),
            trigger_format::encode(trigger).map_err(StoreError::Encode)?,
        )?;
        Ok(())
    }

    fn save_step(&self, run_id: &str, step: &StepRecord) -> Result<()> {
        self.steps
            .insert(step_key(run_id, &step.path), encode(step)?)?;
        Ok(())
    }

    fn remove_steps(&self, run_id: &str, path_prefix: &str) -> Result<()> {
        let prefix = step_key(run_id, path_prefix);
        for entry in self.steps.scan_prefix(prefix.as_bytes()) {
            let (key, _) = entry?;
            self.steps.remove(key)?;
        }
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        match self.mode {
            CommitMode::Group => self.commit.sync().await,
            CommitMode::PerSync => {
                let durable = Arc::clone(&self.durable);
                tokio::task::spawn_blocking(move || durable.flush())
                    .await
                    .map_err(|_| StoreError::FlusherGone)??;
                Ok(())
            }
        }
    }

    async fn sync_within(&self, window: std::time::Duration) -> Result<()> {
        match self.mode {
            CommitMode::Group => self.commit.sync_within(window).await,
            CommitMode::PerSync => self.sync().await,
        }
    }

    fn load_run(&self, id: &str) -> Result<Option<Run>> {
        let Some(bytes) = self.trees.runs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut run: Run = decode(id.as_bytes(), &bytes)?;
        if let Some(trigger) = self.trees.triggers.get(id.as_bytes())? {
            run.trigger =
                trigger_format::decode(&trigger).map_err(|source| StoreError::Corrupt {
                    key: id.to_string(),
                    source,
                })?;
        }
        let prefix = format!("{id}/");
        for entry in self.steps.scan_prefix(prefix.as_bytes()) {
            let (key, bytes) = entry?;
            run.steps.push(decode(&key, &bytes)?);
        }
        Ok(Some(run))
    }

    fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let (lower, upper) = id_range(query);
        // NOTE: text search reads the trigger event of every run the other
        // filters let through, so a rare text in a long history is slow.
        let needle = query.text.as_deref().map(str::to_ascii_lowercase);
        let prefixes = match (&query.workflow, query.status) {
            (Some(workflow), Some(status)) => vec![run_index::prefix(workflow, status)],
            (Some(workflow), None) => {
                // The workflow key never changes, so a status change during
                // the listing cannot hide a run.
                let prefix = run_index::workflow_prefix(workflow);
                let range =
                    [prefix.as_slice(), &lower].concat()..[prefix.as_slice(), &upper].concat();
                let mut found = Vec::new();
                for entry in self.trees.by_workflow.range(range).rev() {
                    if found.len() >= query.limit {
                        break;
                    }
                    let (key, _) = entry?;
                    let run_id = run_index::run_id_of(&key);
                    if let Some(bytes) = self.trees.runs.get(run_id)? {
                        self.collect(run_id, &bytes, query, needle.as_deref(), &mut found)?;
                    }
                }
                return Ok(found);
            }
            (None, Some(status)) => run_index::workflows(&self.trees.index)?
                .iter()
                .map(|workflow| run_index::prefix(workflow, status))
                .collect(),
            (None, None) => Vec::new(),
        };
        let mut found = Vec::new();
        if prefixes.is_empty() {
            for entry in self.trees.runs.range(lower..upper).rev() {
                if found.len() >= query.limit {
                    break;
                }
                let (key, bytes) = entry?;
                self.collect(&key, &bytes, query, needle.as_deref(), &mut found)?;
            }
            return Ok(found);
        }
        // A run listed under two status keys comes once per key, one key
        // right after the other. The run is judged by its header at the
        // first key, so it is listed once.
        let mut previous: Option<IVec> = None;
        for key in run_index::NewestFirst::new(&self.trees.index, &prefixes, &lower, &upper)? {
            if found.len() >= query.limit {
                break;
            }
            let key = key?;
            let run_id = run_index::run_id_of(&key);
            if previous.as_deref().is_some_and(|id| id == run_id) {
                continue;
            }
            previous = Some(IVec::from(run_id));
            if let Some(bytes) = self.trees.runs.get(run_id)? {
                self.collect(run_id, &bytes, query, needle.as_deref(), &mut found)?;
            }
        }
        Ok(found)
    }

    // NOTE: checking each key reads one run header per counted run, so the
    // dashboard's 24-hour counts take longer the more runs a day has. The
    // cost is not measured.
    fn count_runs(&self, workflow: &str, status: RunStatus, since: DateTime<Utc>) -> Result<usize> {
        let prefix = run_index::prefix(workflow, status);
        let lower = [prefix.as_slice(), id_bound(since).as_bytes()].concat();
        let upper = [prefix.as_slice(), &[0xff]].concat();
        let mut count = 0;
        for entry in self.trees.index.range(lower..upper) {
            let (key, _) = entry?;
            if run_index::is_current(&self.trees.runs, &key)? {
                count += 1;
            }
        }
        Ok(count)
    }

    fn count_in_status(&self, status: RunStatus) -> Result<usize> {
        let mut count = 0;
        for workflow in run_index::workflows(&self.trees.index)? {
            for entry in self
                .trees
                .index
                .scan_prefix(run_index::prefix(&workflow, status))
            {
                let (key, _) = entry?;
                if run_index::is_current(&self.trees.runs, &key)? {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    fn delete_finished_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<usize> {
        let mut expired = Vec::new();
        for entry in self.trees.runs.range(..id_bound(cutoff).into_bytes()) {
            if expired.len() >= limit {
                break;
            }
            let (key, bytes) = entry?;
            let run: Run = decode(&key, &bytes)?;
            if run.status.is_terminal() {
                expired.push(run);
            }
        }
        for run in &expired {
            // Header, index keys and event go together and first, so no
            // error or crash leaves a run that an operator could retry
            // without its event. The journal follows, and a later pass
            // removes what a crash leaves of it.
            let trees = (
                &self.trees.runs,
                &self.trees.index,
                &self.trees.by_workflow,
                &self.trees.triggers,
            );
            let outcome = trees.transaction(|(runs, index, by_workflow, triggers)| {
                run_index::remove_header((runs, index, by_workflow), run)?;
                triggers.remove(run.id.as_bytes())?;
                Ok(())
            });
            transaction_result(outcome)?;
            self.remove_steps(&run.id, "")?;
        }
        if expired.is_empty() {
            self.remove_orphan_steps(cutoff)?;
        }
        Ok(expired.len())
    }

    fn kv_get(&self, key: &str) -> Result<Option<Value>> {
        match self.kv.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(decode(key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }

    fn kv_list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>> {
        let start = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                Bound::Excluded(after.as_bytes().to_vec())
            }
            _ => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut entries = Vec::new();
        for entry in self.kv.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, bytes) = entry?;
            if !key.starts_with(prefix.as_bytes()) || entries.len() >= limit {
                break;
            }
            let value = decode(&key, &bytes)?;
            entries.push((String::from_utf8_lossy(&key).into_owned(), value));
        }
        Ok(entries)
    }

    fn kv_write(&self, key: &str, write: KvWrite, idempotency_key: &str) -> Result<Value> {
        let outcome = (&self.kv, &self.kv_applied).transaction(|(kv, applied)| {
            if let Some(first) = applied.get(idempotency_key.as_bytes())? {
                let first = serde_json::from_slice(&first).unwrap_or(Value::Null);
                return Ok(first);
            }
            let current = kv
                .get(key.as_bytes())?
                .map(|bytes| serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null));
            let (next, result) = apply_kv(key, current, &write)
                .map_err(|message| ConflictableTransactionError::Abort(StoreError::Kv(message)))?;
            match next {
                Some(value) => {
                    let bytes = serde_json::to_vec(&value).unwrap_or_default();
                    kv.insert(key.as_bytes(), bytes)?;
                }
                None => {
                    kv.remove(key.as_bytes())?;
                }
            }
            let bytes = serde_json::to_vec(&result).unwrap_or_default();
            applied.insert(idempotency_key.as_bytes(), bytes)?;
            Ok(result)
        });
        match outcome {
            Ok(result) => Ok(result),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }

    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.get(key.as_bytes())?.map(|value| value.to_vec()))
    }

    fn put_state(&self, key: &str, value: &[u8]) -> Result<()> {
        self.state.insert(key.as_bytes(), value)?;
        Ok(())
    }

    fn unfinished_runs(&self) -> Result<Vec<Run>> {
        // A crash between adding a run's new status key and removing the
        // old one leaves it under two statuses, and the header alone is
        // the truth: each run is listed once, and only while unfinished.
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for prefix in run_index::unfinished_prefixes(&self.trees.index)? {
            for entry in self.trees.index.scan_prefix(prefix) {
                let (key, _) = entry?;
                let run_id = run_index::run_id_of(&key);
                if !seen.insert(run_id.to_vec()) {
                    continue;
                }
                if let Some(bytes) = self.trees.runs.get(run_id)? {
                    let run = decode::<Run>(run_id, &bytes)?;
                    if !run.status.is_terminal() {
                        found.push(run);
                    }
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}
