//! `kv`: durable key-value state shared by workflows, such as a SKU's
//! supplier variant or the last price pushed. Writes apply exactly once per
//! step: each is stored with the step's idempotency key in one transaction,
//! and a repeated call (after a crash or a retry) returns the first result
//! without applying it again.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{NativeCall, NativeConnector, required_str};
use crate::engine::error::StepError;
use crate::store::KvWrite;

pub struct Kv;

const OPERATIONS: &[&str] = &[
    "get",
    "list",
    "set",
    "compare_and_set",
    "increment",
    "delete",
];

/// Maximum number of entries one `kv.list` call returns.
const MAX_LIST: usize = 10_000;

#[async_trait]
impl NativeConnector for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
        call: &NativeCall<'_>,
    ) -> Result<Value, StepError> {
        let name = format!("kv.{operation}");
        if operation == "list" {
            return list(input, call, &name);
        }
        let key = required_str(input, "key", &name)?.to_string();
        let write = match operation {
            "get" => {
                let found = call
                    .store
                    .kv_get(&key)
                    .map_err(|e| storage_error(&name, &e))?;
                let default = input.get("default").cloned().unwrap_or(Value::Null);
                return Ok(json!({ "found": found.is_some(), "value": found.unwrap_or(default) }));
            }
            "set" => KvWrite::Set {
                value: input.get("value").cloned().unwrap_or(Value::Null),
            },
            "compare_and_set" => KvWrite::CompareAndSet {
                expected: input.get("expected").cloned().unwrap_or(Value::Null),
                value: input.get("value").cloned().unwrap_or(Value::Null),
            },
            "increment" => KvWrite::Increment {
                by: match input.get("by") {
                    None => 1,
                    Some(by) => by.as_i64().ok_or_else(|| {
                        StepError::permanent(format!("{name}: `by` must be an integer, got {by}"))
                    })?,
                },
            },
            "delete" => KvWrite::Delete,
            other => {
                let known = OPERATIONS.join(", ");
                return Err(StepError::permanent(format!(
                    "kv has no operation `{other}`; use one of {known}"
                )));
            }
        };
        let result = call
            .store
            .kv_write(&key, write, call.idempotency_key)
            .map_err(|e| storage_error(&name, &e))?;
        call.store
            .sync()
            .await
            .map_err(|e| storage_error(&name, &e))?;
        Ok(result)
    }
}

/// Entries under a key prefix, for walking every mapped SKU. Gives
/// `entries` (`key` and `value` each) and `next`, the key to pass as
/// `after` for the following entries, or null after the last one.
fn list(input: &Value, call: &NativeCall<'_>, name: &str) -> Result<Value, StepError> {
    // An empty prefix lists every key.
    let prefix = match input.get("prefix") {
        Some(Value::String(prefix)) => prefix.as_str(),
        Some(other) => {
            return Err(StepError::permanent(format!(
                "{name}: `prefix` must be a string, got {other}"
            )));
        }
        None => {
            return Err(StepError::permanent(format!(
                "{name}: missing `prefix` in `with`"
            )));
        }
    };
    let after = match input.get("after") {
        None | Some(Value::Null) => None,
        Some(Value::String(after)) => Some(after.as_str()),
        Some(other) => {
            return Err(StepError::permanent(format!(
                "{name}: `after` must be a key (a string), got {other}"
            )));
        }
    };
    let limit = match input.get("limit") {
        None | Some(Value::Null) => 1_000,
        Some(limit) => match limit.as_u64() {
            Some(n @ 1..) if n as usize <= MAX_LIST => n as usize,
            _ => {
                return Err(StepError::permanent(format!(
                    "{name}: `limit` must be a whole number from 1 to {MAX_LIST}, got {limit}"
                )));
            }
        },
    };
    let mut entries = call
        .store
        .kv_list(prefix, after, limit + 1)
        .map_err(|e| storage_error(name, &e))?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = match (more, entries.last()) {
        (true, Some((key, _))) => Value::String(key.clone()),
        _ => Value::Null,
    };
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    Ok(json!({ "entries": entries, "next": next }))
}

fn storage_error(name: &str, error: &crate::store::StoreError) -> StepError {
    match error {
        crate::store::StoreError::Kv(message) => StepError::permanent(format!("{name}: {message}")),
        other => StepError::transient(format!("{name}: {other}")),
    }
}
