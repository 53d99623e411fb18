//! Acknowledged webhooks per second for the bundled `hello` workflow: the
//! engine serves on 127.0.0.1 over a temporary sled directory, and
//! concurrent keep-alive clients post small JSON bodies. Every answer is a
//! 202 sent after the event was flushed to disk.
//!
//! `cargo bench --bench webhook_ingest -- [REQUESTS] [CONCURRENCY]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tether::workflow::Env;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(requests, concurrency));
}

async fn run(requests: usize, concurrency: usize) {
    let project = tempfile::TempDir::new().expect("temporary project");
    let workflows = project.path().join("workflows");
    std::fs::create_dir_all(&workflows).expect("workflows directory");
    let hello = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows/hello.yaml");
    std::fs::copy(hello, workflows.join("hello.yaml")).expect("copying hello.yaml");
    let data = tempfile::TempDir::new().expect("temporary data directory");

    let engine = tether::app::open(project.path(), data.path(), &Env::default())
        .expect("opening the engine");
    engine.start().expect("starting the engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(tether::web::server::serve(
        listener,
        Arc::clone(&engine),
        std::future::pending(),
    ));

    let url = format!("http://{addr}/hooks/hello");
    let client = reqwest::Client::new();
    let per_client = requests / concurrency;
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        senders.spawn(async move {
            for n in 0..per_client {
                let body = format!("{{\"name\":\"sender {sender} request {n}\"}}");
                let response = client.post(&url).body(body).send().await.expect("POST");
                assert_eq!(response.status(), 202, "every webhook is acknowledged");
            }
        });
    }
    senders.join_all().await;
    let elapsed = started.elapsed();
    let sent = per_client * concurrency;

    println!(
        "webhook_ingest: {sent} acknowledged webhooks in {:.2} s with {concurrency} concurrent senders: {:.0} per second",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
}
