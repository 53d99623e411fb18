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
    Ok(Engine::new(registry, Arc::new(store), scripts))
}
