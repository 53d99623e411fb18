//! Engine behaviour that needs the engine's private state. A stranded run,
//! stored by a delivery that got an error, starts when the delivery is
//! repeated, also when the repeat came before the error, and a run is
//! queued even when its sender goes away during storing. Retention waits
//! while an operator retries a run. Reloads keep only the workflow versions
//! runs may still use. A bulk retry skips runs deleted or retried since its
//! listing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::run::{RunStatus, TriggerEvent, TriggerKind};
use super::{Engine, Storing, Submitted, lock, retention};
use crate::expr::{Limits, ScriptEngine};
use crate::store::{SledStore, Store};
use crate::workflow::{Env, load_dir};

const DELIVERIES: &str = r#"name: deliveries
trigger:
  webhook:
    path: /hooks/deliveries
    dedup_header: X-Delivery-Id
steps:
  - id: note
    script: '#{ id: trigger.body.id }'
"#;

struct Setup {
    project: TempDir,
    _data: TempDir,
    store: Arc<SledStore>,
    engine: Arc<Engine>,
}

fn setup() -> Setup {
    let project = TempDir::new().expect("project directory");
    std::fs::create_dir_all(project.path().join("workflows")).expect("workflows directory");
    std::fs::write(project.path().join("workflows/deliveries.yaml"), DELIVERIES)
        .expect("writing the workflow");
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_dir(project.path(), &scripts, &Env::default());
    assert!(registry.problems.is_empty(), "workflow problems");
    let data = TempDir::new().expect("data directory");
    let store = Arc::new(SledStore::open(data.path()).expect("opening the store"));
    let engine = Engine::new(registry, store.clone(), scripts);
    Setup {
        project,
        _data: data,
        store,
        engine,
    }
}

fn delivery(id: &str) -> TriggerEvent {
    TriggerEvent {
        kind: TriggerKind::Webhook,
        dedup_key: Some(id.to_string()),
        ..TriggerEvent::manual(json!({ "id": 9 }))
    }
}

/// Stores a queued run of `deliveries` for the delivery `key`, as the
/// commit thread writes it, without queueing it.
async fn stored_run(setup: &Setup, key: &str) -> super::run::Run {
    let run = setup
        .engine
        .create_run("deliveries", delivery(key))
        .expect("creating the run");
    setup
        .store
        .insert_run(&run, Some(key))
        .await
        .expect("storing the run");
    run
}

#[tokio::test]
async fn repeated_delivery_starts_stranded_run() {
    let setup = setup();
    setup.engine.start().expect("starting the engine");
    // What `submit` leaves when storing returns an error after the write:
    // the run is stored and claimed, but never queued.
    let stranded = stored_run(&setup, "delivery-9").await;
    lock(&setup.engine.storing).insert(stranded.id.clone(), Storing::Stranded);

    let repeated = setup
        .engine
        .submit("deliveries", delivery("delivery-9"))
        .await
        .expect("submitting again");
    let ended = setup
        .engine
        .wait_for_end(&stranded.id, Duration::from_secs(10))
        .await
        .expect("waiting");

    assert!(matches!(repeated, Submitted::Duplicate(ref id) if *id == stranded.id));
    let ended = ended.expect("the stranded run ended within 10 s");
    assert_eq!(ended.status, RunStatus::Succeeded);
    assert!(lock(&setup.engine.storing).is_empty());
}

#[tokio::test]
async fn repeated_delivery_leaves_queued_run_alone() {
    let setup = setup();
    // Not started: a run `submit` queued stays queued, and a repeated
    // delivery must not queue it a second time.
    let first = setup
        .engine
        .submit("deliveries", delivery("delivery-10"))
        .await
        .expect("submitting");
    let Submitted::New(run_id) = first else {
        panic!("the first delivery starts a run");
    };
    setup
        .engine
        .submit("deliveries", delivery("delivery-10"))
        .await
        .expect("submitting again");

    let mut queue = lock(&setup.engine.pending)
        .take()
        .expect("the engine was not started");
    let mut queued = Vec::new();
    while let Ok(id) = queue.try_recv() {
        queued.push(id);
    }
    assert_eq!(queued, vec![run_id]);
}

#[tokio::test]
async fn repeat_before_storing_error_starts_run() {
    let setup = setup();
    // Not started, so the queue can be read. The first delivery's run is
    // written and claimed, but its storing has not returned yet.
    let first = stored_run(&setup, "delivery-12").await;
    lock(&setup.engine.storing).insert(first.id.clone(), Storing::InFlight);

    let repeated = setup
        .engine
        .submit("deliveries", delivery("delivery-12"))
        .await
        .expect("submitting again");
    let mut queue = lock(&setup.engine.pending)
        .take()
        .expect("the engine was not started");
    let queued_before = queue.try_recv().ok();
    // Then the first delivery's storing returns an error.
    setup.engine.storing_failed(&first.id);
    let queued_after = queue.try_recv().ok();

    assert!(matches!(repeated, Submitted::Duplicate(ref id) if *id == first.id));
    assert_eq!(
        queued_before, None,
        "queued while its storing was in flight"
    );
    assert_eq!(queued_after, Some(first.id.clone()));
    assert!(lock(&setup.engine.storing).is_empty());
}

#[tokio::test]
async fn submit_dropped_while_storing_still_queues() {
    let setup = setup();
    // Not started, so the queue can be read. The submit is polled once and
    // then dropped, as when the sender disconnects.
    let mut submit = Box::pin(setup.engine.submit("deliveries", delivery("delivery-14")));
    let polled = futures::poll!(submit.as_mut());
    drop(submit);
    let mut queue = lock(&setup.engine.pending)
        .take()
        .expect("the engine was not started");
    let queued = tokio::time::timeout(Duration::from_secs(10), queue.recv())
        .await
        .expect("the run was queued within 10 s")
        .expect("the queue is open");

    assert!(polled.is_pending(), "the submit finished at its first poll");
    let run = setup
        .store
        .load_run(&queued)
        .expect("loading")
        .expect("the queued run is stored");
    assert_eq!(run.trigger.dedup_key.as_deref(), Some("delivery-14"));
    assert!(lock(&setup.engine.storing).is_empty());
}

#[tokio::test]
async fn retention_waits_for_retry_in_progress() {
    let setup = setup();
    let mut failed = stored_run(&setup, "delivery-11").await;
    failed.status = RunStatus::Failed;
    setup.store.save_run(&failed).expect("saving the failure");
    // Retention deletes runs created before the millisecond its pass starts
    // in, and run ids count milliseconds.
    tokio::time::sleep(Duration::from_millis(5)).await;

    // The guard a retry takes from loading the run until it is queued again.
    let retrying = setup.engine.retries_or_retention.read().await;
    let engine = Arc::clone(&setup.engine);
    let pass = tokio::spawn(async move { retention::run_pass(&engine, Duration::ZERO).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waited = !pass.is_finished();
    let kept = setup.store.load_run(&failed.id).expect("loading").is_some();
    drop(retrying);
    let deleted = tokio::time::timeout(Duration::from_secs(10), pass)
        .await
        .expect("the pass ended once the retry did")
        .expect("retention task");

    assert!(waited, "retention ran while a retry was in progress");
    assert!(kept, "the run was deleted during the retry");
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn reload_drops_unused_workflow_versions() {
    let setup = setup();
    let version = |engine: &Engine| {
        engine
            .registry()
            .workflow("deliveries")
            .expect("the workflow is loaded")
            .version
            .clone()
    };
    let first = version(&setup.engine);
    // Not started, so this run stays queued on the first version.
    setup
        .engine
        .submit("deliveries", delivery("delivery-20"))
        .await
        .expect("submitting");

    let mut loaded = vec![first.clone()];
    for edit in 1..=3 {
        let text = DELIVERIES.replace("trigger.body.id", &format!("trigger.body.id + {edit}"));
        std::fs::write(setup.project.path().join("workflows/deliveries.yaml"), text)
            .expect("editing the workflow");
        let problems = setup.engine.reload(setup.project.path(), &Env::default());
        assert_eq!(problems, 0);
        loaded.push(version(&setup.engine));
    }
    let kept_versions = lock(&setup.engine.versions);

    assert!(
        kept_versions.contains_key(&first),
        "the queued run's version is kept"
    );
    assert!(
        !kept_versions.contains_key(&loaded[1]),
        "an unused version is dropped"
    );
    assert!(
        kept_versions.contains_key(&loaded[2]),
        "the previous version is kept"
    );
    assert!(
        kept_versions.contains_key(&loaded[3]),
        "the current version is kept"
    );
    assert_eq!(kept_versions.len(), 3);
}

#[tokio::test]
async fn bulk_retry_skips_changed_runs() {
    let setup = setup();
    let mut failed = Vec::new();
    for key in ["delivery-20", "delivery-21"] {
        let mut run = stored_run(&setup, key).await;
        run.status = RunStatus::Failed;
        setup.store.save_run(&run).expect("saving the failure");
        failed.push(run.id);
    }
    // Since the listing, one run was retried and another was deleted.
    setup.engine.retry(&failed[0]).await.expect("retrying");
    let deleted = "0190a4f2-0000-7000-8000-000000000000".to_string();
    let listed = vec![deleted, failed[0].clone(), failed[1].clone()];

    let retried = setup
        .engine
        .retry_listed("deliveries", listed)
        .await
        .expect("the bulk retry goes on past changed runs");

    assert_eq!(retried, vec![failed[1].clone()]);
    let status = |id: &str| {
        setup
            .store
            .load_run(id)
            .expect("loading")
            .map(|run| run.status)
    };
    assert_eq!(status(&failed[0]), Some(RunStatus::Queued));
    assert_eq!(status(&failed[1]), Some(RunStatus::Queued));
}
