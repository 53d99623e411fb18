//! Poll triggers: one task per poll workflow calls its connector operation
//! every interval, follows `next` pages, and starts one run per item key
//! not seen before.
//!
//! Each new item's run is stored with the deduplication key `poll:<key>`,
//! claimed in the same store transaction as the run, so that is the seen
//! set and there is no separate cursor to keep in step with it. A crash
//! between two items only means the next poll offers the same items again
//! and the store drops the ones it has.
//!
//! On the first poll of a workflow (no `activated` marker stored), the keys
//! present are claimed without runs unless `backfill: true`, and the
//! marker is stored once every page was read.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use crate::connector::CallContext;
use crate::engine::run::TriggerEvent;
use crate::engine::{Engine, Submitted};
use crate::expr::{Context, Template};
use crate::workflow::checker::secrets_value;
use crate::workflow::model::{MAX_POLL_PAGES, PollTrigger};
use crate::workflow::{Trigger, Workflow};

/// Starts one poll task per poll workflow in the registry.
pub(crate) fn start_one(
    engine: &Arc<Engine>,
    workflow: &Arc<Workflow>,
) -> Option<tokio::task::JoinHandle<()>> {
    let Trigger::Poll(trigger) = &workflow.trigger else {
        return None;
    };
    let task = PollTask {
        engine: Arc::clone(engine),
        workflow: Arc::clone(workflow),
        trigger: PollTrigger::clone(trigger),
    };
    Some(tokio::spawn(task.run()))
}

/// Counts of one poll, for its log line.
#[derive(Debug, Default)]
struct PollSummary {
    pages: usize,
    items: usize,
    started: usize,
    /// Keys claimed without a run on the first poll.
    marked_seen: usize,
}

struct PollTask {
    engine: Arc<Engine>,
    workflow: Arc<Workflow>,
    trigger: PollTrigger,
}

impl PollTask {
    async fn run(self) {
        let workflow = self.workflow.name.as_str();
        let every = humantime::format_duration(self.trigger.every).to_string();
        tracing::info!(workflow, every, "poll started");
        loop {
            self.expire_seen_keys();
            match self.poll_once().await {
                Ok(summary) if summary.started > 0 || summary.marked_seen > 0 => {
                    tracing::info!(workflow, ?summary, "poll finished");
                }
                Ok(summary) => tracing::debug!(workflow, ?summary, "poll found nothing new"),
                Err(error) => {
                    tracing::warn!(workflow, %error, "poll failed; trying again at the next interval");
                }
            }
            if !self.engine.sleep_unless_stopping(self.trigger.every).await {
                break;
            }
        }
        tracing::info!(workflow, "poll stopped");
    }

    /// Forgets item keys seen longer ago than the poll's `retention`.
    fn expire_seen_keys(&self) {
        let workflow = self.workflow.name.as_str();
        let retention =
            chrono::Duration::from_std(self.trigger.retention).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = chrono::Utc::now().checked_sub_signed(retention) else {
            return;
        };
        match self.engine.store().expire_claims(workflow, "poll:", cutoff) {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(workflow, expired, "forgot item keys past their retention")
            }
            Err(error) => tracing::warn!(workflow, %error, "expiring seen item keys failed"),
        }
    }

    /// Reads every page once and offers each item.
    async fn poll_once(&self) -> Result<PollSummary, String> {
        let store = self.engine.store();
        let marker = format!("poll:{}:activated", self.workflow.name);
        let first = store
            .get_state(&marker)
            .map_err(|e| e.to_string())?
            .is_none();
        let start_runs = !first || self.trigger.backfill;

        let mut summary = PollSummary::default();
        let mut input = self.render_with()?;
        let mut last_page = false;
        while summary.pages < MAX_POLL_PAGES {
            let response = self.call(&input, summary.pages).await?;
            summary.pages += 1;
            for item in self.items(&response)? {
                summary.items += 1;
                self.offer(item, start_runs, &mut summary).await?;
            }
            match self.next_input(&response)? {
                Some(next) => input = next,
                None => {
                    last_page = true;
                    break;
                }
            }
        }
        if !last_page {
            tracing::warn!(workflow = %self.workflow.name, pages = MAX_POLL_PAGES, "poll stopped at the page limit; each poll starts again at the first page, so later pages are never read; ask for bigger pages or newer items only in `with`");
        }
        if first {
            let now = Utc::now().to_rfc3339();
            store
                .put_state(&marker, now.as_bytes())
                .map_err(|e| e.to_string())?;
            store.sync().await.map_err(|e| e.to_string())?;
        }
        Ok(summary)
    }

    /// Starts a run for an item whose key is new, or on the first poll
    /// without backfill only claims the key.
    async fn offer(
        &self,
        item: Value,
        start_runs: bool,
        summary: &mut PollSummary,
    ) -> Result<(), String> {
        let key = match self.item_key(&item) {
            Ok(key) => key,
            Err(error) => {
                tracing::warn!(workflow = %self.workflow.name, %error, "poll item left out");
                return Ok(());
            }
        };
        if !start_runs {
            let claim = format!("poll:{key}");
            let claimed = self.engine.store().claim_key(&self.workflow.name, &claim);
            if claimed.map_err(|e| e.to_string())? {
                summary.marked_seen += 1;
            }
            return Ok(());
        }
        let event = TriggerEvent::poll(item, &key);
        match self.engine.submit(&self.workflow.name, event).await {
            Ok(Submitted::New(_)) => summary.started += 1,
            Ok(Submitted::Duplicate(_)) => {}
            Err(error) => return Err(format!("storing the run of item `{key}` failed: {error}")),
        }
        Ok(())
    }

    async fn call(&self, input: &Value, page: usize) -> Result<Value, String> {
        let registry = self.engine.registry();
        let name = format!("{}.{}", self.trigger.connector, self.trigger.operation);
        let connector = registry
            .connectors
            .get(&self.trigger.connector)
            .ok_or_else(|| format!("connector `{}` is not loaded", self.trigger.connector))?;
        let operation = connector
            .operations
            .get(&self.trigger.operation)
            .ok_or_else(|| format!("operation `{name}` is not loaded"))?;
        let run_id = format!("poll:{}", self.workflow.name);
        let key = format!("{run_id}:page-{page}");
        let call = CallContext {
            run_id: &run_id,
            idempotency_key: &key,
            input,
        };
        let http = self.engine.http();
        http.call(connector, &self.trigger.operation, operation, &call)
            .await
            .map_err(|error| format!("calling `{name}` failed: {error}"))
    }

    fn context(&self) -> Context {
        let mut context = Context::new();
        context.set("vars", &self.workflow.vars);
        context.set("secrets", &secrets_value(&self.workflow.secrets));
        context
    }

    fn render_with(&self) -> Result<Value, String> {
        let scripts = self.engine.scripts();
        scripts
            .render_value(&self.trigger.with, &self.context())
            .map_err(|error| format!("evaluating the poll's `with` failed: {error}"))
    }

    fn render(&self, template: &Template, name: &str, value: &Value) -> Result<Value, String> {
        let mut context = self.context();
        context.set(name, value);
        self.engine
            .scripts()
            .render(template, &context)
            .map_err(|error| format!("evaluating `{}` failed: {error}", template.source()))
    }

    fn items(&self, response: &Value) -> Result<Vec<Value>, String> {
        match self.render(&self.trigger.items, "response", response)? {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => Err(format!(
                "`items` gave {other} instead of a list; point it at the list in the response, such as `${{{{ response.items }}}}`"
            )),
        }
    }

    fn item_key(&self, item: &Value) -> Result<String, String> {
        match self.render(&self.trigger.key, "item", item)? {
            Value::String(key) if !key.is_empty() => Ok(key),
            Value::Number(number) => Ok(number.to_string()),
            other => Err(format!(
                "`key` gave {other} for item {item}; it must give a non-empty string or a number"
            )),
        }
    }

    fn next_input(&self, response: &Value) -> Result<Option<Value>, String> {
        let Some(next) = &self.trigger.next else {
            return Ok(None);
        };
        match self.render(next, "response", response)? {
            Value::Null => Ok(None),
            input => Ok(Some(input)),
        }
    }
}
