//! Deduplication claims on real sled files: poll claims expire after a
//! retention period, a repeated webhook key is a duplicate (also when its
//! copies arrive together), and a webhook run
//! stored without its claim (the process stopped before the flush) is
//! dropped on the next open.

use chrono::{Duration, Utc};
use serde_json::json;
use tempfile::TempDir;
use tether::engine::run::{Run, TriggerEvent, TriggerKind};
use tether::store::{Inserted, RunQuery, SledStore, Store};

#[test]
fn old_poll_claims_expire() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");

    assert!(store.claim_key("orders", "poll:1").expect("claim"));
    assert!(store.claim_key("orders", "poll:2").expect("claim"));
    assert!(store.claim_key("other", "poll:1").expect("claim"));
    assert!(
        !store.claim_key("orders", "poll:1").expect("claim"),
        "a claimed key stays claimed"
    );

    let none = store
        .expire_claims("orders", "poll:", Utc::now() - Duration::days(30))
        .expect("expire");
    assert_eq!(none, 0, "recent claims are kept");

    let all = store
        .expire_claims("orders", "poll:", Utc::now() + Duration::seconds(5))
        .expect("expire");
    assert_eq!(all, 2);
    assert!(
        store.claim_key("orders", "poll:1").expect("claim"),
        "an expired key can be claimed again"
    );
    assert!(
        !store.claim_key("other", "poll:1").expect("claim"),
        "other workflows keep their claims"
    );
}

fn webhook_run(workflow: &str, dedup: &str) -> Run {
    let trigger = TriggerEvent {
        kind: TriggerKind::Webhook,
        dedup_key: Some(dedup.to_string()),
        ..TriggerEvent::manual(json!({ "id": dedup }))
    };
    Run::new(workflow, trigger)
}

fn listed(store: &SledStore) -> Vec<String> {
    let query = RunQuery {
        limit: 100,
        ..RunQuery::default()
    };
    let runs = store.list_runs(&query).expect("listing runs");
    runs.into_iter().map(|run| run.id).collect()
}

#[tokio::test]
async fn repeated_webhook_key_is_duplicate() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");
    let first = webhook_run("orders", "delivery-1");
    let again = webhook_run("orders", "delivery-1");

    let inserted = store
        .insert_run(&first, Some("delivery-1"))
        .await
        .expect("inserting");
    let repeated = store
        .insert_run(&again, Some("delivery-1"))
        .await
        .expect("inserting again");

    assert_eq!(inserted, Inserted::New);
    assert_eq!(repeated, Inserted::Duplicate(first.id.clone()));
    assert_eq!(listed(&store), vec![first.id]);
}

#[tokio::test]
async fn webhook_keys_never_expire() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");
    let first = webhook_run("orders", "poll:delivery-2");
    store
        .insert_run(&first, Some("poll:delivery-2"))
        .await
        .expect("inserting");

    // Even a key that looks like a poll item's is kept, because a webhook
    // run that is not debounced records no claim time.
    let expired = store
        .expire_claims("orders", "", Utc::now() + Duration::days(365))
        .expect("expire");
    let again = webhook_run("orders", "poll:delivery-2");
    let repeated = store
        .insert_run(&again, Some("poll:delivery-2"))
        .await
        .expect("inserting again");

    assert_eq!(expired, 0);
    assert_eq!(repeated, Inserted::Duplicate(first.id));
}

/// Writes a queued run as the store lays it out, with a deduplication
/// claim naming `claim` (none for a run cut off before its claim).
fn write_raw(db: &sled::Db, run: &Run, claim: Option<&str>) {
    let header = run.header_json().expect("encoding the header");
    let trigger = serde_json::to_vec(&run.trigger).expect("encoding the trigger");
    let index_key = [run.workflow.as_bytes(), b"\0queued\0", run.id.as_bytes()].concat();
    let dedup_key = run.trigger.dedup_key.as_deref().unwrap_or_default();
    let claim_key = [run.workflow.as_bytes(), b"\0", dedup_key.as_bytes()].concat();
    let tree = |name: &str| db.open_tree(name).expect("opening a tree");
    tree("runs")
        .insert(run.id.as_bytes(), header)
        .expect("header");
    tree("triggers")
        .insert(run.id.as_bytes(), trigger)
        .expect("trigger");
    tree("run_status")
        .insert(index_key, b"".as_slice())
        .expect("index key");
    if let Some(owner) = claim {
        tree("dedup")
            .insert(claim_key, owner.as_bytes())
            .expect("claim");
    }
}

#[tokio::test]
async fn unclaimed_webhook_runs_dropped_on_open() {
    let data = TempDir::new().expect("data directory");
    let claimed = webhook_run("orders", "delivery-a");
    let cut_off = webhook_run("orders", "delivery-b");
    let lost_race = webhook_run("orders", "delivery-c");
    let mut polled = webhook_run("orders", "poll:item-d");
    polled.trigger.kind = TriggerKind::Poll;
    {
        let db = sled::open(data.path()).expect("opening sled");
        write_raw(&db, &claimed, Some(&claimed.id));
        write_raw(&db, &cut_off, None);
        write_raw(&db, &lost_race, Some("another-run"));
        // A poll claim can expire while its run waits in the queue.
        write_raw(&db, &polled, None);
        db.flush().expect("flushing");
    }

    let store = SledStore::open(data.path()).expect("opening the store");

    assert_eq!(listed(&store), vec![polled.id.clone(), claimed.id.clone()]);
    assert!(
        store.load_run(&cut_off.id).expect("loading").is_none(),
        "the run cut off before its claim is gone"
    );
    let delivered_again = webhook_run("orders", "delivery-b");
    let inserted = store
        .insert_run(&delivered_again, Some("delivery-b"))
        .await
        .expect("inserting");
    assert_eq!(inserted, Inserted::New);
}

#[tokio::test]
async fn copies_in_one_flush_store_once() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");
    // Five deliveries, each sent four times at once, so copies share a
    // flush.
    let runs: Vec<Run> = (0..20)
        .map(|n| webhook_run("orders", &format!("delivery-{}", n % 5)))
        .collect();
    let outcomes = futures::future::join_all(runs.iter().map(|run| {
        let key = run.trigger.dedup_key.clone().expect("a key");
        let store = &store;
        async move { store.insert_run(run, Some(&key)).await.expect("inserting") }
    }))
    .await;

    let mut stored = listed(&store);
    stored.sort();
    let mut new: Vec<String> = runs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == Inserted::New)
        .map(|(run, _)| run.id.clone())
        .collect();
    new.sort();
    assert_eq!(new.len(), 5, "one run per delivery: {outcomes:?}");
    assert_eq!(stored, new);
    for (run, outcome) in runs.iter().zip(&outcomes) {
        if let Inserted::Duplicate(first) = outcome {
            let first = store.load_run(first).expect("loading").expect("stored");
            assert_eq!(first.trigger.dedup_key, run.trigger.dedup_key);
        }
    }
}
