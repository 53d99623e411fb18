//! A signed Shopify order webhook runs end to end against a supplier
//! stand-in on 127.0.0.1, with the test-owned `forward-order` workflow (see
//! `tests/common/mod.rs` for why it is not the bundled `order-to-supplier`)
//! and the bundled `supplier` connector.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::Value;

async fn shop() -> (Supplier, TestServer) {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    (supplier, server)
}

#[tokio::test]
async fn fixture_order_reaches_supplier_exactly() {
    let (supplier, server) = shop().await;
    let body = fixture("shopify-orders-create.json");

    let response = server
        .post_shopify(&body, SHOPIFY_SIGNATURE, SHOPIFY_WEBHOOK_ID)
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"]
        .as_str()
        .expect("run_id in the answer")
        .to_string();

    let run = server.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "succeeded", "run: {run}");

    let received = supplier.received();
    assert_eq!(
        received.len(),
        1,
        "the supplier must get exactly one request"
    );
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/orders");
    let expected_auth = format!("Bearer {SUPPLIER_TOKEN}");
    assert_eq!(
        request.header("authorization"),
        Some(expected_auth.as_str())
    );
    let expected_key = format!("{run_id}:place");
    assert_eq!(
        request.header("idempotency-key"),
        Some(expected_key.as_str())
    );

    let text = String::from_utf8(request.body.to_vec()).expect("UTF-8 body");
    assert!(
        text.contains("\"reference\":6123456789012345"),
        "body: {text}"
    );
    let order = request.json();
    assert_eq!(order["reference"].as_u64(), Some(6123456789012345));
    let items = order["items"].as_array().expect("items list");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["sku"], Value::String("HL-900-RC".into()));
    assert_eq!(items[0]["quantity"], 2);
    assert_eq!(items[1]["sku"], Value::String("00123".into()));
    assert_eq!(items[1]["quantity"], 1);
    assert_eq!(
        order["shipping_address"]["zip"],
        Value::String("05069".into())
    );
    assert_eq!(order["shipping_address"]["city"], "Köln");

    let place = &run["steps"][1];
    assert_eq!(place["id"], "place");
    assert_eq!(place["output"]["orderId"], "SO-2611-000123");
}

#[tokio::test]
async fn repeated_delivery_returns_first_run() {
    let (supplier, server) = shop().await;
    let body = fixture("shopify-orders-create.json");

    let first = server
        .post_shopify(&body, SHOPIFY_SIGNATURE, SHOPIFY_WEBHOOK_ID)
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.expect("JSON answer");
    server
        .wait_for_run(first["run_id"].as_str().expect("run id"))
        .await;

    let again = server
        .post_shopify(&body, SHOPIFY_SIGNATURE, SHOPIFY_WEBHOOK_ID)
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("JSON answer");
    assert_eq!(again["run_id"], first["run_id"]);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(supplier.received().len(), 1);
    let runs = server.get_json("/api/runs?workflow=forward-order").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn concurrent_copies_make_one_run() {
    let (supplier, server) = shop().await;
    let body = fixture("shopify-orders-create.json");

    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = server.client.clone();
        let url = server.url(FORWARD_ORDER_PATH);
        let body = body.clone();
        copies.spawn(async move {
            client
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Shopify-Webhook-Id", SHOPIFY_WEBHOOK_ID)
                .header("X-Shopify-Hmac-Sha256", SHOPIFY_SIGNATURE)
                .body(body)
                .send()
                .await
                .expect("sending a copy")
        });
    }
    let answers = copies.join_all().await;

    let mut accepted = 0;
    let mut run_ids = Vec::new();
    for answer in answers {
        let status = answer.status();
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "status {status}"
        );
        if status == StatusCode::ACCEPTED {
            accepted += 1;
        }
        let value: Value = answer.json().await.expect("JSON answer");
        run_ids.push(value["run_id"].as_str().expect("run id").to_string());
    }
    assert_eq!(accepted, 1, "exactly one copy is accepted as new");
    run_ids.dedup();
    assert_eq!(run_ids.len(), 1, "every copy names the same run");

    server.wait_for_run(&run_ids[0]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(supplier.received().len(), 1);
}

#[tokio::test]
async fn wrong_signature_is_401_and_stores_nothing() {
    let (supplier, server) = shop().await;
    let body = fixture("shopify-orders-create.json");
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    let response = server.post_shopify(&body, wrong, "other-delivery").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let mut tampered = body.clone();
    let position = tampered
        .iter()
        .position(|b| *b == b'2')
        .expect("a digit in the body");
    tampered[position] = b'3';
    let response = server
        .post_shopify(&tampered, SHOPIFY_SIGNATURE, "tampered")
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let runs = server.get_json("/api/runs?workflow=forward-order").await;
    assert_eq!(runs["runs"], Value::Array(Vec::new()));
    assert!(supplier.received().is_empty());
}

#[tokio::test]
async fn unpaid_order_is_skipped_without_supplier_call() {
    let (supplier, server) = shop().await;
    let mut order: Value =
        serde_json::from_slice(&fixture("shopify-orders-create.json")).expect("fixture JSON");
    order["financial_status"] = Value::String("pending".into());
    let body = serde_json::to_vec(&order).expect("encoding");
    let signature = sign_shopify(&body);

    let response = server.post_shopify(&body, &signature, "unpaid-1").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.expect("JSON answer");
    let run = server
        .wait_for_run(answer["run_id"].as_str().expect("run id"))
        .await;
    assert_eq!(run["status"], "skipped");
    assert!(
        run["reason"].as_str().unwrap_or("").contains("not paid"),
        "run: {run}"
    );
    assert!(supplier.received().is_empty());
}

fn sign_shopify(body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SHOPIFY_SECRET.as_bytes())
        .expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn body_over_limit_is_413() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "small.yaml",
        "name: small\ntrigger:\n  webhook:\n    path: /hooks/small\n    max_body: 1KiB\nsteps:\n  - id: echo\n    script: trigger.body\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let big = vec![b'x'; 2048];
    let response = server
        .client
        .post(server.url("/hooks/small"))
        .body(big)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let small = server
        .client
        .post(server.url("/hooks/small"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(small.status(), StatusCode::ACCEPTED);

    let default_limit = vec![b' '; 10 * 1024 * 1024 + 1];
    let response = server
        .post_shopify(&default_limit, SHOPIFY_SIGNATURE, "huge")
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_hook_path_is_404() {
    let (_supplier, server) = shop().await;
    let response = server
        .client
        .post(server.url("/hooks/nothing-here"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn supplier_error_envelope_fails_run() {
    let envelope: Value =
        serde_json::from_slice(&fixture("supplier-error-envelope.json")).expect("fixture JSON");
    let supplier = Supplier::fixed(StatusCode::OK, envelope).await;
    let project = Project::bundled();
    project.add_workflow(
        "place-once.yaml",
        r#"name: place-once
trigger: manual
steps:
  - id: place
    uses: supplier.create_order
    with:
      reference: "${{ trigger.body.id }}"
"#,
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let run = server
        .engine
        .run_now(
            "place-once",
            tether::engine::run::TriggerEvent::manual(serde_json::json!({"id": 7})),
        )
        .await
        .expect("running");
    assert_eq!(run.status, tether::engine::run::RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("Too much request, please try again later"),
        "error: {error}"
    );
    assert_eq!(supplier.received().len(), 1);
}

#[tokio::test]
async fn endless_script_fails_while_server_answers() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "spin.yaml",
        "name: spin\ntrigger:\n  webhook:\n    path: /hooks/spin\nsteps:\n  - id: forever\n    script: loop {}\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let response = server
        .client
        .post(server.url("/hooks/spin"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("run id").to_string();

    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(1),
        server.client.get(server.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answered within a second")
    .expect("GET /healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));

    let run = server.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("limit"), "error names the limit: {error}");
}

#[tokio::test]
async fn secrets_never_reach_run_history() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "leaky.yaml",
        r#"name: leaky
trigger: manual
steps:
  - id: place
    uses: supplier.create_order
    with:
      note: "token ${{ secrets.SUPPLIER_API_TOKEN }} in the body"
  - id: echo
    script: '`again ${secrets.SUPPLIER_API_TOKEN}`'
"#,
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let run = server
        .engine
        .run_now(
            "leaky",
            tether::engine::run::TriggerEvent::manual(serde_json::json!({})),
        )
        .await
        .expect("running");
    assert_eq!(run.status, tether::engine::run::RunStatus::Succeeded);

    let received = supplier.received();
    let sent = String::from_utf8(received[0].body.to_vec()).expect("UTF-8 body");
    assert!(
        sent.contains(SUPPLIER_TOKEN),
        "the supplier gets the real value: {sent}"
    );
    let stored = server
        .get_json(&format!("/api/runs/{}", run.id))
        .await
        .to_string();
    assert!(
        !stored.contains(SUPPLIER_TOKEN),
        "a secret reached the run history: {stored}"
    );
    assert!(stored.contains("[redacted]"), "{stored}");
}

#[tokio::test]
async fn basic_and_api_key_auth_sent() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    let connectors = project.path().join("connectors");
    let basic = r#"name: basic_shop
config:
  base_url: { env: SUPPLIER_BASE_URL }
auth:
  basic: { username: ck_live, password: "${{ secrets.SUPPLIER_API_TOKEN }}" }
operations:
  ping: { method: GET, path: /ping, query: { page: 2, empty: "${{ () }}" } }
"#;
    let keyed = r#"name: keyed_shop
config:
  base_url: { env: SUPPLIER_BASE_URL }
auth:
  api_key: { header: X-Api-Key, value: "${{ secrets.SUPPLIER_API_TOKEN }}" }
headers:
  Accept: application/json
operations:
  ping: { method: GET, path: "/ping/${{ input.id }}" }
"#;
    std::fs::write(connectors.join("basic.yaml"), basic).expect("writing a connector");
    std::fs::write(connectors.join("keyed.yaml"), keyed).expect("writing a connector");
    project.add_workflow(
        "pings.yaml",
        "name: pings\ntrigger: manual\nsteps:\n  - id: one\n    uses: basic_shop.ping\n  - id: two\n    uses: keyed_shop.ping\n    with: { id: 42 }\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let run = server
        .engine
        .run_now(
            "pings",
            tether::engine::run::TriggerEvent::manual(serde_json::json!({})),
        )
        .await
        .expect("running");
    assert_eq!(
        run.status,
        tether::engine::run::RunStatus::Succeeded,
        "{run:?}"
    );

    let received = supplier.received();
    assert_eq!(received.len(), 2);
    use base64::Engine as _;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("ck_live:{SUPPLIER_TOKEN}"));
    let expected_basic = format!("Basic {credentials}");
    assert_eq!(
        received[0].header("authorization"),
        Some(expected_basic.as_str())
    );
    assert_eq!(received[0].path, "/ping");
    assert_eq!(received[1].header("x-api-key"), Some(SUPPLIER_TOKEN));
    assert_eq!(received[1].header("accept"), Some("application/json"));
    assert_eq!(received[1].path, "/ping/42");
}
