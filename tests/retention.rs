//! Retention: finished runs past the retention period are deleted with
//! their journal and index keys; unfinished and recent runs stay.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use tether::engine::run::{Run, RunStatus, StepRecord, TriggerEvent};
use tether::store::{RunQuery, Store};

/// Creates a run of `place` with `status`, dated `days_ago` days back.
fn run_created(days_ago: i64, status: RunStatus) -> Run {
    let created = Utc::now() - chrono::Duration::days(days_ago);
    let millis = u64::try_from(created.timestamp_millis()).expect("a time after 1970");
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from(millis % 1000).expect("below 1000") * 1_000_000,
    );
    let mut run = Run::new(
        "place",
        TriggerEvent::manual(serde_json::json!({ "id": 1 })),
    );
    run.id = uuid::Uuid::new_v7(timestamp).to_string();
    run.created_at = created;
    run.status = status;
    run
}

fn failed_ids(store: &dyn Store) -> Vec<String> {
    let query = RunQuery {
        status: Some(RunStatus::Failed),
        limit: 100,
        ..RunQuery::default()
    };
    let runs = store.list_runs(&query).expect("listing runs");
    runs.into_iter().map(|run| run.id).collect()
}

#[tokio::test]
async fn old_finished_runs_are_deleted() {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let store = server.engine.store();
    let old_failed = run_created(40, RunStatus::Failed);
    let old_waiting = run_created(40, RunStatus::Waiting);
    let recent_failed = run_created(2, RunStatus::Failed);
    for run in [&old_failed, &old_waiting, &recent_failed] {
        store.insert_run(run, None).await.expect("inserting a run");
        store
            .save_step(&run.id, &StepRecord::new(0, "place", "steps[0]"))
            .expect("saving a step");
    }

    let retain = Duration::from_secs(30 * 24 * 3600);
    let deleted = tether::engine::retention::run_pass(&server.engine, retain).await;

    assert_eq!(deleted, 1);
    assert!(store.load_run(&old_failed.id).expect("loading").is_none());
    assert!(store.load_run(&old_waiting.id).expect("loading").is_some());
    let recent = store.load_run(&recent_failed.id).expect("loading");
    assert_eq!(recent.map(|run| run.steps.len()), Some(1));
    assert_eq!(failed_ids(store.as_ref()), vec![recent_failed.id.clone()]);
    let since = Utc::now() - chrono::Duration::days(365);
    let counted = store.count_runs("place", RunStatus::Failed, since);
    assert_eq!(counted.expect("counting"), 1);
}

#[tokio::test]
async fn deletion_runs_in_batches() {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let store = server.engine.store();
    for _ in 0..5 {
        let run = run_created(40, RunStatus::Succeeded);
        store.insert_run(&run, None).await.expect("inserting a run");
    }
    let cutoff = Utc::now() - chrono::Duration::days(30);

    let first = store.delete_finished_before(cutoff, 2).expect("deleting");
    let second = store.delete_finished_before(cutoff, 2).expect("deleting");
    let third = store.delete_finished_before(cutoff, 2).expect("deleting");
    let fourth = store.delete_finished_before(cutoff, 2).expect("deleting");

    assert_eq!((first, second, third, fourth), (2, 2, 1, 0));
}

#[tokio::test]
async fn journal_left_by_crash_is_removed() {
    let data = tempfile::TempDir::new().expect("data directory");
    let orphan = run_created(40, RunStatus::Succeeded);
    let waiting = run_created(40, RunStatus::Waiting);
    let step = |id: &str| format!("{id}/steps[00000000]");
    {
        // What a crash during a deletion leaves: the journal of a run
        // whose header and event are gone.
        let db = sled::open(data.path()).expect("opening sled");
        let steps = db.open_tree("steps").expect("steps tree");
        steps
            .insert(step(&orphan.id), b"{}".as_slice())
            .expect("orphan step");
        db.flush().expect("flushing");
    }
    let store = open_when_released(data.path());
    store.insert_run(&waiting, None).await.expect("inserting");
    let mut record = StepRecord::new(0, "wait", "steps[0]");
    record.output = Some(serde_json::json!({ "kept": true }));
    store
        .save_step(&waiting.id, &record)
        .expect("saving a step");

    let cutoff = Utc::now() - chrono::Duration::days(30);
    let deleted = store.delete_finished_before(cutoff, 10).expect("deleting");
    store.flush_now().expect("flushing");

    let copy = tempfile::TempDir::new().expect("copy directory");
    copy_data_dir(data.path(), copy.path());
    let db = sled::open(copy.path()).expect("opening the copy");
    let steps = db.open_tree("steps").expect("steps tree");
    assert_eq!(deleted, 0, "no run had a header to delete");
    assert!(
        steps.get(step(&orphan.id)).expect("reading").is_none(),
        "the orphan journal entry is gone"
    );
    assert!(
        steps.get(step(&waiting.id)).expect("reading").is_some(),
        "the waiting run keeps its journal"
    );
}

/// Opens the store once sled's background thread of the database opened
/// before has let go of the directory's lock.
fn open_when_released(path: &std::path::Path) -> tether::store::SledStore {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tether::store::SledStore::open(path) {
            Ok(store) => return store,
            Err(error) if std::time::Instant::now() > deadline => {
                panic!("opening the store failed: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
