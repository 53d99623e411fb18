//! Runs one step: journals each attempt before it starts and the result
//! before returning, retries failures that may succeed later, and parks the
//! run when it has to wait long.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::Instrument;

use super::error::StepError;
use super::run::{Attempt, StepRecord, StepStatus};
use super::{Engine, EngineError};
use crate::connector::CallContext;
use crate::expr::{Context, EvalError, Template};
use crate::workflow::model::RetryPolicy;
use crate::workflow::{Step, StepKind, Workflow};

/// Retry waits up to this long are slept in the worker; longer ones park
/// the run on a durable timer and free the worker.
const MAX_WAIT_IN_WORKER: Duration = Duration::from_secs(30);

/// Outcome of a step, or of a list of steps.
#[derive(Debug, Clone)]
pub(crate) enum StepOutcome {
    Succeeded(Value),
    /// A script called `skip(reason)`: the run ends as skipped.
    Skipped(String),
    /// The step failed for good; the message names the step.
    Failed(String),
    /// The step waits until this time; the run is parked until then.
    Park(DateTime<Utc>),
}

/// Result of one attempt, before retry rules apply.
enum AttemptResult {
    Output(Value),
    Skip(String),
    Fail(String),
    Error(StepError),
}

/// Inputs of a step: its place in the run and the time it must end by.
pub(crate) struct StepScope<'a> {
    pub workflow: &'a Workflow,
    pub run_id: &'a str,
    /// Path of the step in the run, such as `steps[1]` or
    /// `steps[2].foreach[17].steps[0]`.
    pub path: &'a str,
    pub step: &'a Step,
    pub context: Arc<Context>,
    /// Time left before the workflow's own timeout.
    pub remaining: Option<Duration>,
}

pub(crate) async fn run(
    engine: &Engine,
    scope: &StepScope<'_>,
    mut record: StepRecord,
) -> Result<(StepRecord, StepOutcome), EngineError> {
    let outcome = match &scope.step.kind {
        StepKind::Delay(_) | StepKind::WaitUntil(_) => wait(engine, scope, &mut record).await?,
        _ => attempts(engine, scope, &mut record).await?,
    };
    if !matches!(outcome, StepOutcome::Park(_)) {
        record.finished_at = Some(Utc::now());
    }
    engine.store().save_step(scope.run_id, &record)?;
    Ok((record, outcome))
}

/// A `delay` or `wait_until` step: computes its wake time once, journals
/// it, and succeeds once that time has passed.
async fn wait(
    engine: &Engine,
    scope: &StepScope<'_>,
    record: &mut StepRecord,
) -> Result<StepOutcome, EngineError> {
    let wake_at = match record.wake_at {
        Some(wake_at) => wake_at,
        None => {
            let wake_at = match wake_time(engine, scope) {
                Ok(wake_at) => wake_at,
                Err(message) => {
                    record.status = StepStatus::Failed;
                    record.error = Some(message.clone());
                    let message = failure(&scope.step.id, scope.path, &message);
                    return Ok(StepOutcome::Failed(message));
                }
            };
            record.wake_at = Some(wake_at);
            record.attempts.push(Attempt {
                number: 1,
                started_at: Utc::now(),
                finished_at: None,
                error: None,
            });
            wake_at
        }
    };
    if wake_at > Utc::now() {
        return Ok(StepOutcome::Park(wake_at));
    }
    let output = serde_json::json!({ "waited_until": wake_at.to_rfc3339() });
    record.status = StepStatus::Succeeded;
    record.output = Some(output.clone());
    if let Some(last) = record.attempts.last_mut() {
        last.finished_at = Some(Utc::now());
    }
    Ok(StepOutcome::Succeeded(output))
}

fn wake_time(engine: &Engine, scope: &StepScope<'_>) -> Result<DateTime<Utc>, String> {
    match &scope.step.kind {
        StepKind::Delay(delay) => {
            let delay = chrono::Duration::from_std(*delay)
                .map_err(|_| format!("delay {delay:?} is too long"))?;
            Ok(Utc::now() + delay)
        }
        StepKind::WaitUntil(template) => wait_until(engine, template, &scope.context),
        _ => unreachable!("only wait steps compute a wake time"),
    }
}

fn wait_until(
    engine: &Engine,
    template: &Template,
    context: &Context,
) -> Result<DateTime<Utc>, String> {
    let value = engine
        .scripts
        .render(template, context)
        .map_err(|error| format!("evaluating `wait_until` failed: {error}"))?;
    let text = value.as_str().unwrap_or_default();
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`wait_until` gave {value}, expected an RFC 3339 time such as 2026-12-24T09:00:00Z"
            )
        })
}

/// Attempts a `uses` or `script` step until it succeeds, fails for good, or
/// has to wait long enough to park.
async fn attempts(
    engine: &Engine,
    scope: &StepScope<'_>,
    record: &mut StepRecord,
) -> Result<StepOutcome, EngineError> {
    let (workflow, step, run_id) = (scope.workflow, scope.step, scope.run_id);
    let policy = step.retry.as_ref().unwrap_or(&workflow.retry);
    let redactor = engine.registry().redactor.clone();
    let operation = operation_name(step);

    if let Some(wake_at) = record.wake_at {
        if wake_at > Utc::now() {
            return Ok(StepOutcome::Park(wake_at));
        }
        record.wake_at = None;
    }

    loop {
        let number = record.attempts.len() as u32 + 1;
        record.status = StepStatus::Running;
        record.attempts.push(Attempt {
            number,
            started_at: Utc::now(),
            finished_at: None,
            error: None,
        });
        if step.kind.has_side_effects() {
            // The attempt must be on disk before the remote side receives it.
            // A step without side effects is journaled with its result.
            engine.store().save_step(run_id, record)?;
            engine.store().sync().await?;
        }

        let span = tracing::info_span!("step", run_id, workflow = %workflow.name, step = %step.id, attempt = number);
        let started = std::time::Instant::now();
        let result = attempt(engine, scope, record).instrument(span).await;
        let seconds = started.elapsed().as_secs_f64();
        engine.metrics().step_attempted(&operation, seconds);
        if let Some(last) = record.attempts.last_mut() {
            last.finished_at = Some(Utc::now());
        }

        let error = match result {
            AttemptResult::Output(output) => {
                record.status = StepStatus::Succeeded;
                record.output = Some(redactor.value(&output));
                record.error = None;
                return Ok(StepOutcome::Succeeded(output));
            }
            AttemptResult::Skip(reason) => {
                record.status = StepStatus::Skipped;
                record.error = Some(reason.clone());
                return Ok(StepOutcome::Skipped(reason));
            }
            AttemptResult::Fail(reason) => {
                record.status = StepStatus::Failed;
                record.error = Some(redactor.text(&reason));
                return Ok(StepOutcome::Failed(reason));
            }
            AttemptResult::Error(error) => error,
        };

        let message = redactor.text(&error.message);
        if let Some(last) = record.attempts.last_mut() {
            last.error = Some(message.clone());
        }
        let used = record.attempts.len() - record.budget_start.min(record.attempts.len());
        let Some(wait) = retry_delay(policy, used as u32, &error) else {
            tracing::warn!(run_id, workflow = %workflow.name, step = %step.id, attempt = number, error = %message, "step failed");
            record.status = StepStatus::Failed;
            record.error = Some(message.clone());
            return Ok(StepOutcome::Failed(failure(&step.id, scope.path, &message)));
        };

        tracing::warn!(run_id, workflow = %workflow.name, step = %step.id, attempt = number, error = %message, wait_ms = wait.as_millis() as u64, "step failed, retrying");
        engine.metrics().step_retried(&operation);
        let wake_at =
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        if wait > MAX_WAIT_IN_WORKER.min(policy.max_backoff) || engine.is_stopping() {
            record.wake_at = Some(wake_at);
            return Ok(StepOutcome::Park(wake_at));
        }
        engine.store().save_step(run_id, record)?;
        if !engine.sleep_unless_stopping(wait).await {
            record.wake_at = Some(wake_at);
            return Ok(StepOutcome::Park(wake_at));
        }
    }
}

/// Formats the run's error for a step that failed for good: its id, where it ran
/// and why, such as "step `place` (steps[0].foreach[17].steps[0]) failed: …".
pub(crate) fn failure(id: &str, path: &str, message: &str) -> String {
    format!("step `{id}` ({path}) failed: {message}")
}

/// Wait before the next attempt, or `None` when the failure is final.
/// `used` counts the attempts made within the current budget.
fn retry_delay(policy: &RetryPolicy, used: u32, error: &StepError) -> Option<Duration> {
    if !error.is_transient() || used >= policy.attempts {
        return None;
    }
    let base = policy.base_delay(used + 1);
    let jitter = base.mul_f64(policy.jitter * random_fraction());
    let wait = base.saturating_sub(jitter);
    Some(error.retry_after.map_or(wait, |asked| asked.max(wait)))
}

/// Returns a fraction in [0, 1) from the clock, enough to spread retries
/// apart.
fn random_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// Returns the metrics label of a step's work: `connector.operation` or
/// `script`.
fn operation_name(step: &Step) -> String {
    match &step.kind {
        StepKind::Uses {
            connector,
            operation,
            ..
        } => format!("{connector}.{operation}"),
        _ => "script".to_string(),
    }
}

async fn attempt(engine: &Engine, scope: &StepScope<'_>, record: &mut StepRecord) -> AttemptResult {
    let step = scope.step;
    let work = async {
        match &step.kind {
            StepKind::Script(script) => run_script(engine, script, &scope.context).await,
            StepKind::Uses {
                connector,
                operation,
                with,
            } => {
                let input = match engine.scripts.render_value(with, &scope.context) {
                    Ok(input) => input,
                    Err(error) => {
                        let message = format!("evaluating `with` failed: {error}");
                        return AttemptResult::Error(StepError::permanent(message));
                    }
                };
                record.input = Some(engine.registry().redactor.value(&input));
                let key = idempotency_key(scope);
                call(engine, &key, scope.run_id, connector, operation, &input).await
            }
            StepKind::Delay(_)
            | StepKind::WaitUntil(_)
            | StepKind::Foreach { .. }
            | StepKind::Switch { .. }
            | StepKind::Parallel { .. }
            | StepKind::Call { .. } => {
                unreachable!("wait and control-flow steps do not make attempts")
            }
        }
    };
    let limit = match (step.timeout.or(scope.workflow.timeout), scope.remaining) {
        (Some(own), Some(left)) => Some(own.min(left)),
        (own, left) => own.or(left),
    };
    match limit {
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

/// Operations a script may use while evaluated on an async worker thread;
/// a script that needs more is evaluated again on the blocking pool. Most
/// transforms finish within a few hundred.
const INLINE_OPERATIONS: u64 = 20_000;

async fn run_script(
    engine: &Engine,
    script: &crate::expr::Script,
    context: &Arc<Context>,
) -> AttemptResult {
    let evaluated = match engine
        .scripts
        .eval_script_briefly(script, context, INLINE_OPERATIONS)
    {
        Err(EvalError::OverBudget(_)) => {
            let scripts = engine.scripts.clone();
            let script = script.clone();
            let context = Arc::clone(context);
            // A long script runs on the blocking pool so it never stalls
            // the server; the sandbox's operation and time limits end
            // runaway ones.
            let blocking =
                tokio::task::spawn_blocking(move || scripts.eval_script(&script, &context));
            match blocking.await {
                Ok(evaluated) => evaluated,
                Err(join) => {
                    let message = format!("script panicked: {join}");
                    return AttemptResult::Error(StepError::permanent(message));
                }
            }
        }
        evaluated => evaluated,
    };
    match evaluated {
        Ok(output) => AttemptResult::Output(output),
        Err(EvalError::Skip(reason)) => AttemptResult::Skip(reason),
        Err(EvalError::Fail(reason)) => AttemptResult::Fail(reason),
        Err(error) => AttemptResult::Error(StepError::permanent(error.to_string())),
    }
}

/// `<run id>:<step id>` for a top-level step, and `<run id>:<path>` for a
/// nested one, so each iteration's call has its own stable key.
fn idempotency_key(scope: &StepScope<'_>) -> String {
    if scope.path.contains('.') {
        format!("{}:{}", scope.run_id, scope.path)
    } else {
        format!("{}:{}", scope.run_id, scope.step.id)
    }
}

async fn call(
    engine: &Engine,
    key: &str,
    run_id: &str,
    connector: &str,
    operation: &str,
    input: &Value,
) -> AttemptResult {
    if let Some(native) = engine.native(connector) {
        let call = crate::connector::native::NativeCall {
            store: engine.store().as_ref(),
            run_id,
            idempotency_key: key,
        };
        return match native.call(operation, input, &call).await {
            Ok(output) => AttemptResult::Output(output),
            Err(error) => AttemptResult::Error(error),
        };
    }
    let registry = engine.registry();
    let Some(connector) = registry.connectors.get(connector) else {
        let message = format!("connector `{connector}` is not loaded");
        return AttemptResult::Error(StepError::permanent(message));
    };
    let Some(spec) = connector.operations.get(operation) else {
        let message = format!(
            "connector `{}` has no operation `{operation}`",
            connector.name
        );
        return AttemptResult::Error(StepError::permanent(message));
    };
    let call = CallContext {
        run_id,
        idempotency_key: key,
        input,
    };
    match engine.http.call(connector, operation, spec, &call).await {
        Ok(output) => AttemptResult::Output(output),
        Err(error) => AttemptResult::Error(error),
    }
}
