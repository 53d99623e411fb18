//! Shared set-up for the bench binaries: a temporary project with chosen
//! bundled files, an engine serving on 127.0.0.1, and a load generator of
//! concurrent keep-alive clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tether::engine::Engine;
use tether::expr::{Limits, ScriptEngine};
use tether::store::{CommitMode, SledStore};
use tether::workflow::{Env, load_dir};

pub struct Bench {
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    _project: TempDir,
    _data: TempDir,
}

/// Serves a project holding `files` (paths relative to the repository) and any
/// `extra` workflows, served over a fresh sled directory.
pub async fn serve(files: &[&str], extra: &[(&str, &str)], env: Env, mode: CommitMode) -> Bench {
    serve_with(files, extra, env, mode, true).await
}

/// Like [`serve`]; with `execute` false the engine stores runs but never
/// starts them, which measures ingest alone.
pub async fn serve_with(
    files: &[&str],
    extra: &[(&str, &str)],
    env: Env,
    mode: CommitMode,
    execute: bool,
) -> Bench {
    tether::app::install_tls_provider();
    let project = TempDir::new().expect("temporary project");
    for sub in ["workflows", "connectors"] {
        std::fs::create_dir_all(project.path().join(sub)).expect("project subdirectory");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in files {
        std::fs::copy(root.join(file), project.path().join(file)).expect("copying a bundled file");
    }
    for (name, text) in extra {
        std::fs::write(project.path().join("workflows").join(name), text)
            .expect("writing a workflow");
    }

    let data = TempDir::new().expect("temporary data directory");
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_dir(project.path(), &scripts, &env);
    assert!(
        registry.problems.is_empty(),
        "bench files have problems: {:?}",
        registry.problems
    );
    let store = SledStore::open_with(data.path(), mode).expect("opening the store");
    let engine = Engine::new(registry, Arc::new(store), scripts);
    if execute {
        engine.start().expect("starting the engine");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(tether::web::server::serve(
        listener,
        Arc::clone(&engine),
        std::future::pending(),
    ));
    Bench {
        engine,
        addr,
        _project: project,
        _data: data,
    }
}

/// Posts `total` requests from `concurrency` keep-alive clients; `request`
/// builds the n-th one. Returns the elapsed time once all were acknowledged
/// with `expected` status.
pub async fn load<F>(total: usize, concurrency: usize, expected: u16, request: F) -> Duration
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let per_client = total / concurrency;
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..concurrency {
        let request = Arc::clone(&request);
        senders.spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..per_client {
                let response = request(&client, sender * per_client + n)
                    .send()
                    .await
                    .expect("sending");
                assert_eq!(
                    response.status().as_u16(),
                    expected,
                    "unexpected response status"
                );
            }
        });
    }
    senders.join_all().await;
    started.elapsed()
}

pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Machine facts printed with every figure.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    format!("{cpus} cores, {model}")
}
