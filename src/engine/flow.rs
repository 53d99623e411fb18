//! The control-flow steps: `foreach`, `switch`, `parallel` and `call`.
//! Each journals what it decided (the item list, the chosen case, the child
//! run) on its own record, so a restart takes the same path, and runs its
//! nested steps through [`Walk::run_list`] under its own path.

use chrono::Utc;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value};

use super::EngineError;
use super::run::{Attempt, RunStatus, StepRecord, StepStatus};
use super::step::StepOutcome;
use super::walk::{BoxedList, Extras, ListOutcome, Listed, Walk};
use crate::expr::{Context, json_to_dynamic};
use crate::workflow::{Step, StepKind};

/// Most `call` steps between a run and the run that started the chain.
pub const MAX_CALL_DEPTH: u32 = 8;

/// One control-flow step being run.
pub(crate) struct Flow<'w, 'a> {
    pub walk: &'w Walk<'a>,
    pub step: &'w Step,
    pub path: &'w str,
    pub outputs: &'w rhai::Map,
    pub extras: &'w Extras,
}

impl Flow<'_, '_> {
    /// Runs a `foreach` step: the item list is evaluated once and journaled,
    /// so after a restart the same items run and finished ones are passed
    /// over. At most `concurrency` iterations run at once.
    pub(crate) async fn foreach(&self, context: Context, mut record: StepRecord) -> StepResult {
        let StepKind::Foreach {
            items,
            steps,
            concurrency,
            max_items,
        } = &self.step.kind
        else {
            unreachable!("only foreach steps reach Flow::foreach");
        };
        let list = match record.input.clone() {
            Some(Value::Array(list)) => list,
            _ => match self.foreach_items(items, &context, *max_items) {
                Ok(list) => list,
                Err(message) => return self.fail(record, message),
            },
        };
        record.input = Some(Value::Array(list.clone()));
        self.begin(&mut record)?;

        let mut iterations: Vec<BoxedList<'_>> = Vec::with_capacity(list.len());
        for (position, value) in list.iter().enumerate() {
            let list_path = format!("{}.foreach[{position}].steps", self.path);
            let extras = Extras {
                item: Some((json_to_dynamic(value), position)),
                ..self.extras.clone()
            };
            iterations.push(
                self.walk
                    .run_list(steps, list_path, self.outputs.clone(), extras),
            );
        }
        let results: Vec<Result<Listed, EngineError>> = futures::stream::iter(iterations)
            .buffered(*concurrency)
            .collect()
            .await;

        let mut outputs = Vec::with_capacity(results.len());
        let mut fold = Fold::default();
        for (position, result) in results.into_iter().enumerate() {
            if let Some(output) = fold.add(&format!("item {position}"), result?.0) {
                outputs.push(output);
            }
        }
        self.finish(record, fold, Value::Array(outputs))
    }

    fn foreach_items(
        &self,
        items: &crate::expr::Template,
        context: &Context,
        max_items: usize,
    ) -> Result<Vec<Value>, String> {
        let value = self
            .walk
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

    /// Runs a `switch` step: the case is chosen once and journaled. With no
    /// matching case and no `default`, the step succeeds with a null output.
    pub(crate) async fn switch(&self, context: Context, mut record: StepRecord) -> StepResult {
        let StepKind::Switch {
            value,
            cases,
            default,
        } = &self.step.kind
        else {
            unreachable!("only switch steps reach Flow::switch");
        };
        let chosen = match record.input.as_ref().and_then(|input| input.get("case")) {
            Some(case) => case.as_str().map(str::to_string),
            None => {
                let value = match self.walk.engine.scripts.render(value, &context) {
                    Ok(value) => value,
                    Err(error) => {
                        return self.fail(record, format!("evaluating `switch` failed: {error}"));
                    }
                };
                let key = match &value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let case = cases
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map(|(name, _)| name.clone());
                let case = case.or_else(|| default.as_ref().map(|_| "default".to_string()));
                record.input = Some(serde_json::json!({ "value": value, "case": case }));
                case
            }
        };
        self.begin(&mut record)?;

        let branch = match chosen.as_deref() {
            Some(name) => match cases.iter().find(|(case, _)| case == name) {
                Some((_, steps)) => Some((format!("{}.cases.{name}", self.path), steps)),
                None => default
                    .as_ref()
                    .map(|steps| (format!("{}.default", self.path), steps)),
            },
            None => None,
        };
        let Some((list_path, steps)) = branch else {
            return self.finish(record, Fold::default(), Value::Null);
        };
        let (outcome, _) = self
            .walk
            .run_list(steps, list_path, self.outputs.clone(), self.extras.clone())
            .await?;
        let mut fold = Fold::default();
        let output = fold.add(&format!("case {}", chosen.unwrap_or_default()), outcome);
        self.finish(record, fold, output.unwrap_or(Value::Null))
    }

    /// Runs the branches of a `parallel` step at once. The first failing
    /// branch cancels the others, unless the step has `continue_on_error`.
    pub(crate) async fn parallel(&self, mut record: StepRecord) -> StepResult {
        let StepKind::Parallel { branches } = &self.step.kind else {
            unreachable!("only parallel steps reach Flow::parallel");
        };
        self.begin(&mut record)?;
        let mut running: FuturesUnordered<_> = branches
            .iter()
            .map(|(name, steps)| {
                let list_path = format!("{}.parallel.{name}", self.path);
                let list =
                    self.walk
                        .run_list(steps, list_path, self.outputs.clone(), self.extras.clone());
                async move { (name.as_str(), list.await) }
            })
            .collect();

        let mut finished: Map<String, Value> = Map::new();
        let mut fold = Fold::default();
        while let Some((name, result)) = running.next().await {
            if let Some(output) = fold.add(&format!("branch {name}"), result?.0) {
                finished.insert(name.to_string(), output);
            }
            if fold.failure.is_some() && !self.step.continue_on_error {
                // Dropping the other branches stops them at their next await.
                break;
            }
        }
        drop(running);
        let ordered: Map<String, Value> = branches
            .iter()
            .map(|(name, _)| {
                (
                    name.clone(),
                    finished.get(name).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        self.finish(record, fold, Value::Object(ordered))
    }

    /// Runs a `call` step: starts the child run once (journaled on this
    /// step), then executes it in this task and takes its output.
    pub(crate) async fn call(&self, context: Context, mut record: StepRecord) -> StepResult {
        let StepKind::Call { workflow, with } = &self.step.kind else {
            unreachable!("only call steps reach Flow::call");
        };
        let engine = self.walk.engine;
        let known_child = record
            .input
            .as_ref()
            .and_then(|input| input["child_run_id"].as_str().map(str::to_string));
        let child_id = match known_child {
            Some(child_id) => child_id,
            None => {
                if self.walk.depth >= MAX_CALL_DEPTH {
                    let message = format!(
                        "`call` nesting is limited to {MAX_CALL_DEPTH} levels; check for a workflow that calls itself"
                    );
                    return self.fail(record, message);
                }
                let input = match engine.scripts.render_value(with, &context) {
                    Ok(input) => input,
                    Err(error) => {
                        return self.fail(record, format!("evaluating `with` failed: {error}"));
                    }
                };
                let parent = super::run::ParentRef {
                    run_id: self.walk.run_id.clone(),
                    path: self.path.to_string(),
                };
                let child = engine
                    .start_child(workflow, input.clone(), parent, self.walk.depth + 1)
                    .await?;
                record.input = Some(
                    serde_json::json!({ "child_run_id": child.id, "with": engine.registry().redactor.value(&input) }),
                );
                child.id
            }
        };
        let Some(stored_child) = engine.store().load_run(&child_id)? else {
            let message = format!(
                "child run {child_id} ({workflow}) no longer exists, likely deleted by retention; replay this run to start over"
            );
            return self.fail(record, message);
        };
        let retried = !record.attempts.is_empty() && record.budget_start == record.attempts.len();
        if retried {
            // An operator retried the parent: retry the failed child as well.
            if matches!(
                stored_child.status,
                RunStatus::Failed | RunStatus::Cancelled
            ) {
                engine.retry(&child_id).await?;
            }
            record.attempts.push(Attempt {
                number: record.attempts.len() as u32 + 1,
                started_at: Utc::now(),
                finished_at: None,
                error: None,
            });
        }
        self.begin(&mut record)?;
        engine.store().sync().await?;

        let child = engine.execute_boxed(&child_id).await?;
        let mut fold = Fold::default();
        let outcome = match child.status {
            RunStatus::Succeeded => ListOutcome::Ended(StepOutcome::Succeeded(
                child.output.clone().unwrap_or(Value::Null),
            )),
            RunStatus::Skipped => ListOutcome::Ended(StepOutcome::Succeeded(Value::Null)),
            RunStatus::Waiting => match child.wake_at {
                Some(at) => ListOutcome::Ended(StepOutcome::Park(at)),
                None => ListOutcome::Interrupted,
            },
            RunStatus::Queued | RunStatus::Running => ListOutcome::Interrupted,
            RunStatus::Failed | RunStatus::Cancelled => {
                let error = child
                    .error
                    .clone()
                    .unwrap_or_else(|| child.status.to_string());
                ListOutcome::Ended(StepOutcome::Failed(error))
            }
        };
        let output = fold.add(&format!("child run {child_id} ({workflow})"), outcome);
        self.finish(record, fold, output.unwrap_or(Value::Null))
    }

    /// Marks the step started and journals it.
    fn begin(&self, record: &mut StepRecord) -> Result<(), EngineError> {
        if record.attempts.is_empty() {
            record.attempts.push(Attempt {
                number: 1,
                started_at: Utc::now(),
                finished_at: None,
                error: None,
            });
        }
        record.status = StepStatus::Running;
        self.walk
            .engine
            .store()
            .save_step(&self.walk.run_id, record)?;
        Ok(())
    }

    fn fail(&self, mut record: StepRecord, message: String) -> StepResult {
        record.status = StepStatus::Failed;
        record.error = Some(message.clone());
        record.finished_at = Some(Utc::now());
        self.walk
            .engine
            .store()
            .save_step(&self.walk.run_id, &record)?;
        let message = super::step::failure(&self.step.id, self.path, &message);
        Ok((record, ListOutcome::Ended(StepOutcome::Failed(message))))
    }

    /// Records the step's result from the folded outcomes of its parts.
    fn finish(&self, mut record: StepRecord, fold: Fold, output: Value) -> StepResult {
        if let Some(message) = fold.failure {
            return self.fail(record, message);
        }
        if let Some(stop) = fold.stop {
            self.walk
                .engine
                .store()
                .save_step(&self.walk.run_id, &record)?;
            return Ok((record, stop));
        }
        if let Some(at) = fold.park {
            self.walk
                .engine
                .store()
                .save_step(&self.walk.run_id, &record)?;
            return Ok((record, ListOutcome::Ended(StepOutcome::Park(at))));
        }
        record.status = StepStatus::Succeeded;
        record.output = Some(self.walk.engine.registry().redactor.value(&output));
        record.finished_at = Some(Utc::now());
        if let Some(attempt) = record.attempts.last_mut() {
            attempt.finished_at = record.finished_at;
        }
        self.walk
            .engine
            .store()
            .save_step(&self.walk.run_id, &record)?;
        Ok((record, ListOutcome::Ended(StepOutcome::Succeeded(output))))
    }
}

type StepResult = Result<(StepRecord, ListOutcome), EngineError>;

/// Outcomes of a step's nested parts folded into one: the first failure
/// wins, then a skip, cancel or shutdown, then the earliest wait.
#[derive(Default)]
struct Fold {
    failure: Option<String>,
    stop: Option<ListOutcome>,
    park: Option<chrono::DateTime<Utc>>,
}

impl Fold {
    /// Adds one part's outcome; returns its output when it succeeded.
    fn add(&mut self, part: &str, outcome: ListOutcome) -> Option<Value> {
        match outcome {
            ListOutcome::Ended(StepOutcome::Succeeded(output)) => return Some(output),
            ListOutcome::Ended(StepOutcome::Failed(message)) => {
                self.failure.get_or_insert(format!("{part}: {message}"));
            }
            ListOutcome::Ended(StepOutcome::Park(at)) => {
                self.park = Some(self.park.map_or(at, |earlier| earlier.min(at)));
            }
            other => {
                self.stop.get_or_insert(other);
            }
        }
        None
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
