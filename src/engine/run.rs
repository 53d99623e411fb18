//! Run records: what a run is, its status, its trigger event and the journal
//! of its steps. These types are what the store persists and the API shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifecycle of a run. `Succeeded`, `Failed`, `Skipped` and `Cancelled` are
/// terminal: once a run reaches one of them its status never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Skipped | RunStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "invalid run status `{text}`, expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Kind of event that started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Webhook,
    Schedule,
    Manual,
    Poll,
    /// Started by a `call` step of another run.
    Call,
}

/// The event that started a run, stored with it so the run can resume or be
/// replayed after a restart. Secret values are redacted before storing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerEvent {
    pub kind: TriggerKind,
    /// Parsed body: JSON, or a map for form-encoded bodies, or a string.
    /// Missing from a stored event whose `body_from_raw` is set.
    #[serde(default)]
    pub body: Value,
    /// Body text exactly as received, for webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Set when `body` is exactly `raw` parsed this way, so the store keeps
    /// only `raw` and parses it again when it reads the event. Left out of
    /// the event's JSON everywhere else.
    #[serde(default, skip_serializing)]
    pub body_from_raw: Option<BodyEncoding>,
    /// Header names in lower case.
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub query: Map<String, Value>,
    /// Value of the workflow's deduplication header, or `schedule:` and the
    /// scheduled time for a schedule tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// The tick a schedule run is for; later than it when the run catches up
    /// a missed tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The new item a poll found, also given as `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    pub received_at: DateTime<Utc>,
}

/// Parser that turned a webhook body into a trigger event's `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    Json,
    /// Kept as one string.
    Text,
}

impl BodyEncoding {
    /// Parses `raw` the way the body was parsed when it arrived.
    pub fn parse(self, raw: &str) -> Result<Value, serde_json::Error> {
        match self {
            BodyEncoding::Json => serde_json::from_str(raw),
            BodyEncoding::Text => Ok(Value::String(raw.to_string())),
        }
    }
}

impl Default for TriggerEvent {
    /// An empty manual event, standing in where the event was not loaded.
    fn default() -> Self {
        TriggerEvent {
            kind: TriggerKind::Manual,
            body: Value::Null,
            raw: None,
            body_from_raw: None,
            headers: Map::new(),
            query: Map::new(),
            dedup_key: None,
            scheduled_at: None,
            item: None,
            received_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

impl TriggerEvent {
    pub fn manual(body: Value) -> Self {
        TriggerEvent {
            kind: TriggerKind::Manual,
            body,
            raw: None,
            body_from_raw: None,
            headers: Map::new(),
            query: Map::new(),
            dedup_key: None,
            scheduled_at: None,
            item: None,
            received_at: Utc::now(),
        }
    }

    /// Creates the event of a schedule tick at `scheduled_at`, with no body.
    pub fn schedule(scheduled_at: DateTime<Utc>) -> Self {
        TriggerEvent {
            kind: TriggerKind::Schedule,
            scheduled_at: Some(scheduled_at),
            ..TriggerEvent::manual(Value::Null)
        }
    }

    /// Creates the event of a new poll item, deduplicated by `poll:<key>`.
    pub fn poll(item: Value, key: &str) -> Self {
        TriggerEvent {
            kind: TriggerKind::Poll,
            body: item.clone(),
            item: Some(item),
            dedup_key: Some(format!("poll:{key}")),
            received_at: Utc::now(),
            ..TriggerEvent::manual(Value::Null)
        }
    }

    /// Builds the value a workflow expression reads as `trigger`.
    pub fn to_scope_value(&self) -> Value {
        let mut scope = Map::new();
        scope.insert(
            "kind".into(),
            serde_json::to_value(self.kind).unwrap_or(Value::Null),
        );
        scope.insert("body".into(), self.body.clone());
        scope.insert(
            "raw".into(),
            self.raw.clone().map(Value::String).unwrap_or(Value::Null),
        );
        scope.insert("headers".into(), Value::Object(self.headers.clone()));
        scope.insert("query".into(), Value::Object(self.query.clone()));
        scope.insert(
            "received_at".into(),
            Value::String(self.received_at.to_rfc3339()),
        );
        if let Some(item) = &self.item {
            scope.insert("item".into(), item.clone());
        }
        if let Some(scheduled_at) = self.scheduled_at {
            let text = crate::trigger::schedule::format_utc(scheduled_at);
            scope.insert("scheduled_at".into(), Value::String(text));
        }
        Value::Object(scope)
    }
}

/// Status of one step in a run's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    /// Returns whether the status is a result; a step with a recorded result
    /// never executes again.
    pub fn has_result(self) -> bool {
        !matches!(self, StepStatus::Running)
    }
}

/// One execution attempt of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Journal entry of one step: recorded when its first attempt starts and
/// rewritten with the result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// Position of the step in its list.
    pub index: usize,
    pub id: String,
    /// Path of the step, unique in the run: `steps[1]`, or
    /// `steps[2].foreach[17].steps[0]` for a step inside an iteration.
    pub path: String,
    pub status: StepStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Index into `attempts` where the current retry budget starts; an
    /// operator retry starts a fresh budget without hiding old attempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub budget_start: usize,
    /// When a parked step continues: the end of a delay, or the next
    /// attempt after a long retry wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<DateTime<Utc>>,
    /// Value of the step's `if:` when it was false and the step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    /// The step failed and its `on_failure` steps recovered it; `output` is
    /// then the recovering step's output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

impl StepRecord {
    /// Creates the journal entry of a step about to start.
    pub fn new(index: usize, id: &str, path: &str) -> Self {
        StepRecord {
            index,
            id: id.to_string(),
            path: path.to_string(),
            status: StepStatus::Running,
            attempts: Vec::new(),
            input: None,
            output: None,
            error: None,
            started_at: Utc::now(),
            finished_at: None,
            budget_start: 0,
            wake_at: None,
            condition: None,
            recovered: false,
        }
    }
}

/// Orders journal paths so that `steps[10]` follows `steps[9]`: every
/// number in brackets is zero-padded.
pub fn path_sort_key(path: &str) -> String {
    let mut key = String::with_capacity(path.len() + 16);
    let mut digits = String::new();
    for c in path.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            key.push_str(&format!("{digits:0>8}"));
            digits.clear();
        }
        key.push(c);
    }
    key.push_str(&digits);
    key
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A run with its journal. The store keeps the header (everything but
/// `steps`) and each step record under separate keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub workflow: String,
    pub status: RunStatus,
    /// Empty in run lists, which read only run headers.
    #[serde(default)]
    pub trigger: TriggerEvent,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reason given by `skip(...)` when the run was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a waiting run continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<DateTime<Utc>>,
    /// Value of the workflow's `concurrency_key` for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Key of a debounced run, which waits for its window to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_key: Option<String>,
    /// Version (file hash) of the workflow the run started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_version: Option<String>,
    /// The run this one replays from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// Times an operator retried the run.
    #[serde(default)]
    pub retries: u32,
    /// The run and step that started this one with `call`. Such a run is
    /// executed by its parent, never by the worker pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// Number of `call` steps between this run and the run that started the
    /// chain.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub depth: u32,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// Run and step that started a child run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub run_id: String,
    pub path: String,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// A run without its steps and trigger, borrowed, in the same JSON shape
/// as [`Run`].
#[derive(Serialize)]
struct HeaderView<'a> {
    id: &'a str,
    workflow: &'a str,
    status: RunStatus,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wake_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debounce_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<&'a str>,
    retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a ParentRef>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    depth: u32,
}

impl Run {
    /// Encodes the run without its steps and trigger event, which the store
    /// keeps apart so status updates do not rewrite them.
    pub fn header_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&HeaderView {
            id: &self.id,
            workflow: &self.workflow,
            status: self.status,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            output: self.output.as_ref(),
            error: self.error.as_deref(),
            reason: self.reason.as_deref(),
            wake_at: self.wake_at,
            concurrency_key: self.concurrency_key.as_deref(),
            debounce_key: self.debounce_key.as_deref(),
            workflow_version: self.workflow_version.as_deref(),
            replay_of: self.replay_of.as_deref(),
            retries: self.retries,
            parent: self.parent.as_ref(),
            depth: self.depth,
        })
    }

    /// Creates a queued run with a new time-ordered id, so that ids sort by
    /// creation time.
    pub fn new(workflow: &str, trigger: TriggerEvent) -> Self {
        Run {
            id: uuid::Uuid::now_v7().to_string(),
            workflow: workflow.to_string(),
            status: RunStatus::Queued,
            trigger,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            output: None,
            error: None,
            reason: None,
            wake_at: None,
            concurrency_key: None,
            debounce_key: None,
            workflow_version: None,
            replay_of: None,
            retries: 0,
            parent: None,
            depth: 0,
            steps: Vec::new(),
        }
    }
}
