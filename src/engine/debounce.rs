//! Debounced triggers: events whose key is equal within the window of the
//! first one fold into one run. The run is stored waiting until the window
//! closes, each later event replaces its trigger event, and it starts with
//! the last one. The pending run of each key is kept in the store's state
//! (`debounce/<workflow>/<key>`), so folding survives a restart.

use chrono::Utc;
use serde_json::Value;

use super::run::{Run, RunStatus, TriggerEvent};
use super::{Engine, EngineError, Submitted};
use crate::expr::Context;
use crate::store::{Inserted, StoreError};
use crate::workflow::model::Debounce;

fn state_key(workflow: &str, key: &str) -> String {
    format!("debounce/{workflow}/{key}")
}

pub(super) async fn submit(
    engine: &Engine,
    workflow: &str,
    trigger: TriggerEvent,
    debounce: &Debounce,
) -> Result<Submitted, EngineError> {
    let mut run = engine.create_run(workflow, trigger)?;
    let mut context = Context::new();
    context.set("trigger", &run.trigger.to_scope_value());
    if let Some(definition) = engine.registry().workflow(workflow) {
        context.set("vars", &definition.vars);
    }
    let key = match engine.scripts.render(&debounce.key, &context) {
        Ok(Value::String(key)) => key,
        Ok(other) => other.to_string(),
        Err(error) => {
            // The event still runs, only on its own.
            tracing::warn!(workflow, %error, "evaluating the debounce key failed; the event runs alone");
            format!("unkeyed-{}", run.id)
        }
    };
    let state = state_key(workflow, &key);

    let _guard = engine.debounce_lock.lock().await;
    if let Some(pending) = pending_run(engine, &state)? {
        engine.store.save_trigger(&pending, &run.trigger)?;
        engine.store.sync().await?;
        tracing::info!(run_id = %pending, workflow, key, "event folded into the pending run");
        return Ok(Submitted::New(pending));
    }

    let wake_at =
        Utc::now() + chrono::Duration::from_std(debounce.window).unwrap_or(chrono::Duration::MAX);
    run.status = RunStatus::Waiting;
    run.wake_at = Some(wake_at);
    run.debounce_key = Some(key.clone());
    let dedup = run.trigger.dedup_key.clone();
    let not_flushed = match engine.store.insert_run(&run, dedup.as_deref()).await {
        Ok(Inserted::New) => None,
        Ok(Inserted::Duplicate(first)) => return Ok(Submitted::Duplicate(first)),
        // The run is written and may be on disk, so it still gets its timer,
        // and a repeated event folds into it.
        Err(
            error @ StoreError::NotFlushed {
                inserted: Inserted::New,
                ..
            },
        ) => Some(error),
        Err(error) => return Err(error.into()),
    };
    engine.store.put_state(&state, run.id.as_bytes())?;
    let flushed = match not_flushed {
        None => engine.store.sync().await,
        Some(error) => Err(error),
    };
    engine.schedule(wake_at, &run.id);
    flushed?;
    tracing::info!(run_id = %run.id, workflow, key, wake_at = %wake_at.to_rfc3339(), "debounced run waiting for its window");
    Ok(Submitted::New(run.id))
}

/// Returns the run still waiting for events of this key, if any.
fn pending_run(engine: &Engine, state: &str) -> Result<Option<String>, EngineError> {
    let Some(bytes) = engine.store.get_state(state)? else {
        return Ok(None);
    };
    let run_id = String::from_utf8_lossy(&bytes).into_owned();
    if run_id.is_empty() {
        return Ok(None);
    }
    let waiting = engine
        .store
        .load_run(&run_id)?
        .is_some_and(|run| run.status == RunStatus::Waiting);
    Ok(waiting.then_some(run_id))
}

/// Called when a debounced run starts: closes its window to new events and
/// takes the last event folded into it.
pub(super) async fn claim(engine: &Engine, run: &mut Run) -> Result<(), EngineError> {
    let Some(key) = run.debounce_key.clone() else {
        return Ok(());
    };
    let state = state_key(&run.workflow, &key);
    let _guard = engine.debounce_lock.lock().await;
    if engine.store.get_state(&state)?.as_deref() == Some(run.id.as_bytes()) {
        engine.store.put_state(&state, b"")?;
    }
    if let Some(stored) = engine.store.load_run(&run.id)? {
        run.trigger = stored.trigger;
    }
    Ok(())
}
