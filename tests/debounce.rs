//! Debounced triggers: a burst of events with one key makes one run that
//! carries the last event.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const STOCK: &str = r#"name: stock-sync
trigger:
  webhook:
    path: /hooks/stock
debounce:
  key: "${{ trigger.body.sku }}"
  window: 500ms
steps:
  - id: push
    script: '#{ sku: trigger.body.sku, qty: trigger.body.qty }'
"#;

async fn send(server: &TestServer, sku: &str, qty: i64) -> String {
    let response = server
        .client
        .post(server.url("/hooks/stock"))
        .json(&json!({ "sku": sku, "qty": qty }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.expect("JSON");
    answer["run_id"].as_str().expect("run id").to_string()
}

#[tokio::test]
async fn burst_folds_into_one_run() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("stock.yaml", STOCK);
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let a1 = send(&server, "A", 1).await;
    let b1 = send(&server, "B", 7).await;
    let a2 = send(&server, "A", 2).await;
    let a3 = send(&server, "A", 3).await;
    assert_eq!(a1, a2, "events of one key inside the window share a run");
    assert_eq!(a1, a3);
    assert_ne!(a1, b1);

    let waiting = server.get_json(&format!("/api/runs/{a1}")).await;
    assert_eq!(waiting["status"], "waiting");

    let run_a = server.wait_for_run(&a1).await;
    assert_eq!(run_a["status"], "succeeded");
    assert_eq!(
        run_a["output"],
        json!({ "sku": "A", "qty": 3 }),
        "the run carries the last event"
    );
    let run_b = server.wait_for_run(&b1).await;
    assert_eq!(run_b["output"], json!({ "sku": "B", "qty": 7 }));

    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = send(&server, "A", 4).await;
    assert_ne!(later, a1, "after the window closes a new run starts");
    let run_later = server.wait_for_run(&later).await;
    assert_eq!(run_later["output"]["qty"], 4);
    let runs = server.get_json("/api/runs?workflow=stock-sync").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(3));
}
