//! The `run_index` tree: secondary keys that let the store list runs by
//! status, by workflow, or by both, without reading every run header.
//!
//! Keys are fields joined by a NUL byte, with no value:
//! `s\0<status>\0<run id>`, `w\0<workflow>\0<run id>` and
//! `ws\0<workflow>\0<status>\0<run id>`. Run ids are time-ordered, so
//! within one prefix the keys sort oldest to newest. A run stored with a
//! deduplication key gets its keys in the transaction that claims the key.
//! Other writes put them next to the header, so after a crash a run can keep
//! a stale status key. Readers therefore check the header.

use serde::Deserialize;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Result, StoreError};
use crate::engine::run::{Run, RunStatus};

/// State key recording that the index covers every stored run.
pub(super) const BUILT_MARKER: &str = "run-index/v1";

const SEPARATOR: u8 = 0;

/// The part of a stored header the index needs.
#[derive(Deserialize)]
struct HeaderStatus {
    status: RunStatus,
}

/// Returns the key prefix for runs with `status`, of `workflow` when given.
pub(super) fn status_prefix(workflow: Option<&str>, status: RunStatus) -> Vec<u8> {
    match workflow {
        Some(workflow) => join(&["ws", workflow, status.as_str(), ""]),
        None => join(&["s", status.as_str(), ""]),
    }
}

/// Returns the key prefix for every run of `workflow`.
pub(super) fn workflow_prefix(workflow: &str) -> Vec<u8> {
    join(&["w", workflow, ""])
}

fn join(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::new();
    for (position, part) in parts.iter().enumerate() {
        if position > 0 {
            key.push(SEPARATOR);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

fn status_keys(run_id: &str, workflow: &str, status: RunStatus) -> [Vec<u8>; 2] {
    let with_id = |mut prefix: Vec<u8>| {
        prefix.extend_from_slice(run_id.as_bytes());
        prefix
    };
    [
        with_id(status_prefix(None, status)),
        with_id(status_prefix(Some(workflow), status)),
    ]
}

/// Writes `run`'s header and brings its index keys up to date, inside a
/// transaction over the `runs` and `run_index` trees. The previous status
/// is read from the stored header, so callers need not know it.
pub(super) fn write_header(
    runs: &TransactionalTree,
    index: &TransactionalTree,
    run: &Run,
    header: &[u8],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    let previous = match runs.insert(run.id.as_bytes(), header)? {
        None => None,
        Some(old) => match serde_json::from_slice::<HeaderStatus>(&old) {
            Ok(old) => Some(old.status),
            // An unreadable old header leaves its status keys behind. They
            // are harmless, because listing checks each run's status again.
            Err(_) => None,
        },
    };
    if previous == Some(run.status) {
        return Ok(());
    }
    if let Some(old_status) = previous {
        for key in status_keys(&run.id, &run.workflow, old_status) {
            index.remove(key)?;
        }
    } else {
        let mut key = workflow_prefix(&run.workflow);
        key.extend_from_slice(run.id.as_bytes());
        index.insert(key, &[])?;
    }
    for key in status_keys(&run.id, &run.workflow, run.status) {
        index.insert(key, &[])?;
    }
    Ok(())
}

/// Writes `run`'s header and index keys without a transaction, which costs
/// far less under many concurrent writers. New keys go in before the header
/// and old ones come out after it, so a crash in between leaves at most
/// stale keys: listing checks each run's status against its header, and
/// resuming lists each run once and skips runs that have ended. Callers
/// serialize writes of one run (the store holds a lock around this).
pub(super) fn write_header_direct(
    runs: &sled::Tree,
    index: &sled::Tree,
    run: &Run,
    header: &[u8],
) -> sled::Result<()> {
    let previous = runs
        .get(run.id.as_bytes())?
        .and_then(|old| serde_json::from_slice::<HeaderStatus>(&old).ok())
        .map(|old| old.status);
    if previous == Some(run.status) {
        runs.insert(run.id.as_bytes(), header)?;
        return Ok(());
    }
    if previous.is_none() {
        let mut key = workflow_prefix(&run.workflow);
        key.extend_from_slice(run.id.as_bytes());
        index.insert(key, &[])?;
    }
    for key in status_keys(&run.id, &run.workflow, run.status) {
        index.insert(key, &[])?;
    }
    runs.insert(run.id.as_bytes(), header)?;
    if let Some(old_status) = previous {
        for key in status_keys(&run.id, &run.workflow, old_status) {
            index.remove(key)?;
        }
    }
    Ok(())
}

/// Removes `run`'s header and index keys, inside a transaction over the
/// `runs` and `run_index` trees.
pub(super) fn remove_header(
    runs: &TransactionalTree,
    index: &TransactionalTree,
    run: &Run,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    runs.remove(run.id.as_bytes())?;
    let mut workflow_key = workflow_prefix(&run.workflow);
    workflow_key.extend_from_slice(run.id.as_bytes());
    index.remove(workflow_key)?;
    for key in status_keys(&run.id, &run.workflow, run.status) {
        index.remove(key)?;
    }
    Ok(())
}

/// Adds the index keys of every stored run, for a store written before the
/// index existed. Safe to repeat: it only inserts keys.
pub(super) fn build(runs: &sled::Tree, index: &sled::Tree) -> Result<usize> {
    let mut count = 0;
    for entry in runs.iter() {
        let (key, bytes) = entry?;
        let header: HeaderStatus =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                source,
            })?;
        let workflow = workflow_of(&bytes, &key)?;
        let run_id = String::from_utf8_lossy(&key).into_owned();
        let mut workflow_key = workflow_prefix(&workflow);
        workflow_key.extend_from_slice(&key);
        index.insert(workflow_key, &[])?;
        for status_key in status_keys(&run_id, &workflow, header.status) {
            index.insert(status_key, &[])?;
        }
        count += 1;
    }
    Ok(count)
}

fn workflow_of(bytes: &[u8], key: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct HeaderWorkflow {
        workflow: String,
    }
    serde_json::from_slice::<HeaderWorkflow>(bytes)
        .map(|header| header.workflow)
        .map_err(|source| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
}

/// Returns the run id at the end of an index key.
pub(super) fn run_id_of(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|byte| *byte == SEPARATOR) {
        Some(position) => &key[position + 1..],
        None => key,
    }
}
