//! The store's run index on real sled files: status changes move a run
//! between status lists, and a store written before the index gets one.

use chrono::{Duration, Utc};
use tempfile::TempDir;
use tether::engine::run::{Run, RunStatus, TriggerEvent};
use tether::store::{RunQuery, SledStore, Store};

fn run_of(workflow: &str) -> Run {
    Run::new(workflow, TriggerEvent::manual(serde_json::json!({})))
}

fn ids(store: &SledStore, workflow: Option<&str>, status: Option<RunStatus>) -> Vec<String> {
    let query = RunQuery {
        workflow: workflow.map(str::to_string),
        status,
        limit: 1000,
        ..RunQuery::default()
    };
    let runs = store.list_runs(&query).expect("listing runs");
    runs.into_iter().map(|run| run.id).collect()
}

#[tokio::test]
async fn status_change_moves_index_entry() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");
    let mut run = run_of("place");
    store.insert_run(&run, None).await.expect("inserting");

    run.status = RunStatus::Failed;
    store.save_run(&run).expect("saving");

    assert!(ids(&store, None, Some(RunStatus::Queued)).is_empty());
    assert_eq!(
        ids(&store, None, Some(RunStatus::Failed)),
        vec![run.id.clone()]
    );
    let by_both = ids(&store, Some("place"), Some(RunStatus::Failed));
    assert_eq!(by_both, vec![run.id.clone()]);
    assert!(ids(&store, Some("other"), Some(RunStatus::Failed)).is_empty());
    assert_eq!(ids(&store, Some("place"), None), vec![run.id.clone()]);
}

#[tokio::test]
async fn index_lists_newest_first_with_cursor() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");
    let mut inserted = Vec::new();
    for _ in 0..5 {
        let mut run = run_of("place");
        run.status = RunStatus::Succeeded;
        store.insert_run(&run, None).await.expect("inserting");
        inserted.push(run.id);
    }

    let query = RunQuery {
        status: Some(RunStatus::Succeeded),
        before: Some(inserted[3].clone()),
        limit: 2,
        ..RunQuery::default()
    };
    let page: Vec<String> = store
        .list_runs(&query)
        .expect("listing")
        .into_iter()
        .map(|run| run.id)
        .collect();

    assert_eq!(page, vec![inserted[2].clone(), inserted[1].clone()]);
}

#[tokio::test]
async fn count_runs_honours_since() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");
    for status in [
        RunStatus::Succeeded,
        RunStatus::Succeeded,
        RunStatus::Failed,
    ] {
        let mut run = run_of("place");
        run.status = status;
        store.insert_run(&run, None).await.expect("inserting");
    }
    let hour_ago = Utc::now() - Duration::hours(1);
    let in_an_hour = Utc::now() + Duration::hours(1);

    let succeeded = store.count_runs("place", RunStatus::Succeeded, hour_ago);
    let failed = store.count_runs("place", RunStatus::Failed, hour_ago);
    let later = store.count_runs("place", RunStatus::Succeeded, in_an_hour);

    assert_eq!(succeeded.expect("counting"), 2);
    assert_eq!(failed.expect("counting"), 1);
    assert_eq!(later.expect("counting"), 0);
}

#[tokio::test]
async fn unfinished_runs_come_from_index() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");
    let queued = run_of("place");
    let mut finished = run_of("place");
    finished.status = RunStatus::Succeeded;
    let mut waiting = run_of("place");
    waiting.status = RunStatus::Waiting;
    for run in [&queued, &finished, &waiting] {
        store.insert_run(run, None).await.expect("inserting");
    }

    let unfinished: Vec<String> = store
        .unfinished_runs()
        .expect("listing unfinished runs")
        .into_iter()
        .map(|run| run.id)
        .collect();

    assert_eq!(unfinished, vec![queued.id, waiting.id]);
}

#[test]
fn old_store_gets_index_on_open() {
    let dir = TempDir::new().expect("temporary directory");
    let mut run = run_of("place");
    run.status = RunStatus::Failed;
    {
        let db = sled::open(dir.path()).expect("opening sled");
        let runs = db.open_tree("runs").expect("runs tree");
        let header = run.header_json().expect("encoding the header");
        runs.insert(run.id.as_bytes(), header)
            .expect("writing a header");
        // The earlier index layout, with three keys per run.
        let former = db.open_tree("run_index").expect("former index tree");
        let key = [b"s\0failed\0".as_slice(), run.id.as_bytes()].concat();
        former.insert(key, b"".as_slice()).expect("writing a key");
        db.flush().expect("flushing");
    }

    let store = SledStore::open(dir.path()).expect("opening the store");

    assert_eq!(
        ids(&store, None, Some(RunStatus::Failed)),
        vec![run.id.clone()]
    );
    assert_eq!(ids(&store, Some("place"), None), vec![run.id]);
    drop(store);
    let db = open_when_released(dir.path());
    let trees: Vec<Vec<u8>> = db.tree_names().iter().map(|name| name.to_vec()).collect();
    assert!(trees.contains(&b"run_status".to_vec()));
    assert!(!trees.contains(&b"run_index".to_vec()));
}

#[tokio::test]
async fn status_listing_merges_workflows_newest_first() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");
    let mut failed = Vec::new();
    for (position, workflow) in ["b", "a", "c", "a-b", "b", "a"].iter().enumerate() {
        let mut run = run_of(workflow);
        run.status = if position == 2 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        store.insert_run(&run, None).await.expect("inserting");
        if position != 2 {
            failed.push(run.id);
        }
    }
    failed.reverse();

    assert_eq!(ids(&store, None, Some(RunStatus::Failed)), failed);
    assert_eq!(
        store.count_in_status(RunStatus::Failed).expect("counting"),
        5
    );
    let query = RunQuery {
        status: Some(RunStatus::Failed),
        before: Some(failed[1].clone()),
        limit: 2,
        ..RunQuery::default()
    };
    let page: Vec<String> = store
        .list_runs(&query)
        .expect("listing runs")
        .into_iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(page, failed[2..4].to_vec());
}

#[tokio::test]
async fn stale_status_keys_list_a_run_once() {
    let (dir, running, done) = running_and_done().await;
    // A crash between adding the new status key and removing the old one
    // leaves the `queued` keys behind.
    write_stale_queued_keys(dir.path(), &[&running, &done]);

    let store = SledStore::open(dir.path()).expect("opening the store");
    let unfinished: Vec<(String, RunStatus)> = store
        .unfinished_runs()
        .expect("listing unfinished runs")
        .into_iter()
        .map(|run| (run.id, run.status))
        .collect();

    assert_eq!(unfinished, vec![(running.id.clone(), RunStatus::Running)]);
    assert_eq!(ids(&store, Some("place"), None), vec![done.id, running.id]);
    assert!(ids(&store, None, Some(RunStatus::Queued)).is_empty());
    let queued = store.count_in_status(RunStatus::Queued).expect("counting");
    assert_eq!(queued, 0, "the stale keys are gone");
}

/// Opens the sled files once the closed store's flush thread has let go of
/// them.
fn open_when_released(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("opening sled: {error}"),
        }
    }
}

/// Writes a stale `queued` key for each run, as a crash between adding a
/// run's new status key and removing its old one leaves it.
/// Stores one run of `place` that is running and one that succeeded, and
/// closes the store.
async fn running_and_done() -> (TempDir, Run, Run) {
    let dir = TempDir::new().expect("temporary directory");
    let mut running = run_of("place");
    let mut done = run_of("place");
    {
        let store = SledStore::open(dir.path()).expect("opening the store");
        for run in [&running, &done] {
            store.insert_run(run, None).await.expect("inserting");
        }
        running.status = RunStatus::Running;
        done.status = RunStatus::Succeeded;
        store.save_run(&running).expect("saving");
        store.save_run(&done).expect("saving");
        store.sync().await.expect("flushing");
    }
    (dir, running, done)
}

fn write_stale_queued_keys(path: &std::path::Path, runs: &[&Run]) {
    let db = open_when_released(path);
    let index = db.open_tree("run_status").expect("index tree");
    for run in runs {
        let key = [b"place\0queued\0".as_slice(), run.id.as_bytes()].concat();
        index
            .insert(key, b"".as_slice())
            .expect("writing a stale key");
    }
    db.flush().expect("flushing");
}

#[tokio::test]
async fn stale_status_keys_not_counted() {
    let (dir, running, done) = running_and_done().await;
    write_stale_queued_keys(dir.path(), &[&running, &done]);

    let store = SledStore::open(dir.path()).expect("opening the store");
    let hour_ago = Utc::now() - Duration::hours(1);

    let queued = store.count_in_status(RunStatus::Queued);
    let in_running = store.count_in_status(RunStatus::Running);
    let queued_recently = store.count_runs("place", RunStatus::Queued, hour_ago);
    let succeeded_recently = store.count_runs("place", RunStatus::Succeeded, hour_ago);

    assert_eq!(queued.expect("counting"), 0);
    assert_eq!(in_running.expect("counting"), 1);
    assert_eq!(queued_recently.expect("counting"), 0);
    assert_eq!(succeeded_recently.expect("counting"), 1);
}

#[tokio::test]
async fn retention_removes_stale_status_keys() {
    let dir = TempDir::new().expect("temporary directory");
    let mut done = run_of("place");
    {
        let store = SledStore::open(dir.path()).expect("opening the store");
        store.insert_run(&done, None).await.expect("inserting");
        done.status = RunStatus::Succeeded;
        store.save_run(&done).expect("saving");
        store.sync().await.expect("flushing");
    }
    write_stale_queued_keys(dir.path(), &[&done]);
    {
        let store = SledStore::open(dir.path()).expect("opening the store");
        let deleted = store
            .delete_finished_before(Utc::now() + Duration::hours(1), 100)
            .expect("deleting old runs");
        assert_eq!(deleted, 1);
        store.sync().await.expect("flushing");
    }

    let db = open_when_released(dir.path());
    let index = db.open_tree("run_status").expect("index tree");
    let left: Vec<String> = index
        .iter()
        .keys()
        .map(|key| String::from_utf8_lossy(&key.expect("reading a key")).into_owned())
        .collect();
    assert!(left.is_empty(), "index keys left after retention: {left:?}");
    let by_workflow = db.open_tree("run_workflow").expect("workflow tree");
    assert_eq!(by_workflow.len(), 0, "workflow keys left after retention");
}

#[tokio::test]
async fn orphan_queued_key_removed_on_open() {
    let dir = TempDir::new().expect("temporary directory");
    let orphan = run_of("place");
    {
        // A crash between writing a new run's index key and its header
        // leaves the key without a run.
        let db = sled::open(dir.path()).expect("opening sled");
        let key = [b"place\0queued\0".as_slice(), orphan.id.as_bytes()].concat();
        let trigger = serde_json::to_vec(&orphan.trigger).expect("encoding the trigger");
        let tree = |name: &str| db.open_tree(name).expect("opening a tree");
        tree("triggers")
            .insert(orphan.id.as_bytes(), trigger)
            .expect("trigger");
        tree("run_status")
            .insert(key, b"".as_slice())
            .expect("index key");
        let workflow_key = [b"place\0".as_slice(), orphan.id.as_bytes()].concat();
        tree("run_workflow")
            .insert(workflow_key, b"".as_slice())
            .expect("workflow key");
        db.flush().expect("flushing");
    }
    {
        let store = SledStore::open(dir.path()).expect("opening the store");
        let queued = store.count_in_status(RunStatus::Queued);
        assert_eq!(queued.expect("counting"), 0);
    }

    let db = open_when_released(dir.path());
    let index = db.open_tree("run_status").expect("index tree");
    let triggers = db.open_tree("triggers").expect("trigger tree");
    assert_eq!(index.len(), 0, "the orphan index key is left");
    assert_eq!(triggers.len(), 0, "the orphan trigger event is left");
    let by_workflow = db.open_tree("run_workflow").expect("workflow tree");
    assert_eq!(by_workflow.len(), 0, "the orphan workflow key is left");
}

#[tokio::test]
async fn workflow_listing_sees_runs_changing_status() {
    let dir = TempDir::new().expect("temporary directory");
    let store = std::sync::Arc::new(SledStore::open(dir.path()).expect("opening the store"));
    let mut runs = Vec::new();
    for _ in 0..200 {
        let run = run_of("place");
        store.insert_run(&run, None).await.expect("inserting");
        runs.push(run);
    }

    let writer = std::sync::Arc::clone(&store);
    let changing = std::thread::spawn(move || {
        for status in [RunStatus::Running, RunStatus::Succeeded] {
            for run in &mut runs {
                run.status = status;
                writer.save_run(run).expect("saving");
            }
        }
    });
    let mut shortest = usize::MAX;
    while !changing.is_finished() {
        shortest = shortest.min(ids(&store, Some("place"), None).len());
    }
    changing.join().expect("the status changes finished");

    assert_eq!(shortest, 200, "a listing by workflow left out runs");
    assert_eq!(ids(&store, Some("place"), None).len(), 200);
}
