//! The embedded store: sled files under the data directory.
//!
//! Trees: `runs` maps a run id to its header as JSON; `triggers` maps it to
//! the event that started it, written once; `steps` maps
//! `<run id>/<step path, numbers zero-padded>` to a step record; `dedup` maps
//! `<workflow>\0<deduplication key>` to the id of the run it started;
//! `state` holds small named values of the engine; `kv` holds the `kv`
//! connector's values and `kv_applied` the result of each write by its
//! idempotency key. Run ids
//! are time-ordered, so the `runs` tree iterates oldest to newest.

use std::path::Path;

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::commit::GroupCommit;
use super::{Inserted, KvWrite, Result, RunQuery, Store, StoreError};
use crate::engine::run::{Run, StepRecord, TriggerEvent, path_sort_key};
use serde_json::{Value, json};

/// How writers wait for their writes to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Concurrent writers share one flush (the default).
    #[default]
    Group,
    /// Every sync flushes on its own; kept to measure what grouping saves.
    PerSync,
}

pub struct SledStore {
    db: sled::Db,
    mode: CommitMode,
    runs: sled::Tree,
    triggers: sled::Tree,
    steps: sled::Tree,
    dedup: sled::Tree,
    /// When each deduplication key was claimed: 8 bytes, Unix seconds.
    claimed_at: sled::Tree,
    state: sled::Tree,
    kv: sled::Tree,
    kv_applied: sled::Tree,
    commit: GroupCommit,
}

impl SledStore {
    /// Opens or creates the store in `dir`. Fails when another process holds
    /// the directory.
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
        let commit = GroupCommit::start(db.clone());
        Ok(SledStore {
            db,
            mode,
            runs,
            triggers,
            steps,
            dedup,
            claimed_at,
            state,
            kv,
            kv_applied,
            commit,
        })
    }

    /// Flushes without going through the group-commit thread, for shutdown.
    pub fn flush_now(&self) -> Result<()> {
        self.db.flush()?;
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
        let header = header_bytes(run)?;
        let trigger = encode(&run.trigger)?;
        let inserted = match dedup {
            None => {
                self.triggers.insert(run.id.as_bytes(), trigger)?;
                self.runs.insert(run.id.as_bytes(), header)?;
                Inserted::New
            }
            Some(key) => {
                let claim = dedup_key(&run.workflow, key);
                let now = unix_seconds();
                let trees = (&self.runs, &self.triggers, &self.dedup, &self.claimed_at);
                let outcome = trees.transaction(|(runs, triggers, dedup, claimed_at)| {
                    if let Some(first) = dedup.get(&claim)? {
                        let first = String::from_utf8_lossy(&first).into_owned();
                        return Ok(Inserted::Duplicate(first));
                    }
                    dedup.insert(claim.as_slice(), run.id.as_bytes())?;
                    claimed_at.insert(claim.as_slice(), &now)?;
                    triggers.insert(run.id.as_bytes(), trigger.as_slice())?;
                    runs.insert(run.id.as_bytes(), header.as_slice())?;
                    Ok::<_, ConflictableTransactionError<StoreError>>(Inserted::New)
                });
                match outcome {
                    Ok(inserted) => inserted,
                    Err(TransactionError::Abort(error)) => return Err(error),
                    Err(TransactionError::Storage(error)) => return Err(error.into()),
                }
            }
        };
        // A duplicate waits too: the first copy may not be on disk yet, and
        // answering before it is could lose an event the sender saw
        // acknowledged.
        self.sync().await?;
        Ok(inserted)
    }

    fn claim_key(&self, workflow: &str, dedup_key_text: &str) -> Result<bool> {
        let claim = dedup_key(workflow, dedup_key_text);
        // The empty value marks a key seen without a run.
        let swapped = self
            .dedup
            .compare_and_swap(&claim, None as Option<&[u8]>, Some(&b""[..]))?;
        if swapped.is_ok() {
            self.claimed_at.insert(claim, &unix_seconds())?;
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
        for entry in self.claimed_at.scan_prefix(&prefix) {
            let (claim, at) = entry?;
            let at = at.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if at < limit {
                self.dedup.remove(&claim)?;
                self.claimed_at.remove(&claim)?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    fn save_run(&self, run: &Run) -> Result<()> {
        self.runs.insert(run.id.as_bytes(), header_bytes(run)?)?;
        Ok(())
    }

    fn save_trigger(&self, run_id: &str, trigger: &TriggerEvent) -> Result<()> {
        self.triggers.insert(run_id.as_bytes(), encode(trigger)?)?;
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
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || db.flush())
                    .await
                    .map_err(|_| StoreError::FlusherGone)??;
                Ok(())
            }
        }
    }

    fn load_run(&self, id: &str) -> Result<Option<Run>> {
        let Some(bytes) = self.runs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut run: Run = decode(id.as_bytes(), &bytes)?;
        if let Some(trigger) = self.triggers.get(id.as_bytes())? {
            run.trigger = decode(id.as_bytes(), &trigger)?;
        }
        let prefix = format!("{id}/");
        for entry in self.steps.scan_prefix(prefix.as_bytes()) {
            let (key, bytes) = entry?;
            run.steps.push(decode(&key, &bytes)?);
        }
        Ok(Some(run))
    }

    // TODO: filtering scans headers newest first; an index by workflow and
    // status keeps this fast once history holds millions of runs.
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let entries = match &query.before {
            Some(before) => self.runs.range(..before.as_bytes().to_vec()),
            None => self.runs.iter(),
        };
        let mut found = Vec::new();
        for entry in entries.rev() {
            if found.len() >= query.limit {
                break;
            }
            let (key, bytes) = entry?;
            let run: Run = decode(&key, &bytes)?;
            let workflow_matches = query.workflow.as_deref().is_none_or(|w| w == run.workflow);
            let status_matches = query.status.is_none_or(|s| s == run.status);
            if workflow_matches && status_matches {
                found.push(run);
            }
        }
        Ok(found)
    }

    fn kv_get(&self, key: &str) -> Result<Option<Value>> {
        match self.kv.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(decode(key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
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
        let mut found = Vec::new();
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            let run: Run = decode(&key, &bytes)?;
            if !run.status.is_terminal() {
                found.push(run);
            }
        }
        Ok(found)
    }
}
