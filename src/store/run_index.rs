//! The `run_status` tree: one key per run, `<workflow>\0<status>\0<run id>`
//! with no value, so the store lists runs by status, or by workflow and
//! status, without reading every run header. Run ids are time-ordered, so
//! within one workflow and status the keys sort oldest to newest. A listing
//! by status alone merges that status's range of every workflow.
//!
//! The `run_workflow` tree keeps `<workflow>\0<run id>` for every run. It
//! never changes with the status, so a listing by workflow alone reads it:
//! merging status ranges could miss a run whose status changes during the
//! listing, because sled iterators are not snapshots.
//!
//! A status change writes the new key before the header and removes the
//! old key after it, without a transaction. After a crash a run can keep a
//! stale key, so readers check the header, and the store removes stale keys
//! of unfinished statuses when it opens.

use serde::Deserialize;
use sled::IVec;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Result, StoreError};
use crate::engine::run::{Run, RunStatus};

/// State key recording that the index covers every stored run.
pub(super) const BUILT_MARKER: &str = "run-index/v3";

/// The tree of an earlier layout with three keys per run, dropped once the
/// current index is built.
pub(super) const FORMER_TREE: &str = "run_index";

const SEPARATOR: u8 = 0;

/// The part of a stored header the index needs.
#[derive(Deserialize)]
struct HeaderKeys {
    workflow: String,
    status: RunStatus,
}

/// Returns the key prefix for runs of `workflow` with `status`.
pub(super) fn prefix(workflow: &str, status: RunStatus) -> Vec<u8> {
    let mut key = Vec::with_capacity(workflow.len() + 12);
    key.extend_from_slice(workflow.as_bytes());
    key.push(SEPARATOR);
    key.extend_from_slice(status.as_str().as_bytes());
    key.push(SEPARATOR);
    key
}

/// Returns the index key of a run.
pub(super) fn key(run_id: &str, workflow: &str, status: RunStatus) -> Vec<u8> {
    let mut key = prefix(workflow, status);
    key.extend_from_slice(run_id.as_bytes());
    key
}

/// Returns the key prefix of `workflow`'s runs in the `run_workflow` tree.
pub(super) fn workflow_prefix(workflow: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(workflow.len() + 40);
    key.extend_from_slice(workflow.as_bytes());
    key.push(SEPARATOR);
    key
}

/// Returns the key of a run in the `run_workflow` tree,
/// `<workflow>\0<run id>`.
pub(super) fn workflow_key(run_id: &str, workflow: &str) -> Vec<u8> {
    let mut key = workflow_prefix(workflow);
    key.extend_from_slice(run_id.as_bytes());
    key
}

/// Returns the key prefixes of every workflow's unfinished statuses.
pub(super) fn unfinished_prefixes(index: &sled::Tree) -> Result<Vec<Vec<u8>>> {
    let workflows = workflows(index)?;
    let unfinished = RunStatus::ALL.into_iter().filter(|s| !s.is_terminal());
    Ok(unfinished
        .flat_map(|status| workflows.iter().map(move |w| prefix(w, status)))
        .collect())
}

/// Returns the run id at the end of an index key.
pub(super) fn run_id_of(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|byte| *byte == SEPARATOR) {
        Some(position) => &key[position + 1..],
        None => key,
    }
}

/// Lists the workflows that have at least one run, by jumping from one
/// workflow's keys to the next: one lookup per workflow.
pub(super) fn workflows(index: &sled::Tree) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut from = Vec::new();
    while let Some((key, _)) = index.range(from.as_slice()..).next().transpose()? {
        let end = key
            .iter()
            .position(|byte| *byte == SEPARATOR)
            .unwrap_or(key.len());
        found.push(String::from_utf8_lossy(&key[..end]).into_owned());
        // Every key of this workflow sorts below `<workflow>\x01`.
        from = key[..end].to_vec();
        from.push(SEPARATOR + 1);
    }
    Ok(found)
}

/// The index keys under each of `prefixes` whose run ids lie in
/// `lower..upper`, merged newest first. A run listed under two prefixes
/// (a stale key after a crash, or a status change during the listing)
/// comes once per key, and its keys come one after the other.
pub(super) struct NewestFirst {
    ranges: Vec<std::iter::Rev<sled::Iter>>,
    /// The next key of each range, read ahead.
    heads: Vec<Option<IVec>>,
}

impl NewestFirst {
    pub(super) fn new(
        index: &sled::Tree,
        prefixes: &[Vec<u8>],
        lower: &[u8],
        upper: &[u8],
    ) -> Result<Self> {
        let mut ranges = Vec::with_capacity(prefixes.len());
        let mut heads = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let range = [prefix.as_slice(), lower].concat()..[prefix.as_slice(), upper].concat();
            let mut range = index.range(range).rev();
            heads.push(range.next().transpose()?.map(|(key, _)| key));
            ranges.push(range);
        }
        Ok(NewestFirst { ranges, heads })
    }
}

impl Iterator for NewestFirst {
    type Item = Result<IVec>;

    fn next(&mut self) -> Option<Result<IVec>> {
        let newest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(position, head)| Some((position, head.as_ref()?)))
            .max_by(|(_, a), (_, b)| run_id_of(a).cmp(run_id_of(b)))?
            .0;
        let key = self.heads[newest].take()?;
        match self.ranges[newest].next().transpose() {
            Ok(next) => self.heads[newest] = next.map(|(key, _)| key),
            Err(error) => return Some(Err(error.into())),
        }
        Some(Ok(key))
    }
}

/// Writes the header and index keys of a run stored for the first time,
/// inside a transaction over the `runs`, `run_status` and `run_workflow`
/// trees.
pub(super) fn write_new(
    (runs, index, by_workflow): (&TransactionalTree, &TransactionalTree, &TransactionalTree),
    (run_id, workflow, status): (&str, &str, RunStatus),
    header: &[u8],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    index.insert(key(run_id, workflow, status), &[])?;
    by_workflow.insert(workflow_key(run_id, workflow), &[])?;
    runs.insert(run_id.as_bytes(), header)?;
    Ok(())
}

/// Writes `run`'s header and index key without a transaction, which costs
/// far less under many concurrent writers. The new key goes in before the
/// header and the old one comes out after it, so a crash in between leaves
/// at most a stale key. Listing checks each run's status against its
/// header, and resuming lists each run once and skips runs that have ended.
/// Callers serialize writes of one run (the store holds a lock around this).
pub(super) fn write_header_direct(
    runs: &sled::Tree,
    index: &sled::Tree,
    run: &Run,
    header: &[u8],
) -> sled::Result<()> {
    let previous = runs
        .get(run.id.as_bytes())?
        .and_then(|old| serde_json::from_slice::<HeaderKeys>(&old).ok())
        .map(|old| old.status);
    if previous != Some(run.status) {
        index.insert(key(&run.id, &run.workflow, run.status), &[])?;
    }
    runs.insert(run.id.as_bytes(), header)?;
    if let Some(old_status) = previous.filter(|old| *old != run.status) {
        index.remove(key(&run.id, &run.workflow, old_status))?;
    }
    Ok(())
}

/// Returns whether the index key `key` names its run's current status. A
/// key whose run has no header, or whose header has another status, was
/// left by a crash.
pub(super) fn is_current(runs: &sled::Tree, key: &[u8]) -> Result<bool> {
    let run_id = run_id_of(key);
    let Some(bytes) = runs.get(run_id)? else {
        return Ok(false);
    };
    let header = header_keys(run_id, &bytes)?;
    let run_id = String::from_utf8_lossy(run_id);
    Ok(self::key(&run_id, &header.workflow, header.status) == key)
}

/// Removes `run`'s header, its workflow key and its status key under every
/// status, inside a transaction over the `runs`, `run_status` and
/// `run_workflow` trees. A stale key left by a crash goes with the run.
pub(super) fn remove_header(
    (runs, index, by_workflow): (&TransactionalTree, &TransactionalTree, &TransactionalTree),
    run: &Run,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    runs.remove(run.id.as_bytes())?;
    by_workflow.remove(workflow_key(&run.id, &run.workflow))?;
    for status in RunStatus::ALL {
        index.remove(key(&run.id, &run.workflow, status))?;
    }
    Ok(())
}

/// Deletes index keys of unfinished statuses that name a status their run
/// no longer has. A crash between adding a run's new status key and
/// removing the old one leaves such a key, and the gauges of unfinished
/// runs would count it forever. Returns how many were deleted.
pub(super) fn remove_stale(runs: &sled::Tree, index: &sled::Tree) -> Result<usize> {
    let mut removed = 0;
    for prefix in unfinished_prefixes(index)? {
        for entry in index.scan_prefix(prefix) {
            let (key, _) = entry?;
            if !is_current(runs, &key)? {
                index.remove(&key)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn header_keys(run_id: &[u8], header: &[u8]) -> Result<HeaderKeys> {
    serde_json::from_slice(header).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(run_id).into_owned(),
        source,
    })
}

/// Adds the index keys of every stored run, in `run_status` and
/// `run_workflow`, for a store written before these trees existed. Safe to
/// repeat: it only inserts keys.
pub(super) fn build(
    runs: &sled::Tree,
    index: &sled::Tree,
    by_workflow: &sled::Tree,
) -> Result<usize> {
    let mut count = 0;
    for entry in runs.iter() {
        let (run_id, bytes) = entry?;
        let header = header_keys(&run_id, &bytes)?;
        let run_id = String::from_utf8_lossy(&run_id);
        index.insert(key(&run_id, &header.workflow, header.status), &[])?;
        by_workflow.insert(workflow_key(&run_id, &header.workflow), &[])?;
        count += 1;
    }
    Ok(count)
}
