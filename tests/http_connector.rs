//! The native `http` connector: one request described by the step.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use tether::engine::run::{RunStatus, TriggerEvent};

const CALL: &str = r#"name: raw-call
trigger: manual
steps:
  - id: call
    uses: http.request
    with:
      method: post
      url: "${{ trigger.body.url }}/track"
      headers: { X-Carrier-Key: abc }
      query: { carrier: dhl }
      body: { number: "${{ trigger.body.number }}" }
"#;

#[tokio::test]
async fn request_described_by_step() {
    let supplier = Supplier::fixed(StatusCode::OK, json!({ "state": "in_transit" })).await;
    let project = Project::bundled();
    project.add_workflow("raw.yaml", CALL);
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let input = json!({ "url": supplier.url(), "number": "1Z999AA10123456784" });
    let run = server
        .engine
        .run_now("raw-call", TriggerEvent::manual(input))
        .await
        .expect("running");

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let output = run.output.clone().unwrap_or_default();
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"]["state"], "in_transit");
    let request = &supplier.received()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/track");
    assert_eq!(request.param("carrier").as_deref(), Some("dhl"));
    assert_eq!(request.header("x-carrier-key"), Some("abc"));
    assert_eq!(request.json()["number"], "1Z999AA10123456784");
    let key = format!("{}:call", run.id);
    assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
}

#[tokio::test]
async fn client_error_fails_with_status() {
    let supplier = Supplier::fixed(
        StatusCode::NOT_FOUND,
        json!({ "error": "unknown tracking number" }),
    )
    .await;
    let project = Project::bundled();
    project.add_workflow("raw.yaml", CALL);
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let input = json!({ "url": supplier.url(), "number": "0" });
    let run = server
        .engine
        .run_now("raw-call", TriggerEvent::manual(input))
        .await
        .expect("running");
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("404") && error.contains("unknown tracking number"),
        "{error}"
    );
}
