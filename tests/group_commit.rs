//! Group commit on real sled files. A flush requested within a window waits
//! for that window when nothing else needs a flush, and it ends with an
//! urgent flush when one comes. What it covers is on disk afterwards. A
//! caller waiting for a run that has already ended gets the run back only once
//! the end is on disk.

mod common;

use std::time::{Duration, Instant};

use common::copy_data_dir;
use serde_json::json;
use tempfile::TempDir;
use tether::engine::run::{Run, RunStatus, TriggerEvent};
use tether::store::{SledStore, Store};

fn run(order: &str) -> Run {
    Run::new("orders", TriggerEvent::manual(json!({ "order": order })))
}

#[tokio::test]
async fn windowed_flush_alone_waits_for_window() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");

    let started = Instant::now();
    store
        .sync_within(Duration::from_millis(300))
        .await
        .expect("flush");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "the flush came after {waited:?}, before its window closed"
    );
    assert!(
        waited < Duration::from_secs(10),
        "the flush came only after {waited:?}"
    );
}

#[tokio::test]
async fn windowed_flush_ends_with_urgent_flush() {
    let data = TempDir::new().expect("data directory");
    let store = std::sync::Arc::new(SledStore::open(data.path()).expect("opening the store"));

    let started = Instant::now();
    let windowed = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move { store.sync_within(Duration::from_secs(60)).await })
    };
    // Let the windowed request reach the flush thread first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.sync().await.expect("urgent flush");
    tokio::time::timeout(Duration::from_secs(20), windowed)
        .await
        .expect("the windowed flush ended with the urgent one, not after its 60 s window")
        .expect("task")
        .expect("windowed flush");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn windowed_flush_puts_header_on_disk() {
    let data = TempDir::new().expect("data directory");
    let mut finished = run("1001");
    {
        let store = SledStore::open(data.path()).expect("opening the store");
        store.insert_run(&finished, None).await.expect("insert");
        finished.status = RunStatus::Succeeded;
        store.save_run(&finished).expect("saving the header");
        store
            .sync_within(Duration::from_millis(20))
            .await
            .expect("flush");
        // The store is leaked, so nothing flushes on drop and only the
        // windowed flush can have put the header on disk.
        std::mem::forget(store);
    }
    let copy = TempDir::new().expect("copy directory");
    copy_data_dir(data.path(), copy.path());
    let reopened = SledStore::open(copy.path()).expect("reopening the copy");
    let stored = reopened
        .load_run(&finished.id)
        .expect("load")
        .expect("the run is on disk");
    assert_eq!(stored.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn waiting_for_ended_run_flushes_its_end() {
    let project = common::Project::bundled();
    project.add_workflow(
        "note.yaml",
        "name: note\ntrigger: manual\nsteps:\n  - id: note\n    script: '#{ noted: true }'\n",
    );
    let data = TempDir::new().expect("data directory");
    let engine = tether::app::open(
        project.path(),
        data.path(),
        &tether::workflow::Env::default(),
    )
    .expect("opening the engine");
    // A run of script steps saves its end without requesting a flush.
    let ended = engine
        .run_now("note", TriggerEvent::manual(json!({})))
        .await
        .expect("running");
    assert_eq!(ended.status, RunStatus::Succeeded);

    let answered = engine
        .wait_for_end(&ended.id, Duration::from_secs(10))
        .await
        .expect("waiting")
        .expect("the run has ended");
    let copy = TempDir::new().expect("copy directory");
    copy_data_dir(data.path(), copy.path());

    assert_eq!(answered.status, RunStatus::Succeeded);
    let reopened = SledStore::open(copy.path()).expect("reopening the copy");
    let stored = reopened
        .load_run(&ended.id)
        .expect("load")
        .expect("the run is on disk");
    assert_eq!(
        stored.status,
        RunStatus::Succeeded,
        "the run was returned before its end was on disk"
    );
}
