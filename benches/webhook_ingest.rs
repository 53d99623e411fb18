//! Acknowledged webhooks per second for the bundled `hello` workflow, with
//! group commit, with one flush per event, and for the same server with a
//! store that drops every new run ("no storage"). A bare axum handler that
//! responds 202 gives the framework's own ceiling. With storage, every 202 is
//! sent after the event was flushed to disk; each mode is measured with the
//! engine only storing runs ("ingest only") and with it also executing them
//! on the same cores ("runs executing").
//!
//! Each request sends `{"name":"request N"}`. With `--body=FILE`, it sends
//! the JSON object in that file instead, such as a store's order payload,
//! with the request's number added as `"n"` so that no two bodies are the
//! same.
//!
//! `cargo bench --bench webhook_ingest -- [REQUESTS] [CONCURRENCY] [bare|none|group|per-event] [--ingest-only] [--body=FILE]`

mod support;

use std::net::SocketAddr;

use axum::http::StatusCode;
use tether::store::CommitMode;
use tether::workflow::Env;

fn main() {
    let only = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err());
    let wanted = |mode: &str| only.as_deref().is_none_or(|only| only == mode);
    let ingest_only = std::env::args().any(|a| a == "--ingest-only");
    let body = std::env::args()
        .find_map(|a| a.strip_prefix("--body=").map(str::to_string))
        .map(|path| Payload::read(&path));
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let load = Load {
        requests,
        concurrency,
        body,
    };
    tether::app::install_tls_provider();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!(
        "webhook_ingest on {}: {requests} requests, {concurrency} concurrent senders",
        support::machine()
    );

    runtime.block_on(async {
        let hello = ["workflows/hello.yaml"];
        if wanted("bare") {
            let bare = bare_axum().await;
            report("bare axum handler (202 only)", &load, bare).await;
        }
        let mut baseline = None;
        if wanted("none") {
            let none =
                support::serve_with(&hello, &[], Env::default(), CommitMode::Group, false, true)
                    .await;
            let rate = report("no storage (same server)", &load, none.addr).await;
            baseline = Some(rate);
        }
        let modes = [
            ("group", "group commit", CommitMode::Group),
            ("per-event", "one flush per event", CommitMode::PerSync),
        ];
        for (name, label, mode) in modes {
            if !wanted(name) {
                continue;
            }
            let stored = support::serve_with(&hello, &[], Env::default(), mode, false, false).await;
            let rate = report(&format!("{label}, ingest only"), &load, stored.addr).await;
            if let Some(baseline) = baseline {
                println!(
                    "    {:.0} % of the no-storage figure",
                    rate * 100.0 / baseline
                );
            }
            if ingest_only {
                continue;
            }
            let executing = support::serve(&hello, &[], Env::default(), mode).await;
            report(&format!("{label}, runs executing"), &load, executing.addr).await;
        }
    });
}

struct Load {
    requests: usize,
    concurrency: usize,
    body: Option<Payload>,
}

/// A JSON object sent as every request's body, split after its opening
/// brace so each request can add its number.
#[derive(Clone)]
struct Payload {
    rest: String,
}

impl Payload {
    fn read(path: &str) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("reading the body file {path} failed: {error}"));
        let Some(rest) = text.trim_start().strip_prefix('{') else {
            panic!(
                "the body file {path} must contain a JSON object, such as tests/fixtures/shopify-orders-create.json"
            );
        };
        Payload {
            rest: rest.to_string(),
        }
    }

    fn numbered(&self, n: usize) -> String {
        if self.rest.trim_start().starts_with('}') {
            return format!("{{\"n\":{n}}}");
        }
        format!("{{\"n\":{n},{}", self.rest)
    }
}

/// Sends the load, prints the figure and returns it.
async fn report(label: &str, load: &Load, addr: SocketAddr) -> f64 {
    let Load {
        requests,
        concurrency,
        ..
    } = *load;
    let url = format!("http://{addr}/hooks/hello");
    let payload = load.body.clone();
    let started = support::load(requests, concurrency, 202, move |client, n| {
        let body = match &payload {
            Some(payload) => payload.numbered(n),
            None => format!("{{\"name\":\"request {n}\"}}"),
        };
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    })
    .await;
    let elapsed = started.elapsed();
    let sent = requests / concurrency * concurrency;
    let rate = support::per_second(sent, elapsed);
    println!(
        "  {label:<36} {rate:>8.0} acknowledged per second ({sent} in {:.2} s)",
        elapsed.as_secs_f64()
    );
    rate
}

/// Starts an axum server that reads the body and responds 202 with a new
/// id, and does nothing else.
async fn bare_axum() -> SocketAddr {
    let app = axum::Router::new().route(
        "/hooks/hello",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let _ = body;
            let id = uuid::Uuid::now_v7().to_string();
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({ "run_id": id })),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving") });
    addr
}
