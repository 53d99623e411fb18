//! Access control: with a token configured, the API and pages need it,
//! webhooks and health checks stay open; `serve` off loopback without a
//! token does not start.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use tempfile::TempDir;
use tether::engine::Engine;
use tether::web::WebOptions;

const TOKEN: &str = "tok_dash_5e1c9a";

/// An engine over the bundled files, served on 127.0.0.1 with `options`.
struct AuthServer {
    base: String,
    _engine: Arc<Engine>,
    _project: Project,
    _data: TempDir,
}

async fn serve(options: WebOptions) -> AuthServer {
    let project = Project::bundled();
    let data = TempDir::new().expect("creating the data directory");
    let env = tether::workflow::Env::from_pairs([("UNUSED", String::new())]);
    let engine = tether::app::open(project.path(), data.path(), &env).expect("opening the engine");
    engine.start().expect("starting the engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("bound address"));
    let router = tether::web::router_with(Arc::clone(&engine), &options);
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serving") });
    AuthServer {
        base,
        _engine: engine,
        _project: project,
        _data: data,
    }
}

async fn with_token() -> AuthServer {
    serve(WebOptions {
        api_token: Some(TOKEN.to_string()),
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("building a client")
}

#[tokio::test]
async fn api_requires_bearer_token() {
    let server = with_token().await;
    let url = format!("{}/api/runs", server.base);

    let missing = client().get(&url).send().await.expect("GET");
    let wrong = client()
        .get(&url)
        .bearer_auth("tok_wrong")
        .send()
        .await
        .expect("GET");
    let right = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");

    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let message = missing.text().await.expect("a body");
    assert!(message.contains("TETHER_API_TOKEN"), "{message}");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_require_bearer_token() {
    let server = with_token().await;
    let url = format!("{}/metrics", server.base);

    let missing = client().get(&url).send().await.expect("GET");
    let right = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");

    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test]
async fn page_redirects_to_login() {
    let server = with_token().await;

    let response = client()
        .get(format!("{}/workflows?x=1", server.base))
        .send()
        .await
        .expect("GET");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/login?next=%2Fworkflows%3Fx%3D1"
    );
}

#[tokio::test]
async fn login_sets_http_only_cookie() {
    let server = with_token().await;
    let login = format!("{}/login", server.base);

    let rejected = client()
        .post(&login)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("token=tok_wrong&next=%2Fworkflows")
        .send()
        .await
        .expect("POST");
    let accepted = client()
        .post(&login)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=%2Fworkflows"))
        .send()
        .await
        .expect("POST");

    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(accepted.headers()["location"], "/workflows");
    let cookie = accepted.headers()["set-cookie"].to_str().expect("ASCII");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "cookie carries no token: {cookie}");
    let session = cookie.split(';').next().expect("name=value");
    let page = client()
        .get(format!("{}/workflows", server.base))
        .header("Cookie", session)
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn hooks_and_healthz_stay_open() {
    let server = with_token().await;

    let hook = client()
        .post(format!("{}/hooks/hello", server.base))
        .json(&serde_json::json!({ "name": "Mira" }))
        .send()
        .await
        .expect("POST");
    let health = client()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("GET");

    assert_eq!(hook.status(), StatusCode::ACCEPTED);
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn loopback_router_needs_no_token() {
    let server = serve(WebOptions::default()).await;

    let api = client()
        .get(format!("{}/api/runs", server.base))
        .send()
        .await
        .expect("GET");
    let page = client()
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("GET");

    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(page.status(), StatusCode::OK);
}

#[test]
fn serve_off_loopback_needs_token() {
    let data = TempDir::new().expect("creating the data directory");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["--data"])
        .arg(data.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("TETHER_API_TOKEN")
        .output()
        .expect("running tether serve");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TETHER_API_TOKEN"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
}
