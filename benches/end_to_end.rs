//! End-to-end runs per second: signed Shopify order webhooks into the
//! test-owned `forward-order` workflow of `tests/workflows/` (HMAC check,
//! durable ingest, the Rhai validation step, a journaled HTTP call to a
//! supplier stand-in on 127.0.0.1). The bundled `order-to-supplier` is held
//! to CJ Dropshipping's 1 request per second, which would measure that
//! limit instead of the engine. Counted from the first request until the supplier has
//! received every order and every run has succeeded.
//!
//! `cargo bench --bench end_to_end -- [ORDERS] [CONCURRENCY]`

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use tether::engine::run::RunStatus;
use tether::store::{CommitMode, RunQuery};
use tether::workflow::Env;

const SECRET: &str = "shpss_bench_secret";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let orders = args.first().copied().unwrap_or(10_000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let limit =
        std::env::var("TETHER_BENCH_WORKFLOW_CONCURRENCY").unwrap_or_else(|_| "none".to_string());
    println!(
        "end_to_end on {}: {orders} orders, {concurrency} concurrent senders, workflow concurrency limit: {limit}",
        support::machine()
    );
    runtime.block_on(run(orders, concurrency));
}

/// Returns the workflow's `concurrency` line. The test workflow limits
/// itself to 4 runs at once, so a bench with that limit would measure the
/// limit. The bench runs it without one, as a workflow gets by default,
/// unless `TETHER_BENCH_WORKFLOW_CONCURRENCY` sets one.
fn workflow_limit() -> String {
    std::env::var("TETHER_BENCH_WORKFLOW_CONCURRENCY")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .map(|limit| format!("concurrency: {limit}"))
        .unwrap_or_default()
}

async fn run(orders: usize, concurrency: usize) {
    let (supplier, received) = supplier().await;
    let env = Env::from_pairs([
        ("SHOPIFY_WEBHOOK_SECRET", SECRET.to_string()),
        ("SUPPLIER_API_TOKEN", "bench-token".to_string()),
        ("SUPPLIER_BASE_URL", format!("http://{supplier}")),
    ]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow = std::fs::read_to_string(root.join("tests/workflows/forward-order.yaml"))
        .expect("reading tests/workflows/forward-order.yaml")
        .replace("concurrency: 4", &workflow_limit());
    let bench = support::serve(
        &["connectors/supplier.yaml"],
        &[("forward-order.yaml", &workflow)],
        env,
        CommitMode::Group,
    )
    .await;

    let fixture_path = root.join("tests/fixtures/shopify-orders-create.json");
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_path).expect("fixture")).expect("JSON");
    let bodies: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
        (0..orders)
            .map(|n| {
                let mut order = fixture.clone();
                order["id"] = serde_json::json!(6_123_456_789_012_345_u64 + n as u64);
                let body = serde_json::to_vec(&order).expect("encoding");
                let signature = sign(&body);
                (body, signature)
            })
            .collect(),
    );

    let url = format!("http://{}/hooks/test/forward-order", bench.addr);
    let signed = Arc::clone(&bodies);
    let started = support::load(orders, concurrency, 202, move |client, n| {
        let (body, signature) = &signed[n];
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-shopify-webhook-id", format!("bench-{n}"))
            .header("x-shopify-hmac-sha256", signature)
            .body(body.clone())
    })
    .await;
    let acknowledged = started.elapsed();

    let sent = orders / concurrency * concurrency;
    while received.load(Ordering::SeqCst) < sent {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let query = RunQuery {
        status: Some(RunStatus::Succeeded),
        limit: sent,
        ..RunQuery::default()
    };
    while bench
        .engine
        .store()
        .list_runs(&query)
        .expect("listing")
        .len()
        < sent
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = started.elapsed();
    println!(
        "  {sent} webhooks acknowledged in {:.2} s; all runs succeeded after {:.2} s: {:.0} runs per second",
        acknowledged.as_secs_f64(),
        done.as_secs_f64(),
        support::per_second(sent, done)
    );
}

fn sign(body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A supplier stand-in that accepts every order and counts them.
async fn supplier() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/orders",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(serde_json::json!({
                    "code": 200, "result": true, "message": "Success",
                    "data": { "orderId": format!("SO-{n}") }
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving") });
    (addr, received)
}
