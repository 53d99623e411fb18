//! Token auth: a token fetched from the API's endpoint once, shared by
//! concurrent runs, and fetched again when the API rejects it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

const OAUTH: &str = r#"name: shopapi
config:
  base_url: { env: SUPPLIER_BASE_URL }
auth:
  oauth2:
    token_path: /oauth/token
    client_id: client-1
    client_secret: "${{ secrets.SUPPLIER_API_TOKEN }}"
operations:
  orders: { method: GET, path: /api/orders }
"#;

const CJ: &str = r#"name: token-vendor
config:
  base_url: { env: SUPPLIER_BASE_URL }
auth:
  token:
    path: /api2.0/v1/authentication/getAccessToken
    body: { email: ops@lumen-trail.example, password: "${{ secrets.SUPPLIER_API_TOKEN }}" }
    token: "${{ response.body.data.accessToken }}"
    header: CJ-Access-Token
operations:
  orders: { method: GET, path: /api/orders }
"#;

/// Builds an API that issues numbered tokens and accepts only the newest
/// one.
fn token_api(issued: Arc<AtomicUsize>, form_bodies: Arc<Mutex<Vec<String>>>) -> Responder {
    Arc::new(move |request: &Recorded, _| {
        if request.path.ends_with("/oauth/token") || request.path.ends_with("/getAccessToken") {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            form_bodies
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&request.body).into_owned());
            return Answer::json(
                StatusCode::OK,
                json!({ "access_token": format!("tok-{n}"), "expires_in": 3600, "data": { "accessToken": format!("tok-{n}") } }),
            )
            .after(std::time::Duration::from_millis(100));
        }
        let newest = format!("tok-{}", issued.load(Ordering::SeqCst));
        let given = request
            .header("authorization")
            .map(|h| h.trim_start_matches("Bearer ").to_string())
            .or_else(|| request.header("cj-access-token").map(str::to_string))
            .unwrap_or_default();
        if given == newest {
            Answer::json(StatusCode::OK, json!({ "orders": [], "token": given }))
        } else {
            Answer::json(
                StatusCode::UNAUTHORIZED,
                json!({ "error": "invalid token" }),
            )
        }
    })
}

async fn server_with(connector: &str, name: &str, supplier: &Supplier) -> TestServer {
    let project = Project::bundled();
    std::fs::write(
        project.path().join(format!("connectors/{name}.yaml")),
        connector,
    )
    .expect("writing the connector");
    let workflow = format!(
        "name: read-{name}\ntrigger: manual\nsteps:\n  - id: read\n    uses: {name}.orders\n"
    );
    project.add_workflow("read.yaml", &workflow);
    TestServer::start(&project, shop_env(supplier)).await
}

async fn start_runs(server: &TestServer, workflow: &str, count: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let response = server
            .client
            .post(server.url(&format!("/api/workflows/{workflow}/runs")))
            .json(&json!({}))
            .send()
            .await
            .expect("POST");
        let answer: Value = response.json().await.expect("JSON");
        ids.push(answer["run_id"].as_str().expect("run id").to_string());
    }
    let mut runs = Vec::new();
    for id in ids {
        runs.push(server.wait_for_run(&id).await);
    }
    runs
}

#[tokio::test]
async fn one_token_shared_by_concurrent_runs() {
    let issued = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let supplier = Supplier::start(token_api(Arc::clone(&issued), Arc::clone(&bodies))).await;
    let server = server_with(OAUTH, "shopapi", &supplier).await;

    let runs = start_runs(&server, "read-shopapi", 5).await;
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "only one token request for five runs"
    );
    let form = bodies.lock().expect("lock")[0].clone();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_id=client-1"), "{form}");
    let stored = server
        .get_json(&format!(
            "/api/runs/{}",
            runs[0]["id"].as_str().unwrap_or("")
        ))
        .await
        .to_string();
    assert!(
        !stored.contains(SUPPLIER_TOKEN),
        "the client secret stays out of run history"
    );
}

#[tokio::test]
async fn rejected_token_is_fetched_again() {
    let issued = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let supplier = Supplier::start(token_api(Arc::clone(&issued), Arc::clone(&bodies))).await;
    let server = server_with(CJ, "token-vendor", &supplier).await;

    let first = start_runs(&server, "read-token-vendor", 1).await;
    assert_eq!(first[0]["status"], "succeeded", "{}", first[0]);
    // The API revokes the token by issuing a new one elsewhere.
    issued.fetch_add(1, Ordering::SeqCst);

    let second = start_runs(&server, "read-token-vendor", 1).await;
    assert_eq!(second[0]["status"], "succeeded", "{}", second[0]);
    assert_eq!(second[0]["output"]["token"], "tok-3");
    assert_eq!(issued.load(Ordering::SeqCst), 3);
    let body: Value =
        serde_json::from_str(&bodies.lock().expect("lock")[0]).expect("a JSON token request");
    assert_eq!(body["email"], "ops@lumen-trail.example");
}
