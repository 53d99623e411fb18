//! Walks a run's step lists against its journal: steps with a recorded
//! result are passed over and their outputs reused, conditions are checked,
//! `foreach` runs its nested steps once per item, and every step is
//! journaled under its path, such as `steps[2].foreach[17].steps[0]`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use rhai::Dynamic;
use serde_json::Value;

use super::run::{Attempt, Run, StepRecord, StepStatus, path_sort_key};
use super::step::{self, StepOutcome, StepScope};
use super::{Engine, EngineError};
use crate::expr::{Context, Template, json_to_dynamic};
use crate::workflow::checker::secrets_value;
use crate::workflow::{Step, StepKind, Workflow};

/// How a list of steps ended.
pub(crate) enum ListOutcome {
    Ended(StepOutcome),
    /// Cancelled by an operator: no further step starts.
    Cancelled,
    /// The engine is shutting down: the run stays resumable.
    Interrupted,
}

/// Whether a step's condition lets it run, or how it ended instead.
enum Gate {
    Open(StepRecord),
    Closed(StepRecord, StepOutcome),
}

/// The `steps` map a list's expressions see, and how the list ended.
type Listed = (ListOutcome, rhai::Map);

type BoxedList<'w> = Pin<Box<dyn Future<Output = Result<Listed, EngineError>> + Send + 'w>>;

pub(crate) struct Walk<'a> {
    engine: &'a Engine,
    workflow: &'a Workflow,
    run_id: String,
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
            base: base_context(workflow, run),
            journal: Mutex::new(journal),
            deadline,
        }
    }

    /// Makes the run's error visible as `run.error`, for failure handlers.
    pub(crate) fn set_run_error(&mut self, run: &Run) {
        self.base.set("run", &run_value(run));
    }

    /// The journal, ordered by path.
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
    /// `steps[2].foreach[0].steps`). `item` is the iteration's item and
    /// index inside a `foreach`.
    pub(crate) fn run_list<'w>(
        &'w self,
        steps: &'w [Step],
        list_path: String,
        mut outputs: rhai::Map,
        item: Option<(Dynamic, usize)>,
    ) -> BoxedList<'w> {
        Box::pin(async move {
            let mut last = Value::Null;
            for (index, step) in steps.iter().enumerate() {
                let path = format!("{list_path}[{index}]");
                let recorded = self.recorded(&path);
                if let Some(record) = recorded.as_ref().filter(|r| r.status.has_result()) {
                    match self.replay_result(step, record, &mut outputs, &mut last) {
                        Some(ended) => return Ok((ListOutcome::Ended(ended), outputs)),
                        None => continue,
                    }
                }
                if self.engine.is_cancelled(&self.run_id) {
                    return Ok((ListOutcome::Cancelled, outputs));
                }
                if self.engine.is_stopping() {
                    return Ok((ListOutcome::Interrupted, outputs));
                }
                let remaining = match self.remaining() {
                    Ok(remaining) => remaining,
                    Err(message) => {
                        return Ok((ListOutcome::Ended(StepOutcome::Failed(message)), outputs));
                    }
                };

                let mut context = self.base.clone();
                context.set_dynamic("steps", Dynamic::from_map(outputs.clone()));
                if let Some((value, position)) = &item {
                    context.set_dynamic("item", value.clone());
                    context.set_dynamic("index", Dynamic::from(*position as i64));
                }
                let record = recorded.unwrap_or_else(|| StepRecord::new(index, &step.id, &path));
                let (record, outcome) = match &step.condition {
                    Some(condition) => {
                        match self.check_condition(step, condition, &context, record) {
                            Gate::Open(record) => {
                                self.run_step(step, &path, context, &outputs, remaining, record)
                                    .await?
                            }
                            Gate::Closed(record, outcome) => {
                                self.engine.store().save_step(&self.run_id, &record)?;
                                (record, ListOutcome::Ended(outcome))
                            }
                        }
                    }
                    None => {
                        self.run_step(step, &path, context, &outputs, remaining, record)
                            .await?
                    }
                };
                let status = record.status;
                let error = record.error.clone();
                outputs.insert(step.id.as_str().into(), step_entry(&record));
                self.remember(record);

                match outcome {
                    ListOutcome::Ended(StepOutcome::Succeeded(output)) => {
                        if status == StepStatus::Succeeded {
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
                let message = format!("step `{}` failed: {message}", step.id);
                Gate::Closed(record, StepOutcome::Failed(message))
            }
        }
    }

    async fn run_step(
        &self,
        step: &Step,
        path: &str,
        context: Context,
        outputs: &rhai::Map,
        remaining: Option<std::time::Duration>,
        record: StepRecord,
    ) -> Result<(StepRecord, ListOutcome), EngineError> {
        if let StepKind::Foreach { .. } = &step.kind {
            return self.run_foreach(step, path, context, outputs, record).await;
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

    /// Runs a `foreach` step: the item list is evaluated once and journaled,
    /// so after a restart the same items run and finished ones are passed
    /// over.
    async fn run_foreach(
        &self,
        step: &Step,
        path: &str,
        context: Context,
        outer: &rhai::Map,
        mut record: StepRecord,
    ) -> Result<(StepRecord, ListOutcome), EngineError> {
        let StepKind::Foreach {
            items,
            steps,
            concurrency,
            max_items,
        } = &step.kind
        else {
            unreachable!("only foreach steps reach run_foreach");
        };
        let list = match record.input.clone() {
            Some(Value::Array(list)) => list,
            _ => match self.foreach_items(items, &context, *max_items) {
                Ok(list) => list,
                Err(message) => {
                    record.status = StepStatus::Failed;
                    record.error = Some(message.clone());
                    record.finished_at = Some(Utc::now());
                    self.engine.store().save_step(&self.run_id, &record)?;
                    let message = format!("step `{}` failed: {message}", step.id);
                    return Ok((record, ListOutcome::Ended(StepOutcome::Failed(message))));
                }
            },
        };
        if record.attempts.is_empty() {
            record.attempts.push(Attempt {
                number: 1,
                started_at: Utc::now(),
                finished_at: None,
                error: None,
            });
        }
        record.input = Some(Value::Array(list.clone()));
        record.status = StepStatus::Running;
        self.engine.store().save_step(&self.run_id, &record)?;

        let mut iterations: Vec<BoxedList<'_>> = Vec::with_capacity(list.len());
        for (position, value) in list.iter().enumerate() {
            let list_path = format!("{path}.foreach[{position}].steps");
            let item = Some((json_to_dynamic(value), position));
            iterations.push(self.run_list(steps, list_path, outer.clone(), item));
        }
        let results: Vec<Result<Listed, EngineError>> = futures::stream::iter(iterations)
            .buffered(*concurrency)
            .collect()
            .await;
        let outcome = self.gather(step, &mut record, results)?;
        self.engine.store().save_step(&self.run_id, &record)?;
        Ok((record, outcome))
    }

    fn foreach_items(
        &self,
        items: &Template,
        context: &Context,
        max_items: usize,
    ) -> Result<Vec<Value>, String> {
        let value = self
            .engine
            .scripts
            .render(items, context)
            .map_err(|error| format!("evaluating `foreach` failed: {error}"))?;
        let Value::Array(list) = value else {
            let kind = json_type(&value);
            return Err(format!(
                "`foreach` needs a list, but the expression gave {kind}"
            ));
        };
        if list.len() > max_items {
            return Err(format!(
                "`foreach` got {} items, more than its `max_items` of {max_items}; raise `max_items` or split the list",
                list.len()
            ));
        }
        Ok(list)
    }

    /// Folds the iterations' outcomes into the `foreach` step's result: the
    /// list of outputs in input order; otherwise the first failure, then a
    /// skip, cancel or shutdown, then the earliest wait.
    fn gather(
        &self,
        step: &Step,
        record: &mut StepRecord,
        results: Vec<Result<Listed, EngineError>>,
    ) -> Result<ListOutcome, EngineError> {
        let mut outputs = Vec::with_capacity(results.len());
        let mut failure: Option<String> = None;
        let mut stop: Option<ListOutcome> = None;
        let mut park: Option<DateTime<Utc>> = None;
        for (position, result) in results.into_iter().enumerate() {
            match result?.0 {
                ListOutcome::Ended(StepOutcome::Succeeded(output)) => outputs.push(output),
                ListOutcome::Ended(StepOutcome::Failed(message)) => {
                    failure.get_or_insert(format!("item {position}: {message}"));
                }
                ListOutcome::Ended(StepOutcome::Park(at)) => {
                    park = Some(park.map_or(at, |earlier| earlier.min(at)));
                }
                other => {
                    stop.get_or_insert(other);
                }
            }
        }
        if let Some(message) = failure {
            record.status = StepStatus::Failed;
            record.error = Some(message.clone());
            record.finished_at = Some(Utc::now());
            let message = format!("step `{}` failed: {message}", step.id);
            return Ok(ListOutcome::Ended(StepOutcome::Failed(message)));
        }
        if let Some(stop) = stop {
            return Ok(stop);
        }
        if let Some(at) = park {
            return Ok(ListOutcome::Ended(StepOutcome::Park(at)));
        }
        let output = Value::Array(outputs);
        record.status = StepStatus::Succeeded;
        record.output = Some(self.engine.registry().redactor.value(&output));
        record.finished_at = Some(Utc::now());
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.finished_at = record.finished_at;
        }
        Ok(ListOutcome::Ended(StepOutcome::Succeeded(output)))
    }

    fn recorded(&self, path: &str) -> Option<StepRecord> {
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

/// What every step of the run sees besides `steps`.
fn base_context(workflow: &Workflow, run: &Run) -> Context {
    let mut context = Context::new();
    context.set("trigger", &run.trigger.to_scope_value());
    context.set("vars", &workflow.vars);
    context.set("secrets", &secrets_value(&workflow.secrets));
    context.set("run", &run_value(run));
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
    json_to_dynamic(&entry)
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

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
