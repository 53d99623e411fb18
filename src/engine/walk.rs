//! Walks a run's step lists against its journal: steps with a recorded
//! result are passed over and their outputs reused, conditions are checked,
//! `foreach` runs its nested steps once per item, and every step is
//! journaled under its path, such as `steps[2].foreach[17].steps[0]`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rhai::Dynamic;
use serde_json::Value;

use super::flow;
use super::run::{Run, StepRecord, StepStatus, path_sort_key};
use super::step::{self, StepOutcome, StepScope};
use super::{Engine, EngineError};
use crate::expr::{Context, Template, json_to_dynamic};
use crate::workflow::checker::secrets_value;
use crate::workflow::{Step, StepKind, Workflow};

/// Outcome of a list of steps.
pub(crate) enum ListOutcome {
    Ended(StepOutcome),
    /// Cancelled by an operator: no further step starts.
    Cancelled,
    /// The engine is shutting down: the run stays resumable.
    Interrupted,
}

/// Values a nested list adds to its steps' scope: `item` and `index` inside
/// a `foreach` iteration, `error` inside an `on_failure` list.
#[derive(Clone, Default)]
pub(crate) struct Extras {
    pub item: Option<(Dynamic, usize)>,
    pub error: Option<Dynamic>,
}

/// Result of starting a step: it ran (or its condition skipped it), or the
/// list stops before it.
enum Started {
    Ran(Box<StepRecord>, ListOutcome),
    Stopped(ListOutcome),
}

/// Whether a step's condition lets it run, or how it ended instead.
enum Gate {
    Open(StepRecord),
    Closed(StepRecord, StepOutcome),
}

/// The `steps` map a list's expressions see, and how the list ended.
pub(crate) type Listed = (ListOutcome, rhai::Map);

pub(crate) type BoxedList<'w> =
    Pin<Box<dyn Future<Output = Result<Listed, EngineError>> + Send + 'w>>;

pub(crate) struct Walk<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) workflow: &'a Workflow,
    pub(crate) run_id: String,
    /// `call` depth of the run, for the recursion limit.
    pub(crate) depth: u32,
    /// `trigger`, `vars`, `secrets` and `run`, converted once per run.
    base: Context,
    journal: Mutex<HashMap<String, StepRecord>>,
    deadline: Option<DateTime<Utc>>,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(engine: &'a Engine, workflow: &'a Workflow, run: &Run) -> Self {
        let deadline = workflow
            .timeout
            .zip(run.started_at)
            .map(|(limit, started)| {
                started + chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
            });
        let journal = run
            .steps
            .iter()
            .map(|record| (record.path.clone(), record.clone()))
            .collect();
        Walk {
            engine,
            workflow,
            run_id: run.id.clone(),
            depth: run.depth,
            base: base_context(workflow, run),
            journal: Mutex::new(journal),
            deadline,
        }
    }

    /// Makes the run's error visible as `run.error`, for failure handlers.
    pub(crate) fn set_run_error(&mut self, run: &Run) {
        self.base.set_shared("run", &run_value(run));
    }

    /// Returns the journal, ordered by path.
    pub(crate) fn into_records(self) -> Vec<StepRecord> {
        let journal = self
            .journal
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut records: Vec<StepRecord> = journal.into_values().collect();
        records.sort_by_cached_key(|record| path_sort_key(&record.path));
        records
    }

    /// Runs `steps` in order under `list_path` (such as `steps` or
    /// `steps[2].foreach[0].steps`), with `extras` in scope.
    pub(crate) fn run_list<'w>(
        &'w self,
        steps: &'w [Step],
        list_path: String,
        mut outputs: rhai::Map,
        extras: Extras,
    ) -> BoxedList<'w> {
        Box::pin(async move {
            let mut last = Value::Null;
            for (index, step) in steps.iter().enumerate() {
                let path = format!("{list_path}[{index}]");
                let recorded = self.recorded(&path);
                let (record, outcome) = match recorded {
                    Some(record)
                        if record.status.has_result()
                            && !self.handler_unfinished(step, &record) =>
                    {
                        match self.replay_result(step, &record, &mut outputs, &mut last) {
                            Some(ended) => return Ok((ListOutcome::Ended(ended), outputs)),
                            None => continue,
                        }
                    }
                    Some(record) if record.status == StepStatus::Failed => {
                        // A restart came while the failure handler ran.
                        let message = record.error.clone().unwrap_or_default();
                        self.handle_failure(step, &path, record, message, &outputs, &extras)
                            .await?
                    }
                    recorded => match self
                        .start_step(step, &path, index, recorded, &outputs, &extras)
                        .await?
                    {
                        Started::Ran(record, outcome) => (*record, outcome),
                        Started::Stopped(stop) => return Ok((stop, outputs)),
                    },
                };

                let status = record.status;
                let error = record.error.clone();
                outputs.insert(step.id.as_str().into(), step_entry(&record));
                self.remember(record);
                match outcome {
                    ListOutcome::Ended(StepOutcome::Succeeded(output)) => {
                        if status != StepStatus::Skipped {
                            last = output;
                        }
                    }
                    ListOutcome::Ended(StepOutcome::Failed(message)) if step.continue_on_error => {
                        tracing::warn!(run_id = %self.run_id, workflow = %self.workflow.name, step = %path, error = error.as_deref().unwrap_or(&message), "step failed; the run goes on");
                    }
                    ended => return Ok((ended, outputs)),
                }
            }
            Ok((ListOutcome::Ended(StepOutcome::Succeeded(last)), outputs))
        })
    }

    /// Starts a step without a result: checks cancellation, shutdown, the
    /// workflow deadline and the step's condition, then runs it and its
    /// failure handler.
    async fn start_step(
        &self,
        step: &Step,
        path: &str,
        index: usize,
        recorded: Option<StepRecord>,
        outputs: &rhai::Map,
        extras: &Extras,
    ) -> Result<Started, EngineError> {
        if self.engine.is_cancelled(&self.run_id) {
            return Ok(Started::Stopped(ListOutcome::Cancelled));
        }
        if self.engine.is_stopping() {
            return Ok(Started::Stopped(ListOutcome::Interrupted));
        }
        let remaining = match self.remaining() {
            Ok(remaining) => remaining,
            Err(message) => {
                return Ok(Started::Stopped(ListOutcome::Ended(StepOutcome::Failed(
                    message,
                ))));
            }
        };
        let context = self.context(outputs, extras);
        let record = recorded.unwrap_or_else(|| StepRecord::new(index, &step.id, path));
        let record = match &step.condition {
            None => record,
            Some(condition) => match self.check_condition(step, condition, &context, record) {
                Gate::Open(record) => record,
                Gate::Closed(record, outcome) => {
                    self.engine.store().save_step(&self.run_id, &record)?;
                    return Ok(Started::Ran(Box::new(record), ListOutcome::Ended(outcome)));
                }
            },
        };
        let (record, outcome) = self
            .run_step(step, path, context, outputs, extras, remaining, record)
            .await?;
        if let ListOutcome::Ended(StepOutcome::Failed(message)) = &outcome
            && !step.on_failure.is_empty()
        {
            let message = message.clone();
            let handled = self
                .handle_failure(step, path, record, message, outputs, extras)
                .await?;
            return Ok(Started::Ran(Box::new(handled.0), handled.1));
        }
        Ok(Started::Ran(Box::new(record), outcome))
    }

    /// Builds the scope of a step: the run's values, `steps` so far, and
    /// extras.
    pub(crate) fn context(&self, outputs: &rhai::Map, extras: &Extras) -> Context {
        let mut context = self.base.clone();
        context.set_dynamic("steps", Dynamic::from_map(outputs.clone()));
        if let Some((value, position)) = &extras.item {
            context.set_dynamic("item", value.clone());
            context.set_dynamic("index", Dynamic::from(*position as i64));
        }
        if let Some(error) = &extras.error {
            context.set_dynamic("error", error.clone());
        }
        context
    }

    /// Whether a failed step's `on_failure` list still has to run, which is
    /// the case after a restart during the handler.
    fn handler_unfinished(&self, step: &Step, record: &StepRecord) -> bool {
        if record.status != StepStatus::Failed || record.recovered || step.on_failure.is_empty() {
            return false;
        }
        let last = format!("{}.on_failure[{}]", record.path, step.on_failure.len() - 1);
        !self
            .recorded(&last)
            .is_some_and(|handler| handler.status.has_result())
    }

    /// Runs a failed step's `on_failure` steps with `error` in scope. When
    /// they succeed and the last one has `recover: true`, the step counts as
    /// recovered with that step's output; otherwise the step stays failed.
    async fn handle_failure(
        &self,
        step: &Step,
        path: &str,
        mut record: StepRecord,
        message: String,
        outputs: &rhai::Map,
        extras: &Extras,
    ) -> Result<(StepRecord, ListOutcome), EngineError> {
        let error = serde_json::json!({
            "message": record.error.clone().unwrap_or_else(|| message.clone()),
            "step": step.id,
        });
        let extras = Extras {
            error: Some(json_to_dynamic(&error)),
            ..extras.clone()
        };
        let handler_path = format!("{path}.on_failure");
        let list = self.run_list(
            &step.on_failure,
            handler_path.clone(),
            outputs.clone(),
            extras,
        );
        let (handled, _) = list.await?;
        let last = step.on_failure.len() - 1;
        let recovering = step.on_failure[last].recover
            && self
                .recorded(&format!("{handler_path}[{last}]"))
                .is_some_and(|r| r.status == StepStatus::Succeeded);
        match handled {
            ListOutcome::Ended(StepOutcome::Succeeded(output)) if recovering => {
                record.recovered = true;
                record.output = Some(self.engine.registry().redactor.value(&output));
                self.engine.store().save_step(&self.run_id, &record)?;
                tracing::info!(run_id = %self.run_id, workflow = %self.workflow.name, step = %path, "failed step recovered by its handler");
                Ok((record, ListOutcome::Ended(StepOutcome::Succeeded(output))))
            }
            ListOutcome::Ended(StepOutcome::Succeeded(_)) => {
                Ok((record, ListOutcome::Ended(StepOutcome::Failed(message))))
            }
            ListOutcome::Ended(StepOutcome::Failed(handler_error)) => {
                tracing::error!(run_id = %self.run_id, workflow = %self.workflow.name, step = %path, error = %handler_error, "failure handler failed");
                Ok((record, ListOutcome::Ended(StepOutcome::Failed(message))))
            }
            other => Ok((record, other)),
        }
    }

    /// For a step whose result is in the journal, takes its output into
    /// scope, or returns how the list ended there.
    fn replay_result(
        &self,
        step: &Step,
        record: &StepRecord,
        outputs: &mut rhai::Map,
        last: &mut Value,
    ) -> Option<StepOutcome> {
        outputs.insert(step.id.as_str().into(), step_entry(record));
        match record.status {
            StepStatus::Succeeded => {
                *last = record.output.clone().unwrap_or(Value::Null);
                None
            }
            StepStatus::Skipped if record.condition.is_some() => None,
            StepStatus::Skipped => Some(StepOutcome::Skipped(
                record.error.clone().unwrap_or_default(),
            )),
            StepStatus::Failed if record.recovered => {
                *last = record.output.clone().unwrap_or(Value::Null);
                None
            }
            StepStatus::Failed if step.continue_on_error => None,
            StepStatus::Failed => Some(StepOutcome::Failed(
                record.error.clone().unwrap_or_default(),
            )),
            StepStatus::Running => None,
        }
    }

    /// Evaluates a step's `if:`. A false value skips the step and an error
    /// fails it; either way the step ends here.
    fn check_condition(
        &self,
        step: &Step,
        condition: &Template,
        context: &Context,
        mut record: StepRecord,
    ) -> Gate {
        record.finished_at = Some(Utc::now());
        match self.engine.scripts.render(condition, context) {
            Ok(value) if truthy(&value) => {
                record.finished_at = None;
                Gate::Open(record)
            }
            Ok(value) => {
                record.status = StepStatus::Skipped;
                record.condition = Some(value);
                Gate::Closed(record, StepOutcome::Succeeded(Value::Null))
            }
            Err(error) => {
                let message = format!("evaluating `if` failed: {error}");
                record.status = StepStatus::Failed;
                record.error = Some(message.clone());
                let message = step::failure(&step.id, &record.path, &message);
                Gate::Closed(record, StepOutcome::Failed(message))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        step: &Step,
        path: &str,
        context: Context,
        outputs: &rhai::Map,
        extras: &Extras,
        remaining: Option<std::time::Duration>,
        record: StepRecord,
    ) -> Result<(StepRecord, ListOutcome), EngineError> {
        let flow = flow::Flow {
            walk: self,
            step,
            path,
            outputs,
            extras,
        };
        match &step.kind {
            StepKind::Foreach { .. } => return flow.foreach(context, record).await,
            StepKind::Switch { .. } => return flow.switch(context, record).await,
            StepKind::Parallel { .. } => return flow.parallel(record).await,
            StepKind::Call { .. } => return flow.call(context, record).await,
            _ => {}
        }
        let scope = StepScope {
            workflow: self.workflow,
            run_id: &self.run_id,
            path,
            step,
            context: Arc::new(context),
            remaining,
        };
        let (record, outcome) = step::run(self.engine, &scope, record).await?;
        Ok((record, ListOutcome::Ended(outcome)))
    }

    pub(crate) fn recorded(&self, path: &str) -> Option<StepRecord> {
        self.journal.lock().ok()?.get(path).cloned()
    }

    fn remember(&self, record: StepRecord) {
        if let Ok(mut journal) = self.journal.lock() {
            journal.insert(record.path.clone(), record);
        }
    }

    /// Time left before the workflow's timeout, or the failure message once
    /// it has passed.
    fn remaining(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(deadline) = self.deadline else {
            return Ok(None);
        };
        match (deadline - Utc::now()).to_std() {
            Ok(left) if !left.is_zero() => Ok(Some(left)),
            _ => {
                let limit = self.workflow.timeout.map(humantime::format_duration);
                let limit = limit.map(|l| l.to_string()).unwrap_or_default();
                Err(format!("run exceeded the workflow timeout of {limit}"))
            }
        }
    }
}

/// Builds the values every step of the run reads besides `steps`.
fn base_context(workflow: &Workflow, run: &Run) -> Context {
    let mut context = Context::new();
    context.set_shared("trigger", &run.trigger.to_scope_value());
    context.set_shared("vars", &workflow.vars);
    context.set_shared("secrets", &secrets_value(&workflow.secrets));
    context.set_shared("run", &run_value(run));
    context
}

fn run_value(run: &Run) -> Value {
    serde_json::json!({ "id": run.id, "workflow": run.workflow, "error": run.error })
}

/// `steps.<id>` as expressions see it: output, status, and error or
/// condition when there is one.
fn step_entry(record: &StepRecord) -> Dynamic {
    let mut entry = serde_json::json!({
        "output": record.output.clone().unwrap_or(Value::Null),
        "status": record.status,
    });
    if let Some(error) = &record.error {
        entry["error"] = Value::String(error.clone());
    }
    if let Some(condition) = &record.condition {
        entry["condition"] = condition.clone();
    }
    if record.recovered {
        entry["recovered"] = Value::Bool(true);
    }
    // Shared, so copying the `steps` map for every step and iteration
    // copies no outputs.
    json_to_dynamic(&entry).into_read_only().into_shared()
}

pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}
