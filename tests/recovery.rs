//! Operator recovery, durable waits, concurrency keys and shutdown, against
//! the engine serving on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{RunStatus, TriggerEvent};

/// A manual workflow: a script step, then one supplier call.
const TWO_STEPS: &str = r#"name: two-steps
trigger: manual
steps:
  - id: prepare
    script: '#{ reference: trigger.body.id }'
  - id: place
    uses: supplier.create_order
    with:
      reference: "${{ steps.prepare.output.reference }}"
"#;

async fn server(supplier: &Supplier, workflows: &[(&str, &str)]) -> TestServer {
    let project = Project::bundled();
    for (file, text) in workflows {
        project.add_workflow(file, text);
    }
    TestServer::start(&project, shop_env(supplier)).await
}

async fn post(server: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn bad_request() -> Answer {
    Answer::json(
        StatusCode::BAD_REQUEST,
        json!({ "error": "address rejected" }),
    )
}

#[tokio::test]
async fn retry_resumes_at_failed_step() {
    let supplier = Supplier::sequence(vec![bad_request(), Answer::order_created("SO-9")]).await;
    let server = server(&supplier, &[("two.yaml", TWO_STEPS)]).await;
    let trigger = TriggerEvent::manual(json!({ "id": 41 }));
    let failed = server
        .engine
        .run_now("two-steps", trigger)
        .await
        .expect("running");
    assert_eq!(failed.status, RunStatus::Failed);

    let (status, answer) = post(
        &server,
        &format!("/api/runs/{}/retry", failed.id),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["run_id"], failed.id.as_str());
    let run = server.wait_for_run(&failed.id).await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    assert_eq!(run["retries"], 1);
    let prepare = &run["steps"][0];
    assert_eq!(
        prepare["attempts"].as_array().map(Vec::len),
        Some(1),
        "earlier step not run again"
    );
    let place = &run["steps"][1];
    assert_eq!(
        place["attempts"].as_array().map(Vec::len),
        Some(2),
        "both attempts kept"
    );
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("idempotency-key"),
        received[1].header("idempotency-key")
    );
}

#[tokio::test]
async fn retry_of_succeeded_run_is_conflict() {
    let supplier = Supplier::accepting().await;
    let server = server(&supplier, &[("two.yaml", TWO_STEPS)]).await;
    let trigger = TriggerEvent::manual(json!({ "id": 1 }));
    let done = server
        .engine
        .run_now("two-steps", trigger)
        .await
        .expect("running");
    assert_eq!(done.status, RunStatus::Succeeded);

    let (status, answer) = post(
        &server,
        &format!("/api/runs/{}/retry", done.id),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        answer["error"].as_str().unwrap_or("").contains("succeeded"),
        "{answer}"
    );

    let (status, _) = post(&server, "/api/runs/no-such-run/cancel", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replay_starts_linked_new_run() {
    let supplier = Supplier::accepting().await;
    let server = server(&supplier, &[("two.yaml", TWO_STEPS)]).await;
    let trigger = TriggerEvent::manual(json!({ "id": 77 }));
    let first = server
        .engine
        .run_now("two-steps", trigger)
        .await
        .expect("running");

    let path = format!("/api/runs/{}/retry", first.id);
    let (status, answer) = post(&server, &path, json!({ "from_start": true })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let replay_id = answer["run_id"].as_str().expect("new run id").to_string();
    assert_ne!(replay_id, first.id);
    let replay = server.wait_for_run(&replay_id).await;

    assert_eq!(replay["status"], "succeeded");
    assert_eq!(replay["replay_of"], first.id.as_str());
    assert_eq!(replay["trigger"]["body"]["id"], 77);
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    assert_ne!(
        received[0].header("idempotency-key"),
        received[1].header("idempotency-key")
    );
}

#[tokio::test]
async fn bulk_retry_retries_every_failed_run() {
    let failing_twice = vec![bad_request(), bad_request(), Answer::order_created("SO-1")];
    let supplier = Supplier::sequence(failing_twice).await;
    let server = server(&supplier, &[("two.yaml", TWO_STEPS)]).await;
    let mut failed = Vec::new();
    for id in [1, 2] {
        let run = server
            .engine
            .run_now("two-steps", TriggerEvent::manual(json!({ "id": id })))
            .await
            .expect("running");
        assert_eq!(run.status, RunStatus::Failed);
        failed.push(run.id);
    }

    let (status, answer) = post(
        &server,
        "/api/runs/retry?workflow=two-steps&status=failed",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["retried"].as_array().map(Vec::len), Some(2));
    for run_id in &failed {
        let run = server.wait_for_run(run_id).await;
        assert_eq!(run["status"], "succeeded", "run: {run}");
    }
}

const DELAYED: &str = r#"name: delayed
trigger: manual
steps:
  - id: pause
    delay: 700ms
  - id: place
    uses: supplier.create_order
    with:
      reference: "${{ trigger.body.id }}"
"#;

#[tokio::test]
async fn delay_parks_run_then_continues() {
    let supplier = Supplier::accepting().await;
    let server = server(&supplier, &[("delayed.yaml", DELAYED)]).await;
    let started = Instant::now();
    let (status, answer) = post(&server, "/api/workflows/delayed/runs", json!({ "id": 5 })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run_id = answer["run_id"].as_str().expect("run id").to_string();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = server.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(waiting["status"], "waiting", "run: {waiting}");
    assert!(waiting["wake_at"].is_string());
    assert!(supplier.received().is_empty());

    let run = server.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "succeeded");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(supplier.received().len(), 1);
}

#[tokio::test]
async fn cancel_stops_waiting_run() {
    let supplier = Supplier::accepting().await;
    let server = server(&supplier, &[("delayed.yaml", DELAYED)]).await;
    let (_, answer) = post(&server, "/api/workflows/delayed/runs", json!({ "id": 6 })).await;
    let run_id = answer["run_id"].as_str().expect("run id").to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, answer) = post(&server, &format!("/api/runs/{run_id}/cancel"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "cancelled");

    tokio::time::sleep(Duration::from_millis(900)).await;
    let run = server.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(
        run["status"], "cancelled",
        "a terminal status never goes back"
    );
    assert!(
        supplier.received().is_empty(),
        "no step starts after a cancel"
    );

    let (status, _) = post(&server, &format!("/api/runs/{run_id}/cancel"), Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

const PER_SKU: &str = r#"name: per-sku
trigger: manual
concurrency_key: "${{ trigger.body.sku }}"
steps:
  - id: place
    uses: supplier.create_order
    with:
      sku: "${{ trigger.body.sku }}"
      n: "${{ trigger.body.n }}"
"#;

#[tokio::test]
async fn same_key_runs_never_overlap() {
    let slow = Duration::from_millis(600);
    let supplier = Supplier::start(std::sync::Arc::new(move |_, _| {
        Answer::order_created("SO").after(slow)
    }))
    .await;
    let server = server(&supplier, &[("per-sku.yaml", PER_SKU)]).await;

    let mut run_ids = Vec::new();
    for (n, sku) in ["A", "A", "A", "B"].iter().enumerate() {
        let (status, answer) = post(
            &server,
            "/api/workflows/per-sku/runs",
            json!({ "sku": sku, "n": n }),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        run_ids.push(answer["run_id"].as_str().expect("run id").to_string());
    }
    for run_id in &run_ids {
        assert_eq!(server.wait_for_run(run_id).await["status"], "succeeded");
    }

    let received = supplier.received();
    let mut same_key: Vec<Instant> = received
        .iter()
        .filter(|r| r.json()["sku"] == "A")
        .map(|r| r.received_at)
        .collect();
    same_key.sort();
    assert_eq!(same_key.len(), 3);
    for pair in same_key.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= slow, "two runs of key A overlapped: gap {gap:?}");
    }
    let other = received
        .iter()
        .find(|r| r.json()["sku"] == "B")
        .expect("key B ran");
    assert!(
        other.received_at - same_key[0] < slow,
        "key B did not wait for key A"
    );
}

#[tokio::test]
async fn shutdown_rejects_hooks_and_finishes_call() {
    let slow = Duration::from_millis(600);
    let supplier = Supplier::start(std::sync::Arc::new(move |_, _| {
        Answer::order_created("SO").after(slow)
    }))
    .await;
    let hooked = DELAYED
        .replace("name: delayed", "name: hooked")
        .replace(
            "trigger: manual",
            "trigger:\n  webhook:\n    path: /hooks/hooked",
        )
        .replace("  - id: pause\n    delay: 700ms\n", "");
    let server = server(&supplier, &[("hooked.yaml", &hooked)]).await;

    let response = server
        .client
        .post(server.url("/hooks/hooked"))
        .json(&json!({ "id": 1 }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.expect("JSON");
    let run_id = answer["run_id"].as_str().expect("run id").to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let engine = server.engine.clone();
    let stopping = tokio::spawn(async move { engine.shutdown(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rejected = server
        .client
        .post(server.url("/hooks/hooked"))
        .json(&json!({ "id": 2 }))
        .send()
        .await
        .expect("POST");
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);

    stopping.await.expect("shutdown finished");
    let run = server.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(
        run["status"], "succeeded",
        "the call in flight finished: {run}"
    );
    assert_eq!(supplier.received().len(), 1);
}
