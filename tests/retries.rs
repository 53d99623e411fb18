//! Retry rules against a supplier stand-in on 127.0.0.1: what is retried,
//! how long the engine waits, and timeouts that free the worker.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, TriggerEvent};

/// A manual workflow with one supplier call and the given step settings.
fn place_workflow(name: &str, settings: &str) -> String {
    format!(
        r#"name: {name}
trigger: manual
steps:
  - id: place
    uses: supplier.create_order
    with:
      reference: "${{{{ trigger.body.id }}}}"
{settings}
"#
    )
}

async fn server_with(supplier: &Supplier, name: &str, settings: &str) -> TestServer {
    let project = Project::bundled();
    project.add_workflow(&format!("{name}.yaml"), &place_workflow(name, settings));
    TestServer::start(&project, shop_env(supplier)).await
}

async fn run(server: &TestServer, workflow: &str) -> Run {
    let trigger = TriggerEvent::manual(json!({ "id": 9007199254740993_u64 }));
    server
        .engine
        .run_now(workflow, trigger)
        .await
        .expect("running the workflow")
}

fn service_unavailable() -> Answer {
    Answer::json(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "busy" }))
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let supplier = Supplier::sequence(vec![
        service_unavailable(),
        service_unavailable(),
        Answer::order_created("SO-1"),
    ])
    .await;
    let settings = "    retry: { attempts: 5, backoff: 50ms, jitter: 0 }";
    let server = server_with(&supplier, "place", settings).await;

    let run = run(&server, "place").await;

    assert_eq!(run.status, RunStatus::Succeeded, "run: {run:?}");
    let step = &run.steps[0];
    assert_eq!(step.attempts.len(), 3);
    assert!(
        step.attempts[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("503")
    );
    assert!(step.attempts[2].error.is_none());
    let received = supplier.received();
    assert_eq!(received.len(), 3);
    let key = format!("{}:place", run.id);
    for request in &received {
        assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
    }
    let body = String::from_utf8(received[0].body.to_vec()).expect("UTF-8");
    assert!(
        body.contains("9007199254740993"),
        "big id kept digit for digit: {body}"
    );
}

#[tokio::test]
async fn retry_after_fraction_is_honoured() {
    let too_many = Answer::json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "error": "slow down" }),
    )
    .header("retry-after", "2.5");
    let supplier = Supplier::sequence(vec![too_many, Answer::order_created("SO-2")]).await;
    let settings = "    retry: { attempts: 3, backoff: 10ms, jitter: 0 }";
    let server = server_with(&supplier, "place", settings).await;

    let run = run(&server, "place").await;

    assert_eq!(run.status, RunStatus::Succeeded, "run: {run:?}");
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    let waited = received[1].received_at - received[0].received_at;
    assert!(
        waited >= Duration::from_millis(2500),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn client_error_fails_at_once() {
    let bad_request = Answer::json(StatusCode::BAD_REQUEST, json!({ "error": "invalid sku" }));
    let supplier = Supplier::sequence(vec![bad_request]).await;
    let settings = "    retry: { attempts: 5, backoff: 10ms }";
    let server = server_with(&supplier, "place", settings).await;

    let run = run(&server, "place").await;

    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.steps[0].attempts.len(), 1);
    assert_eq!(supplier.received().len(), 1);
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("400"), "error names the status: {error}");
    assert!(
        error.contains("invalid sku"),
        "error carries the body: {error}"
    );
}

#[tokio::test]
async fn envelope_marked_retryable_is_retried() {
    let envelope: Value =
        serde_json::from_slice(&fixture("supplier-error-envelope.json")).expect("fixture JSON");
    let supplier = Supplier::sequence(vec![
        Answer::json(StatusCode::OK, envelope),
        Answer::order_created("SO-3"),
    ])
    .await;
    let settings = "    retry: { attempts: 3, backoff: 10ms }";
    let server = server_with(&supplier, "place", settings).await;

    let run = run(&server, "place").await;

    assert_eq!(run.status, RunStatus::Succeeded, "run: {run:?}");
    assert_eq!(run.steps[0].attempts.len(), 2);
    let first_error = run.steps[0].attempts[0].error.clone().unwrap_or_default();
    assert!(first_error.contains("Too much request"), "{first_error}");
}

/// Accepts connections on 127.0.0.1 and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn silent_server_times_out_and_frees_worker() {
    let silent = silent_server().await;
    let project = Project::bundled();
    let text = place_workflow("slow", "    timeout: 300ms")
        .replace("trigger: manual", "trigger: manual\nconcurrency: 1");
    project.add_workflow("slow.yaml", &text);
    let supplier = Supplier::accepting().await;
    let mut env = shop_env(&supplier);
    env = env.with("SUPPLIER_BASE_URL", &silent);
    let server = TestServer::start(&project, env).await;

    let started = Instant::now();
    let mut run_ids = Vec::new();
    for n in 0..2 {
        let answer = server
            .client
            .post(server.url("/api/workflows/slow/runs"))
            .json(&json!({ "id": n }))
            .send()
            .await
            .expect("starting a run");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let answer: Value = answer.json().await.expect("JSON answer");
        run_ids.push(answer["run_id"].as_str().expect("run id").to_string());
    }
    for run_id in &run_ids {
        let run = server.wait_for_run(run_id).await;
        assert_eq!(run["status"], "failed");
        let error = run["error"].as_str().unwrap_or("");
        assert!(error.contains("timed out"), "error: {error}");
    }
    // With one slot, the second run could only start after the first
    // timed out and gave its slot back.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(started.elapsed() < Duration::from_secs(10));
}
