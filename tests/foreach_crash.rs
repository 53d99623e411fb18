//! A `foreach` over 200 items, eight at a time, survives SIGKILL of the
//! engine: after a restart every item has been called under exactly one
//! idempotency key, and the run's output lists 200 results in input order.

#![cfg(unix)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Launcher;
use common::*;
use serde_json::{Value, json};
use tempfile::TempDir;

const ITEMS: usize = 200;

const FAN_OUT: &str = r#"name: fan-out
trigger:
  webhook:
    path: /hooks/fan-out
steps:
  - id: lines
    foreach: "${{ trigger.body.items }}"
    concurrency: 8
    steps:
      - id: place
        uses: supplier.create_order
        with:
          sku: "${{ item.sku }}"
"#;

/// Calls per idempotency key, with the first answer's supplier order id.
type CallLog = Arc<Mutex<HashMap<String, (usize, String)>>>;

/// A supplier that answers a repeated idempotency key with its first
/// answer, and counts calls per key.
fn replaying_supplier(calls: CallLog) -> Responder {
    Arc::new(move |request, n| {
        let key = request.header("idempotency-key").unwrap_or("").to_string();
        let sku = request.json()["sku"].as_str().unwrap_or("").to_string();
        let mut calls = calls.lock().expect("call log lock");
        let entry = calls
            .entry(key)
            .or_insert_with(|| (0, format!("SO-{sku}-{n}")));
        entry.0 += 1;
        Answer::order_created(&entry.1).after(Duration::from_millis(10))
    })
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn foreach_survives_sigkill_midway() {
    tether::app::install_tls_provider();
    let calls: CallLog = Arc::default();
    let supplier = Supplier::start(replaying_supplier(Arc::clone(&calls))).await;
    let project = Project::bundled();
    project.add_workflow("fan-out.yaml", FAN_OUT);
    let data = TempDir::new().expect("data directory");
    let launcher = Launcher::for_shop(project.path(), data.path(), supplier.url());
    let client = reqwest::Client::new();
    let items: Vec<Value> = (0..ITEMS)
        .map(|n| json!({ "sku": format!("SKU-{n:03}") }))
        .collect();

    let mut first = launcher.start(1).await;
    let response = client
        .post(format!("{}/hooks/fan-out", first.base_url))
        .json(&json!({ "items": items }))
        .send()
        .await
        .expect("posting the webhook");
    assert_eq!(response.status(), 202);
    let run_id = response.json::<Value>().await.expect("JSON")["run_id"]
        .as_str()
        .expect("run id")
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    while supplier.received().len() < ITEMS / 3 {
        assert!(
            Instant::now() < deadline,
            "the foreach never got going:\n{}",
            launcher.log_tail(12)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.sigkill();
    let calls_before_kill = supplier.received().len();
    assert!(
        calls_before_kill < ITEMS,
        "the kill came after the last item"
    );

    let second = launcher.start(2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = get(&client, format!("{}/api/runs/{run_id}", second.base_url)).await;
        if matches!(run["status"].as_str(), Some("succeeded" | "failed")) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "run did not finish: {}\n{}",
            run["status"],
            launcher.log_tail(12)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    second.stop();

    assert_eq!(run["status"], "succeeded", "run error: {}", run["error"]);
    let calls = calls.lock().expect("call log lock").clone();
    let received = supplier.received();
    let mut keys_per_sku: HashMap<String, BTreeSet<String>> = HashMap::new();
    for request in &received {
        let sku = request.json()["sku"].as_str().unwrap_or("").to_string();
        let key = request.header("idempotency-key").unwrap_or("").to_string();
        keys_per_sku.entry(sku).or_default().insert(key);
    }
    assert_eq!(keys_per_sku.len(), ITEMS, "every item was called");
    for (sku, keys) in &keys_per_sku {
        assert_eq!(
            keys.len(),
            1,
            "item {sku} was called under several keys: {keys:?}"
        );
    }
    assert_eq!(calls.len(), ITEMS, "one distinct key per item");

    let output = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["path"] == "steps[0]"))
        .map(|s| s["output"].clone())
        .expect("the foreach step's record");
    let list = output.as_array().expect("the foreach output is a list");
    assert_eq!(list.len(), ITEMS);
    for (n, result) in list.iter().enumerate() {
        let order = result["orderId"].as_str().unwrap_or("");
        assert!(
            order.starts_with(&format!("SO-SKU-{n:03}-")),
            "result {n} out of order: {order}"
        );
    }
    let repeats = received.len() - ITEMS;
    println!(
        "foreach crash: {ITEMS} items, {calls_before_kill} calls before the kill, {repeats} repeated calls"
    );
}
