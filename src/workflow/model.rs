//! Validated workflow types: what the engine runs. Every expression is
//! compiled, every reference resolved and every secret read by the time a
//! value of these types exists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::expr::{Script, Template, ValueTemplate};
use crate::trigger::schedule::{CatchUp, Overlap, Schedule};

/// Default largest webhook body: 10 MiB.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// Hash of the file's text; runs record the version they started with.
    pub version: String,
    pub trigger: Trigger,
    pub debounce: Option<Debounce>,
    /// Runs of this workflow in flight at once; `None` means no own limit.
    pub concurrency: Option<usize>,
    /// Groups runs so at most `per_key` of one group are in flight at once.
    pub concurrency_key: Option<ConcurrencyKey>,
    pub vars: Value,
    /// Secrets the workflow's expressions use, read from the environment at
    /// load.
    pub secrets: BTreeMap<String, String>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub steps: Vec<Step>,
    pub on_failure: Vec<Step>,
}

/// Events whose `key` is equal within `window` of the first one make one
/// run, which starts at the end of the window with the last event.
#[derive(Debug, Clone)]
pub struct Debounce {
    /// Evaluated against `trigger` and `vars` for each event.
    pub key: Template,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct ConcurrencyKey {
    /// Evaluated once per run, against `trigger`, when the run is stored.
    pub key: Template,
    pub per_key: usize,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Webhook(WebhookTrigger),
    Schedule(Box<ScheduleTrigger>),
    Poll(Box<PollTrigger>),
    Manual,
}

/// Most pages one poll follows through `next`.
pub const MAX_POLL_PAGES: usize = 100;

/// Default time a poll keeps a seen key: 30 days.
pub const DEFAULT_POLL_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Calls a connector operation every interval and starts one run per item
/// key not seen before.
#[derive(Debug, Clone)]
pub struct PollTrigger {
    pub connector: String,
    pub operation: String,
    pub with: ValueTemplate,
    pub every: Duration,
    /// Expression over `response` giving the list of items.
    pub items: Template,
    /// Expression over `item` giving its key.
    pub key: Template,
    /// Expression over `response` giving the next page's `with`, or null.
    pub next: Option<Template>,
    pub backfill: bool,
    /// How long a seen item key is remembered; after that the item counts
    /// as new.
    pub retention: Duration,
}

/// Default maximum of runs that `catch_up: all` starts at once.
pub const DEFAULT_CATCH_UP_LIMIT: usize = 100;

#[derive(Debug, Clone)]
pub struct ScheduleTrigger {
    pub schedule: Schedule,
    pub catch_up: CatchUp,
    /// Most missed ticks that `catch_up: all` runs; older ones are missed.
    pub catch_up_limit: usize,
    pub overlap: Overlap,
}

#[derive(Debug, Clone)]
pub struct WebhookTrigger {
    /// Request path, starting with `/hooks/`.
    pub path: String,
    pub verify: Option<Verify>,
    /// Header name in lower case.
    pub dedup_header: Option<String>,
    pub max_body: usize,
    pub respond: Respond,
    pub ping: Option<Ping>,
}

/// A platform's test request that gets 200 from a webhook without a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// WooCommerce's request when a webhook is saved: the form body
    /// `webhook_id=<id>`, without a signature.
    WooCommerce,
}

/// Default time `respond: sync` waits for the run before responding 202.
pub const DEFAULT_RESPOND_TIMEOUT: Duration = Duration::from_secs(10);

/// Point at which a webhook request gets its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respond {
    /// 202 with the run id as soon as the event is stored.
    Accepted,
    /// After the run ends, with its output, or 202 when the timeout passes
    /// first.
    Sync(Duration),
}

/// Signature scheme that a webhook request must pass.
#[derive(Debug, Clone)]
pub enum Verify {
    Hmac(HmacVerify),
    Timestamped(TimestampedVerify),
}

/// Default `tolerance` of a timestamped signature: 5 minutes.
pub const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// HMAC-SHA256 over `<t>.<raw body>`, with `t` and one or more hex
/// signatures in one header: `t=1700000000,v1=ab12...,v1=cd34...`.
#[derive(Clone)]
pub struct TimestampedVerify {
    /// Header name in lower case.
    pub header: String,
    pub secret: String,
    /// Largest accepted distance between `t` and the current time, in
    /// either direction.
    pub tolerance: Duration,
}

impl std::fmt::Debug for TimestampedVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampedVerify")
            .field("header", &self.header)
            .field("secret", &"[redacted]")
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    Base64,
    Hex,
}

/// HMAC-SHA256 over the raw request body, compared in constant time.
#[derive(Clone)]
pub struct HmacVerify {
    /// Header name in lower case.
    pub header: String,
    pub secret: String,
    pub encoding: SignatureEncoding,
    pub prefix: Option<String>,
}

impl std::fmt::Debug for HmacVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacVerify")
            .field("header", &self.header)
            .field("secret", &"[redacted]")
            .field("encoding", &self.encoding)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Default largest list a `foreach` accepts.
pub const DEFAULT_MAX_ITEMS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// Path of the step in its file, such as `steps[1]`.
    pub path: String,
    pub kind: StepKind,
    pub retry: Option<RetryPolicy>,
    pub timeout: Option<Duration>,
    /// Runs the step only when true; otherwise it is recorded as skipped.
    pub condition: Option<Template>,
    pub continue_on_error: bool,
    /// Steps that run when this one fails.
    pub on_failure: Vec<Step>,
    /// In an `on_failure` list: success here recovers the failed step.
    pub recover: bool,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Uses {
        connector: String,
        operation: String,
        with: ValueTemplate,
    },
    Script(Script),
    /// Parks the run for a fixed time.
    Delay(Duration),
    /// Parks the run until the time the expression gives.
    WaitUntil(Template),
    /// Runs `steps` once per item, with `item` and `index` in scope; the
    /// output lists each iteration's last output in input order.
    Foreach {
        items: Template,
        steps: Vec<Step>,
        concurrency: usize,
        max_items: usize,
    },
    /// Runs the steps of the case named by the value, or `default`.
    Switch {
        value: Template,
        cases: Vec<(String, Vec<Step>)>,
        default: Option<Vec<Step>>,
    },
    /// Runs named branches at once; the output maps branch names to their
    /// last outputs.
    Parallel {
        branches: Vec<(String, Vec<Step>)>,
    },
    /// Runs another workflow as a child run and waits for it.
    Call {
        workflow: String,
        with: ValueTemplate,
    },
}

impl StepKind {
    /// Returns whether running the step again can have an effect outside
    /// the engine.
    pub fn has_side_effects(&self) -> bool {
        matches!(self, StepKind::Uses { .. })
    }
}

/// Exponential backoff: attempt `n` (from 1) waits
/// `backoff * multiplier^(n-1)`, capped at `max_backoff`, with a random part
/// of `jitter` of that time taken off.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub multiplier: f64,
    pub max_backoff: Duration,
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// One attempt: no retry unless the workflow or step sets one.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Duration::from_secs(1),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next` (2 for the first retry), without jitter.
    pub fn base_delay(&self, next: u32) -> Duration {
        let exponent = next.saturating_sub(2) as i32;
        let seconds = self.backoff.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(seconds.min(self.max_backoff.as_secs_f64()))
    }
}
