//! Shared set-up for the bench binaries: a temporary project with chosen
//! bundled files, an engine serving on 127.0.0.1, and a load generator of
//! concurrent keep-alive clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tempfile::TempDir;
use tether::engine::Engine;
use tether::engine::run::{Run, RunStatus, StepRecord, TriggerEvent};
use tether::expr::{Limits, ScriptEngine};
use tether::store::{CommitMode, Inserted, KvWrite, Result, RunQuery, SledStore, Store};
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
    serve_with(files, extra, env, mode, true, false).await
}

/// Like [`serve`]; with `execute` false the engine stores runs but never
/// starts them, which measures ingest alone. With `discard` the store
/// reports every new run as stored and writes nothing: the same server
/// without storage.
pub async fn serve_with(
    files: &[&str],
    extra: &[(&str, &str)],
    env: Env,
    mode: CommitMode,
    execute: bool,
    discard: bool,
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
    let store: Arc<dyn Store> = if discard {
        Arc::new(Discarding(store))
    } else {
        Arc::new(store)
    };
    let engine = Engine::new(registry, store, scripts);
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
/// builds the n-th one. Returns when all were acknowledged with `expected`
/// status, with the instant the first request was sent.
pub async fn load<F>(total: usize, concurrency: usize, expected: u16, request: F) -> Instant
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let per_client = total / concurrency;
    // Clients are built before the clock starts, because each one loads the
    // system's root certificates, which is not part of what is measured.
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| reqwest::Client::new()).collect();
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for (sender, client) in clients.into_iter().enumerate() {
        let request = Arc::clone(&request);
        senders.spawn(async move {
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
    started
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

/// A store that drops new runs instead of writing them, for the no-storage
/// figure of the same server. Everything else goes to the wrapped store.
struct Discarding(SledStore);

#[async_trait::async_trait]
impl Store for Discarding {
    async fn insert_run(&self, _run: &Run, _dedup_key: Option<&str>) -> Result<Inserted> {
        Ok(Inserted::New)
    }
    fn claim_key(&self, workflow: &str, dedup_key: &str) -> Result<bool> {
        self.0.claim_key(workflow, dedup_key)
    }
    fn expire_claims(&self, workflow: &str, prefix: &str, older: DateTime<Utc>) -> Result<usize> {
        self.0.expire_claims(workflow, prefix, older)
    }
    fn save_run(&self, run: &Run) -> Result<()> {
        self.0.save_run(run)
    }
    fn save_trigger(&self, run_id: &str, trigger: &TriggerEvent) -> Result<()> {
        self.0.save_trigger(run_id, trigger)
    }
    fn save_step(&self, run_id: &str, step: &StepRecord) -> Result<()> {
        self.0.save_step(run_id, step)
    }
    fn remove_steps(&self, run_id: &str, path_prefix: &str) -> Result<()> {
        self.0.remove_steps(run_id, path_prefix)
    }
    async fn sync(&self) -> Result<()> {
        self.0.sync().await
    }
    async fn sync_within(&self, window: std::time::Duration) -> Result<()> {
        self.0.sync_within(window).await
    }
    fn load_run(&self, id: &str) -> Result<Option<Run>> {
        self.0.load_run(id)
    }
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.0.list_runs(query)
    }
    fn count_runs(&self, workflow: &str, status: RunStatus, since: DateTime<Utc>) -> Result<usize> {
        self.0.count_runs(workflow, status, since)
    }
    fn count_in_status(&self, status: RunStatus) -> Result<usize> {
        self.0.count_in_status(status)
    }
    fn delete_finished_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<usize> {
        self.0.delete_finished_before(cutoff, limit)
    }
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.0.get_state(key)
    }
    fn put_state(&self, key: &str, value: &[u8]) -> Result<()> {
        self.0.put_state(key, value)
    }
    fn kv_get(&self, key: &str) -> Result<Option<serde_json::Value>> {
        self.0.kv_get(key)
    }
    fn kv_list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        self.0.kv_list(prefix, after, limit)
    }
    fn kv_write(&self, key: &str, write: KvWrite, key_once: &str) -> Result<serde_json::Value> {
        self.0.kv_write(key, write, key_once)
    }
    fn unfinished_runs(&self) -> Result<Vec<Run>> {
        self.0.unfinished_runs()
    }
}
