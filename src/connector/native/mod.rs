//! Native connectors: the ones whose protocol is not HTTP, written in Rust
//! behind one trait. A workflow calls them like any other connector
//! (`uses: kv.set`); their names are reserved.

mod email;
mod http;
mod kv;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::error::StepError;
use crate::store::Store;

pub use email::{EMAIL_OPERATIONS, Email};
pub use http::{HTTP_OPERATIONS, Http};
pub use kv::Kv;

/// Values a native call takes from the run that makes it.
pub struct NativeCall<'a> {
    pub store: &'a dyn Store,
    pub run_id: &'a str,
    /// `<run id>:<step>`, stable across retries of the same step.
    pub idempotency_key: &'a str,
}

#[async_trait]
pub trait NativeConnector: Send + Sync {
    fn name(&self) -> &'static str;

    fn operations(&self) -> &'static [&'static str];

    async fn call(
        &self,
        operation: &str,
        input: &Value,
        call: &NativeCall<'_>,
    ) -> Result<Value, StepError>;
}

/// Builds the native connectors every engine has, configured from `env`.
pub fn builtin(env: &crate::workflow::Env) -> Vec<Arc<dyn NativeConnector>> {
    vec![
        Arc::new(Kv),
        Arc::new(Email::from_env(env)),
        Arc::new(Http::new()),
    ]
}

/// Operations of the native connector `name`, if there is one.
pub fn operations(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "kv" => Some(Kv.operations()),
        "email" => Some(EMAIL_OPERATIONS),
        "http" => Some(HTTP_OPERATIONS),
        _ => None,
    }
}

/// Reads a required string field of a call's input.
pub(crate) fn required_str<'a>(
    input: &'a Value,
    field: &str,
    operation: &str,
) -> Result<&'a str, StepError> {
    match input.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(other) => Err(StepError::permanent(format!(
            "{operation}: `{field}` must be a non-empty string, got {other}"
        ))),
        None => Err(StepError::permanent(format!(
            "{operation}: missing `{field}` in `with`"
        ))),
    }
}
