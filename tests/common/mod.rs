//! Test harness: a project directory with the bundled workflows, the engine
//! serving on 127.0.0.1 over a temporary sled directory, and a supplier
//! stand-in that records every request.
//!
//! Every project also gets the test-owned `forward-order` workflow from
//! `tests/workflows/`: a signed Shopify order webhook forwarded to the
//! generic `supplier` connector with no catalog or stock lookups. The tests
//! of webhook ingest, deduplication, crashes, metrics and the benches use it
//! rather than the bundled `order-to-supplier`, because that one calls CJ
//! Dropshipping, whose connector allows 1 request per second: 300 orders in
//! the crash test would take minutes. `order-to-supplier` itself is tested
//! end to end in `tests/shop_orders.rs`.

#![allow(dead_code)]

#[cfg(unix)]
pub mod process;
mod shop;
mod smtp;
mod woo;

#[allow(unused_imports)]
pub use shop::*;
#[allow(unused_imports)]
pub use smtp::*;
#[allow(unused_imports)]
pub use woo::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use tempfile::TempDir;
use tether::engine::Engine;
use tether::trigger::schedule::Clock;
use tether::workflow::Env;
use tokio::sync::oneshot;

pub const SHOPIFY_SECRET: &str = "shpss_test_2f9c1e7a";
pub const SHOPIFY_SIGNATURE: &str = "sGhtLdnvs7bSHQn7PF5+JCJfEf4uqAKAl5vmNoF6Bo8=";
pub const SHOPIFY_WEBHOOK_ID: &str = "4f1d2c9e-8a7b-4c3d-9e2f-1a2b3c4d5e6f";
pub const SUPPLIER_TOKEN: &str = "sup_tok_91f3a7";
/// Webhook path of the test-owned `forward-order` workflow.
pub const FORWARD_ORDER_PATH: &str = "/hooks/test/forward-order";
/// Where the bundled order workflows send failure reports in tests.
pub const OPERATOR_EMAIL: &str = "ops@lumen-trail.example";
pub const WOOCOMMERCE_WEBHOOK_SECRET: &str = "wc_whsec_test_5b1e";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// A temporary project directory holding copies of the bundled
/// `workflows/` and `connectors/`, the test-owned workflows of
/// `tests/workflows/`, and any extra files a test adds.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn bundled() -> Self {
        let dir = TempDir::new().expect("creating a temporary directory");
        for sub in ["workflows", "connectors"] {
            let target = dir.path().join(sub);
            std::fs::create_dir_all(&target).expect("creating a project subdirectory");
            for entry in std::fs::read_dir(repo_root().join(sub)).expect("reading bundled files") {
                let path = entry.expect("directory entry").path();
                let name = path.file_name().expect("file name");
                std::fs::copy(&path, target.join(name)).expect("copying a bundled file");
            }
        }
        let project = Project { dir };
        project.add_test_workflows();
        project
    }

    /// Copies the workflows of `tests/workflows/` into the project.
    pub fn add_test_workflows(&self) {
        let source = repo_root().join("tests/workflows");
        for entry in std::fs::read_dir(&source).expect("reading tests/workflows") {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, self.dir.path().join("workflows").join(name))
                .expect("copying a test workflow");
        }
    }

    pub fn add_workflow(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join("workflows").join(file), text)
            .expect("writing a workflow");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The engine serving on an ephemeral port of 127.0.0.1.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _data: TempDir,
}

impl TestServer {
    pub async fn start(project: &Project, env: Env) -> Self {
        let server = Self::start_with_problems(project, env).await;
        let engine = &server.engine;
        assert!(
            engine.registry().problems.is_empty(),
            "bundled files have problems: {:?}",
            engine
                .registry()
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        server
    }

    /// Starts the server even when some files fail validation.
    pub async fn start_with_problems(project: &Project, env: Env) -> Self {
        Self::serve(project, env, Arc::new(StoppedClock)).await
    }

    /// Starts the server with schedules reading the time from `clock`.
    pub async fn start_with_clock(project: &Project, env: Env, clock: Arc<dyn Clock>) -> Self {
        let server = Self::serve(project, env, clock).await;
        let problems = &server.engine.registry().problems;
        assert!(
            problems.is_empty(),
            "bundled files have problems: {problems:?}"
        );
        server
    }

    async fn serve(project: &Project, env: Env, clock: Arc<dyn Clock>) -> Self {
        let data = TempDir::new().expect("creating the data directory");
        let engine =
            tether::app::open(project.path(), data.path(), &env).expect("opening the engine");
        engine.start_with_clock(clock).expect("starting the engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let (shutdown, signal) = oneshot::channel::<()>();
        let serving = Arc::clone(&engine);
        tokio::spawn(async move {
            let stop = async move {
                let _ = signal.await;
            };
            tether::web::server::serve(listener, serving, stop)
                .await
                .expect("serving");
        });
        TestServer {
            addr,
            engine,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Returns the data directory the server uses.
    pub fn data_path(&self) -> &Path {
        self._data.path()
    }

    /// Posts a Shopify-signed order webhook to the test-owned
    /// `forward-order` workflow.
    pub async fn post_shopify(
        &self,
        body: &[u8],
        signature: &str,
        webhook_id: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(FORWARD_ORDER_PATH))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", "orders/create")
            .header("X-Shopify-Shop-Domain", "lumen-trail.myshopify.com")
            .header("X-Shopify-Webhook-Id", webhook_id)
            .header("X-Shopify-Hmac-Sha256", signature)
            .body(body.to_vec())
            .send()
            .await
            .expect("sending the webhook")
    }

    /// Fetches a page and returns its status and HTML.
    pub async fn get_page(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status();
        (status, response.text().await.expect("a text answer"))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        response.json().await.expect("a JSON answer")
    }

    /// Polls the run until it reaches a terminal status.
    pub async fn wait_for_run(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let run = self.get_json(&format!("/api/runs/{run_id}")).await;
            let status = run["status"].as_str().unwrap_or("");
            if matches!(status, "succeeded" | "failed" | "skipped" | "cancelled") {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} did not finish: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A clock that always reads the same time, just after a whole hour.
/// Servers started without a clock of their own use it, so the bundled
/// schedules (hourly, every 10 minutes) never fire in the middle of a test
/// that counts runs. Tests of schedules pass their own clock.
pub struct StoppedClock;

impl Clock for StoppedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        "2026-01-05T09:00:30Z".parse().expect("a valid time")
    }
}

/// One request as the supplier stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Returns the value of one query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// What the supplier stand-in sends back for one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
    /// Time to wait before responding.
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: StatusCode, body: Value) -> Self {
        Answer {
            status,
            body,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Builds the supplier's success envelope around an order.
    pub fn order_created(order_id: &str) -> Self {
        Answer::json(
            StatusCode::OK,
            serde_json::json!({
                "code": 200, "result": true, "message": "Success",
                "data": { "orderId": order_id, "status": "CREATED" }
            }),
        )
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Chooses the response from the request and its 0-based position among all
/// requests received so far.
pub type Responder = Arc<dyn Fn(&Recorded, usize) -> Answer + Send + Sync>;

/// An HTTP server on 127.0.0.1 standing in for the supplier: records every
/// request and responds with what the responder returns for it.
pub struct Supplier {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Supplier {
    /// Answers every request with the same status and JSON body.
    pub async fn fixed(status: StatusCode, body: Value) -> Self {
        Self::start(Arc::new(move |_, _| Answer::json(status, body.clone()))).await
    }

    /// Answers like the supplier accepting an order.
    pub async fn accepting() -> Self {
        Self::start(Arc::new(|_, _| Answer::order_created("SO-2611-000123"))).await
    }

    /// Answers the n-th request with `answers[n]`, and later ones with the
    /// last answer.
    pub async fn sequence(answers: Vec<Answer>) -> Self {
        assert!(!answers.is_empty(), "a sequence needs at least one answer");
        Self::start(Arc::new(move |_, n| {
            answers[n.min(answers.len() - 1)].clone()
        }))
        .await
    }

    pub async fn start(responder: Responder) -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorder = Arc::clone(&requests);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let recorded = Recorded {
                    method,
                    path: uri.path().to_string(),
                    query: uri.query().unwrap_or("").to_string(),
                    headers,
                    body,
                    received_at: Instant::now(),
                };
                let answer = {
                    let mut log = recorder.lock().expect("recorder lock");
                    let answer = responder(&recorded, log.len());
                    log.push(recorded);
                    answer
                };
                async move {
                    tokio::time::sleep(answer.delay).await;
                    let mut response = (answer.status, axum::Json(answer.body)).into_response();
                    for (name, value) in answer.headers {
                        let value = value.parse().expect("a valid header value");
                        response.headers_mut().insert(name, value);
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the supplier");
        let addr = listener.local_addr().expect("supplier address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("supplier serving") });
        Supplier { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().expect("recorder lock").clone()
    }
}

/// Builds the environment the bundled workflows need, pointing at
/// `supplier`.
pub fn shop_env(supplier: &Supplier) -> Env {
    let mut pairs = vec![
        ("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET.to_string()),
        ("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN.to_string()),
        ("SUPPLIER_BASE_URL", supplier.url()),
    ];
    pairs.extend(
        CONNECTOR_SECRETS
            .iter()
            .map(|(name, value)| (*name, value.to_string())),
    );
    Env::from_pairs(pairs)
}

/// Secrets the bundled connectors and shop workflows read, with test
/// values. The location id is the one `ShopApis` stocks.
pub const CONNECTOR_SECRETS: [(&str, &str); 8] = [
    ("SHOPIFY_ADMIN_TOKEN", "shpat_test_admin"),
    ("WOOCOMMERCE_CONSUMER_KEY", "ck_test"),
    ("WOOCOMMERCE_CONSUMER_SECRET", "cs_test"),
    ("CJ_EMAIL", "ops@lumen-trail.example"),
    ("CJ_API_KEY", "cj_test_key"),
    ("SHOPIFY_LOCATION_ID", "655441491"),
    ("OPERATOR_EMAIL", OPERATOR_EMAIL),
    ("WOOCOMMERCE_WEBHOOK_SECRET", WOOCOMMERCE_WEBHOOK_SECRET),
];

/// Copies a sled data directory as its files are on disk, so a test can
/// read it while the store that wrote it is still open: sled opens a
/// directory once per process.
pub fn copy_data_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("reading the data directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("creating a directory");
            copy_data_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a file");
        }
    }
}
