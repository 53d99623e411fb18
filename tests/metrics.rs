//! `GET /metrics` after real runs and webhooks on 127.0.0.1.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

async fn start_place(server: &TestServer) -> String {
    let response = server
        .client
        .post(server.url("/api/workflows/place/runs"))
        .json(&json!({}))
        .send()
        .await
        .expect("starting a run");
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    answer["run_id"].as_str().expect("a run id").to_string()
}

#[tokio::test]
async fn metrics_count_runs_retries_and_webhooks() {
    let supplier = Supplier::sequence(vec![
        Answer::json(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "busy" })),
        Answer::order_created("SO-9"),
    ])
    .await;
    let project = Project::bundled();
    project.add_workflow(
        "place.yaml",
        "name: place\ntrigger: manual\nsteps:\n  - id: place\n    uses: supplier.create_order\n    with: { reference: \"R-9\" }\n    retry: { attempts: 3, backoff: 10ms, jitter: 0 }\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    let run_id = start_place(&server).await;
    server.wait_for_run(&run_id).await;
    let hello = server
        .client
        .post(server.url("/hooks/hello"))
        .json(&json!({ "name": "Mira" }))
        .send()
        .await
        .expect("sending a webhook");
    let hello_run = hello
        .json::<serde_json::Value>()
        .await
        .expect("JSON answer");
    server
        .wait_for_run(hello_run["run_id"].as_str().expect("a run id"))
        .await;
    let forged = server
        .post_shopify(
            &fixture("shopify-orders-create.json"),
            "AAAA",
            SHOPIFY_WEBHOOK_ID,
        )
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");

    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().expect("ASCII");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("metrics text");
    for line in [
        "tether_runs_started_total{workflow=\"place\"} 1",
        "tether_runs_finished_total{workflow=\"place\",status=\"succeeded\"} 1",
        "tether_step_retries_total{operation=\"supplier.create_order\"} 1",
        "tether_step_duration_seconds_count{operation=\"supplier.create_order\"} 2",
        "tether_step_duration_seconds_count{operation=\"script\"} 1",
        "tether_webhooks_acknowledged_total{workflow=\"hello\"} 1",
        "tether_webhooks_rejected_total{reason=\"invalid_signature\"} 1",
        "tether_runs_unfinished{status=\"queued\"} 0",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}
