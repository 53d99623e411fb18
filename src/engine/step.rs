//! Runs one step: journals each attempt before it starts and the result
//! before returning, and retries failures that may succeed later.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;

use super::error::StepError;
use super::run::{Attempt, StepRecord, StepStatus};
use super::{Engine, EngineError};
use crate::connector::CallContext;
use crate::expr::{Context, EvalError};
use crate::workflow::model::RetryPolicy;
use crate::workflow::{Step, StepKind, Workflow};

/// How a step, or a list of steps, ended.
#[derive(Debug, Clone)]
pub(crate) enum StepOutcome {
    Succeeded(Value),
    /// A script called `skip(reason)`: the run ends as skipped.
    Skipped(String),
    /// The step failed for good; the message names the step.
    Failed(String),
}

/// Result of one attempt, before retry rules apply.
enum AttemptResult {
    Output(Value),
    Skip(String),
    Fail(String),
    Error(StepError),
}

pub(crate) async fn run(
    engine: &Engine,
    workflow: &Workflow,
    run_id: &str,
    step: &Step,
    mut record: StepRecord,
    context: Context,
) -> Result<(StepRecord, StepOutcome), EngineError> {
    let policy = step.retry.clone().unwrap_or_else(|| workflow.retry.clone());
    let redactor = engine.registry().redactor.clone();
    let context = Arc::new(context);

    loop {
        let number = record.attempts.len() as u32 + 1;
        record.status = StepStatus::Running;
        record.attempts.push(Attempt {
            number,
            started_at: Utc::now(),
            finished_at: None,
            error: None,
        });
        engine.store().save_step(run_id, &record)?;
        if step.kind.has_side_effects() {
            // The attempt must be on disk before the remote side sees it.
            engine.store().sync().await?;
        }

        let span = tracing::info_span!("step", run_id, workflow = %workflow.name, step = %step.id, attempt = number);
        let result = attempt(engine, workflow, run_id, step, &context, &mut record)
            .instrument(span)
            .await;

        let finished = Utc::now();
        if let Some(last) = record.attempts.last_mut() {
            last.finished_at = Some(finished);
        }
        let outcome = match result {
            AttemptResult::Output(output) => {
                record.status = StepStatus::Succeeded;
                record.output = Some(redactor.value(&output));
                StepOutcome::Succeeded(output)
            }
            AttemptResult::Skip(reason) => {
                record.status = StepStatus::Skipped;
                record.error = Some(reason.clone());
                StepOutcome::Skipped(reason)
            }
            AttemptResult::Fail(reason) => {
                record.status = StepStatus::Failed;
                record.error = Some(redactor.text(&reason));
                StepOutcome::Failed(reason)
            }
            AttemptResult::Error(error) => {
                let message = redactor.text(&error.message);
                if let Some(last) = record.attempts.last_mut() {
                    last.error = Some(message.clone());
                }
                if let Some(wait) = retry_delay(&policy, number, &error) {
                    tracing::warn!(run_id, workflow = %workflow.name, step = %step.id, attempt = number, error = %message, wait_ms = wait.as_millis() as u64, "step failed, retrying");
                    engine.store().save_step(run_id, &record)?;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                tracing::warn!(run_id, workflow = %workflow.name, step = %step.id, attempt = number, error = %message, "step failed");
                record.status = StepStatus::Failed;
                record.error = Some(message.clone());
                StepOutcome::Failed(format!("step `{}` failed: {message}", step.id))
            }
        };
        record.finished_at = Some(finished);
        engine.store().save_step(run_id, &record)?;
        return Ok((record, outcome));
    }
}

/// Wait before the next attempt, or `None` when the failure is final.
fn retry_delay(policy: &RetryPolicy, number: u32, error: &StepError) -> Option<Duration> {
    if !error.is_transient() || number >= policy.attempts {
        return None;
    }
    let base = policy.base_delay(number + 1);
    let jitter = base.mul_f64(policy.jitter * rand_fraction());
    let wait = base.saturating_sub(jitter);
    Some(error.retry_after.map_or(wait, |asked| asked.max(wait)))
}

/// A fraction in [0, 1) from the clock, enough to spread retries apart.
fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

async fn attempt(
    engine: &Engine,
    workflow: &Workflow,
    run_id: &str,
    step: &Step,
    context: &Arc<Context>,
    record: &mut StepRecord,
) -> AttemptResult {
    let work = async {
        match &step.kind {
            StepKind::Script(script) => run_script(engine, script, context).await,
            StepKind::Uses {
                connector,
                operation,
                with,
            } => {
                let input = match engine.scripts.render_value(with, context) {
                    Ok(input) => input,
                    Err(error) => {
                        return AttemptResult::Error(StepError::permanent(format!(
                            "evaluating `with` failed: {error}"
                        )));
                    }
                };
                record.input = Some(engine.registry().redactor.value(&input));
                call(engine, run_id, step, connector, operation, &input).await
            }
        }
    };
    match step.timeout.or(workflow.timeout) {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => AttemptResult::Error(StepError::transient(format!(
                "step timed out after {}",
                humantime::format_duration(limit)
            ))),
        },
    }
}

async fn run_script(
    engine: &Engine,
    script: &crate::expr::Script,
    context: &Arc<Context>,
) -> AttemptResult {
    let scripts = engine.scripts.clone();
    let script = script.clone();
    let context = Arc::clone(context);
    // Scripts run on the blocking pool so a long one never stalls the
    // server; the sandbox's operation and time limits end runaway ones.
    let evaluated =
        tokio::task::spawn_blocking(move || scripts.eval_script(&script, &context)).await;
    match evaluated {
        Ok(Ok(output)) => AttemptResult::Output(output),
        Ok(Err(EvalError::Skip(reason))) => AttemptResult::Skip(reason),
        Ok(Err(EvalError::Fail(reason))) => AttemptResult::Fail(reason),
        Ok(Err(error)) => AttemptResult::Error(StepError::permanent(error.to_string())),
        Err(join) => AttemptResult::Error(StepError::permanent(format!("script panicked: {join}"))),
    }
}

async fn call(
    engine: &Engine,
    run_id: &str,
    step: &Step,
    connector: &str,
    operation: &str,
    input: &Value,
) -> AttemptResult {
    let registry = engine.registry();
    let Some(connector) = registry.connectors.get(connector) else {
        return AttemptResult::Error(StepError::permanent(format!(
            "connector `{connector}` is not loaded"
        )));
    };
    let Some(spec) = connector.operations.get(operation) else {
        let message = format!(
            "connector `{}` has no operation `{operation}`",
            connector.name
        );
        return AttemptResult::Error(StepError::permanent(message));
    };
    let key = format!("{run_id}:{}", step.id);
    let call = CallContext {
        run_id,
        idempotency_key: &key,
        input,
    };
    match engine.http.call(connector, operation, spec, &call).await {
        Ok(output) => AttemptResult::Output(output),
        Err(error) => AttemptResult::Error(error),
    }
}
