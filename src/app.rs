//! Opening an engine: the data directory, the loaded workflow directory and
//! the shared script engine, wired together.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::Engine;
use crate::expr::{Limits, ScriptEngine};
use crate::store::{SledStore, StoreError};
use crate::workflow::{Env, load_dir};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not open the data directory {}: {source}; is another tether process using it?", dir.display())]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// Installs ring as the process's TLS provider. Safe to call more than once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads `dir` and opens the store in `data`. Files that fail validation are
/// logged and left out; the engine runs the others.
pub fn open(dir: &Path, data: &Path, env: &Env) -> Result<Arc<Engine>, OpenError> {
    install_tls_provider();
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_dir(dir, &scripts, env);
    for problem in &registry.problems {
        tracing::error!(problem = %problem, "workflow file has a problem and is not loaded");
    }
    tracing::info!(
        workflows = registry.workflows.len(),
        connectors = registry.connectors.len(),
        dir = %dir.display(),
        "loaded workflows"
    );
    let store = SledStore::open(data).map_err(|source| OpenError::Store {
        dir: data.to_path_buf(),
        source,
    })?;
    Ok(Engine::with_env(registry, Arc::new(store), scripts, env))
}

/// Time between two looks at the workflow directory for changes.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads `dir` into the engine when a file under `workflows/` or
/// `connectors/` changes (checked every [`WATCH_INTERVAL`]) and on SIGHUP.
/// Secrets are read from the environment again on each reload.
pub async fn watch(engine: Arc<Engine>, dir: PathBuf) {
    let mut last = fingerprint(&dir);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let asked = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let asked = std::future::pending::<bool>();
        let signalled = tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => false,
            received = asked => received,
        };
        if engine.is_stopping() {
            return;
        }
        let now = fingerprint(&dir);
        if signalled || now != last {
            tracing::info!(dir = %dir.display(), signalled, "reloading workflows");
            engine.reload(&dir, &Env::from_process());
            last = now;
        }
    }
}

/// Names, sizes and modification times of the YAML files under `dir`.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut files = Vec::new();
    for sub in ["workflows", "connectors"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            files.push((entry.path(), meta.len(), meta.modified().ok()));
        }
    }
    files.sort();
    files
}
