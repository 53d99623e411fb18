//! Webhook signature schemes other than Shopify's, the body kinds a
//! webhook maps into `trigger`, and `respond: sync`.

mod common;

use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use hmac::Mac as _;
use serde_json::{Value, json};

const WOO_SECRET: &str = "wc_whsec_5b7e2f91";
const GITHUB_SECRET: &str = "gh_hook_0a9d";
const STRIPE_SECRET: &str = "whsec_test_8c2d";

const WORKFLOWS: &[(&str, &str)] = &[
    (
        "woo.yaml",
        r#"name: woo
trigger:
  webhook:
    path: /hooks/woo/order-created
    verify:
      hmac_sha256: { header: X-WC-Webhook-Signature, secret: "${{ secrets.WOO_SECRET }}", encoding: base64 }
    ping: woocommerce
steps:
  - id: read
    script: |
      let order = trigger.body;
      #{ price: order.line_items[0].price, total: order.total }
"#,
    ),
    (
        "github.yaml",
        r#"name: github
trigger:
  webhook:
    path: /hooks/github
    verify:
      hmac_sha256: { header: X-Hub-Signature-256, secret: "${{ secrets.GITHUB_SECRET }}", encoding: hex, prefix: "sha256=" }
steps:
  - id: echo
    script: trigger.body
"#,
    ),
    (
        "stripe.yaml",
        r#"name: stripe
trigger:
  webhook:
    path: /hooks/stripe
    verify:
      timestamped_hmac_sha256: { header: Stripe-Signature, secret: "${{ secrets.STRIPE_SECRET }}", tolerance: 5m }
steps:
  - id: echo
    script: trigger.body
"#,
    ),
    (
        "echo.yaml",
        r#"name: echo
trigger:
  webhook:
    path: /hooks/echo
    respond: sync
    respond_timeout: 10s
steps:
  - id: echo
    script: |
      #{ body: trigger.body, raw: trigger.raw, headers: trigger.headers, query: trigger.query }
"#,
    ),
    (
        "refuse.yaml",
        r#"name: refuse
trigger:
  webhook:
    path: /hooks/refuse
    respond: sync
steps:
  - id: check
    script: fail("the order has no address")
"#,
    ),
    (
        "later.yaml",
        r#"name: later
trigger:
  webhook:
    path: /hooks/later
    respond: sync
    respond_timeout: 100ms
steps:
  - id: pause
    delay: 1h
  - id: done
    script: "1"
"#,
    ),
];

async fn server() -> (Supplier, TestServer) {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    for (file, text) in WORKFLOWS {
        project.add_workflow(file, text);
    }
    let env = shop_env(&supplier)
        .with("WOO_SECRET", WOO_SECRET)
        .with("GITHUB_SECRET", GITHUB_SECRET)
        .with("STRIPE_SECRET", STRIPE_SECRET);
    let server = TestServer::start(&project, env).await;
    (supplier, server)
}

fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = server.client.post(server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("POST")
}

async fn run_id_of(response: reqwest::Response) -> String {
    let answer: Value = response.json().await.expect("JSON answer");
    answer["run_id"].as_str().expect("run_id").to_string()
}

#[tokio::test]
async fn woocommerce_signature_keeps_types() {
    let (_supplier, server) = server().await;
    let body = fixture("woocommerce-order-created.json");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac(WOO_SECRET, &[body.as_slice()]));
    let headers = [
        ("Content-Type", "application/json".to_string()),
        ("X-WC-Webhook-Topic", "order.created".to_string()),
        ("X-WC-Webhook-Signature", signature),
    ];

    let response = post(&server, "/hooks/woo/order-created", &headers, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run = server.wait_for_run(&run_id_of(response).await).await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    let output = &run["steps"][0]["output"];
    assert!(output["price"].is_number(), "output: {output}");
    assert_eq!(output["price"].as_f64(), Some(19.99));
    assert_eq!(output["total"], Value::String("24.94".into()));
}

#[tokio::test]
async fn woocommerce_wrong_signature_is_401() {
    let (_supplier, server) = server().await;
    let body = fixture("woocommerce-order-created.json");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac("other", &[body.as_slice()]));
    let headers = [("X-WC-Webhook-Signature", signature)];

    let response = post(&server, "/hooks/woo/order-created", &headers, body).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn woocommerce_ping_gets_200_without_run() {
    let (_supplier, server) = server().await;
    let form = [(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];

    let ping = post(
        &server,
        "/hooks/woo/order-created",
        &form,
        b"webhook_id=17".to_vec(),
    )
    .await;
    assert_eq!(ping.status(), StatusCode::OK);
    let runs = server.get_json("/api/runs?workflow=woo").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");

    let other = post(
        &server,
        "/hooks/woo/order-created",
        &form,
        b"webhook_id=17&x=1".to_vec(),
    )
    .await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);

    // A trigger without `ping` checks the signature of the same body.
    let github = post(&server, "/hooks/github", &form, b"webhook_id=17".to_vec()).await;
    assert_eq!(github.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hex_signature_needs_its_prefix() {
    let (_supplier, server) = server().await;
    let body = br#"{"action":"opened"}"#.to_vec();
    let digest = hex::encode(hmac(GITHUB_SECRET, &[body.as_slice()]));

    let wrong = [("X-Hub-Signature-256", format!("sha1={digest}"))];
    let response = post(&server, "/hooks/github", &wrong, body.clone()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let bare = [("X-Hub-Signature-256", digest.clone())];
    let response = post(&server, "/hooks/github", &bare, body.clone()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let right = [("X-Hub-Signature-256", format!("sha256={digest}"))];
    let response = post(&server, "/hooks/github", &right, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// Posts `body` to the `github` workflow with a valid signature and
/// returns the new run's id.
async fn post_signed(server: &TestServer, body: &[u8]) -> String {
    let digest = hex::encode(hmac(GITHUB_SECRET, &[body]));
    let headers = [
        ("X-Hub-Signature-256", format!("sha256={digest}")),
        ("Content-Type", "application/json".to_string()),
    ];
    let response = post(server, "/hooks/github", &headers, body.to_vec()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    run_id_of(response).await
}

#[tokio::test]
async fn stored_event_reads_back_its_body() {
    let (_supplier, server) = server().await;
    let order = fixture("shopify-orders-create.json");
    let expected: Value = serde_json::from_slice(&order).expect("the fixture is JSON");

    let run_id = post_signed(&server, &order).await;
    let run = server.wait_for_run(&run_id).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"]["body"], expected);
    assert_eq!(
        run["trigger"]["raw"],
        String::from_utf8(order.clone()).expect("UTF-8")
    );
    assert!(run["trigger"].get("body_from_raw").is_none(), "{run}");

    // The stored event keeps the body once, as text, and a store opened
    // on the same files parses it again.
    let copy = tempfile::TempDir::new().expect("a second data directory");
    copy_data_dir(server.data_path(), copy.path());
    {
        let db = sled::open(copy.path()).expect("opening the copy");
        let triggers = db.open_tree("triggers").expect("the triggers tree");
        let bytes = triggers
            .get(run_id.as_bytes())
            .expect("reading the event")
            .expect("the event is stored");
        let stored: Value = serde_json::from_slice(&bytes).expect("stored as JSON");
        assert!(stored.get("body").is_none(), "{stored}");
        assert_eq!(stored["body_from_raw"], "json");
    }
    let store = tether::store::SledStore::open(copy.path()).expect("opening the store");
    let loaded = tether::store::Store::load_run(&store, &run_id)
        .expect("loading the run")
        .expect("the run is stored");
    assert_eq!(loaded.trigger.body, expected);
}

#[tokio::test]
async fn search_finds_quoted_field_of_body() {
    let (_supplier, server) = server().await;
    let mira = post_signed(&server, br#"{"email":"mira@example.com","total":"42.00"}"#).await;
    let noor = post_signed(
        &server,
        br#"{"email":"noor@example.com","note":"mira@example.com"}"#,
    )
    .await;
    server.wait_for_run(&mira).await;
    server.wait_for_run(&noor).await;

    let needle: String =
        form_urlencoded::byte_serialize(br#""email":"Mira@example.com""#).collect();
    let (status, page) = server.get_page(&format!("/?q={needle}")).await;

    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&mira), "{page}");
    assert!(!page.contains(&noor), "{page}");
}

fn stripe_header(timestamp: i64, body: &[u8]) -> String {
    let stamp = format!("{timestamp}.");
    let digest = hex::encode(hmac(STRIPE_SECRET, &[stamp.as_bytes(), body]));
    format!("t={timestamp},v1={digest}")
}

#[tokio::test]
async fn stripe_signature_checked_against_clock() {
    let (_supplier, server) = server().await;
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#.to_vec();
    let now = chrono::Utc::now().timestamp();

    let fresh = [("Stripe-Signature", stripe_header(now, &body))];
    let response = post(&server, "/hooks/stripe", &fresh, body.clone()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    for stale in [now - 3600, now + 3600] {
        let headers = [("Stripe-Signature", stripe_header(stale, &body))];
        let response = post(&server, "/hooks/stripe", &headers, body.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "t = {stale}");
    }
}

async fn echo(server: &TestServer, content_type: &str, body: &str) -> Value {
    let headers = [
        ("Content-Type", content_type.to_string()),
        ("X-Shop-Domain", "lumen-trail.example".to_string()),
    ];
    let path = "/hooks/echo?source=test&tag=a&tag=b";
    let response = post(server, path, &headers, body.as_bytes().to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("the run's output as JSON")
}

#[tokio::test]
async fn json_body_mapped_into_trigger() {
    let (_supplier, server) = server().await;
    let body = r#"{"id": 9007199254740993, "sku": "00123"}"#;

    let output = echo(&server, "application/json", body).await;

    assert_eq!(output["body"]["id"].to_string(), "9007199254740993");
    assert_eq!(output["body"]["sku"], "00123");
    assert_eq!(output["raw"], body);
    assert_eq!(output["headers"]["x-shop-domain"], "lumen-trail.example");
    assert_eq!(
        output["query"],
        json!({"source": "test", "tag": ["a", "b"]})
    );
}

#[tokio::test]
async fn form_body_mapped_into_trigger() {
    let (_supplier, server) = server().await;
    let body = "sku=00123&qty=2&note=gift+wrap";

    let output = echo(&server, "application/x-www-form-urlencoded", body).await;

    assert_eq!(
        output["body"],
        json!({"sku": "00123", "qty": "2", "note": "gift wrap"})
    );
    assert_eq!(output["raw"], body);
    assert_eq!(
        output["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn text_body_mapped_into_trigger() {
    let (_supplier, server) = server().await;
    let body = "order 1042 shipped";

    let output = echo(&server, "text/plain", body).await;

    assert_eq!(output["body"], body);
    assert_eq!(output["raw"], body);
    assert_eq!(output["query"]["source"], "test");
}

#[tokio::test]
async fn sync_failure_is_500_with_run_id() {
    let (_supplier, server) = server().await;

    let response = post(&server, "/hooks/refuse", &[], b"{}".to_vec()).await;

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer: Value = response.json().await.expect("JSON answer");
    let error = answer["error"].as_str().expect("error text");
    assert!(error.contains("the order has no address"), "{answer}");
    let run_id = answer["run_id"].as_str().expect("run_id");
    let run = server.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "failed");
}

#[tokio::test]
async fn sync_timeout_is_202_with_run_id() {
    let (_supplier, server) = server().await;

    let response = post(&server, "/hooks/later", &[], b"{}".to_vec()).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run_id = run_id_of(response).await;
    let run = server.get_json(&format!("/api/runs/{run_id}")).await;
    assert_ne!(run["status"], "succeeded", "run: {run}");
}
