//! tether: a code-first workflow automation engine. Operators write
//! workflows in YAML; one process runs them durably, with state in sled.
//!
//! - [`workflow`]: workflow files, raw and validated, and loading them.
//! - [`expr`]: the sandboxed Rhai engine, `${{ }}` templates, decimal money.
//! - [`connector`]: connector files and the HTTP runtime.
//! - [`trigger`]: webhook verification and trigger events.
//! - [`engine`]: runs, their journal, workers and retries.
//! - [`store`]: the storage trait and its sled implementation.
//! - [`web`]: the axum router for webhooks, the API and the dashboard.
//! - [`metrics`]: Prometheus metrics of the engine and the listener.

/// mimalloc in place of the system allocator: a run allocates many small
/// values (JSON, script values, HTTP headers), and glibc's malloc and free
/// took about a seventh of the CPU of the end-to-end benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod connector;
pub mod engine;
pub mod expr;
pub mod metrics;
pub mod store;
pub mod trigger;
pub mod web;
pub mod workflow;
