//! Raw workflow types: a direct mirror of the YAML, as written by the
//! operator. Nothing here is checked beyond its shape; `validate` turns these
//! into the types the engine runs.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::de::Spanned;
use crate::trigger::schedule::{CatchUp, Overlap};

#[derive(Debug, Deserialize)]
pub struct RawWorkflow {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub trigger: Spanned<RawTrigger>,
    /// Folds events with the same key inside a window into one run.
    #[serde(default)]
    pub debounce: Option<Spanned<RawDebounce>>,
    #[serde(default)]
    pub concurrency: Option<Spanned<u32>>,
    /// Expression over `trigger` whose value groups runs, such as a SKU.
    #[serde(default)]
    pub concurrency_key: Option<Spanned<String>>,
    /// Runs with the same concurrency key in flight at once (default 1).
    #[serde(default)]
    pub concurrency_per_key: Option<Spanned<u32>>,
    #[serde(default)]
    pub vars: IndexMap<String, Value>,
    #[serde(default)]
    pub retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    pub steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub on_failure: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawTrigger {
    Webhook(Box<RawWebhook>),
    Schedule(Box<RawSchedule>),
    Poll(Box<RawPoll>),
    Manual,
}

#[derive(Debug, Deserialize)]
pub struct RawPoll {
    /// `connector.operation` to call each interval.
    pub uses: Spanned<String>,
    #[serde(default)]
    pub with: IndexMap<String, Spanned<Value>>,
    /// Time between polls, such as `5m`.
    pub every: Spanned<String>,
    /// Expression over `response` (the operation's output) giving the list
    /// of items.
    pub items: Spanned<String>,
    /// Expression over `item` giving the key that identifies it.
    pub key: Spanned<String>,
    /// Expression over `response` giving the next page's `with`, or null on
    /// the last page.
    #[serde(default)]
    pub next: Option<Spanned<String>>,
    /// Starts runs for the items present at the first poll too.
    #[serde(default)]
    pub backfill: bool,
    /// Time a seen key is kept, such as `30d`.
    #[serde(default)]
    pub retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSchedule {
    /// Five fields (minute to day of week), or six with leading seconds.
    pub cron: Spanned<String>,
    /// IANA time zone name; UTC when left out.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub catch_up: Option<CatchUp>,
    #[serde(default)]
    pub catch_up_limit: Option<Spanned<u32>>,
    #[serde(default)]
    pub overlap: Option<Overlap>,
}

#[derive(Debug, Deserialize)]
pub struct RawWebhook {
    pub path: Spanned<String>,
    #[serde(default)]
    pub verify: Option<RawVerify>,
    #[serde(default)]
    pub dedup_header: Option<Spanned<String>>,
    /// Largest accepted body, such as `10MiB` or a number of bytes.
    #[serde(default)]
    pub max_body: Option<Spanned<Value>>,
    /// `accepted` (the default) responds 202 once the event is stored, and
    /// `sync` waits for the run and responds with its output.
    #[serde(default)]
    pub respond: Option<RawRespond>,
    /// How long `respond: sync` waits for the run, such as `10s`.
    #[serde(default)]
    pub respond_timeout: Option<Spanned<String>>,
    /// A platform whose unsigned test request gets 200 without a run, such
    /// as the ping WooCommerce sends when a webhook is saved.
    #[serde(default)]
    pub ping: Option<RawPing>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawPing {
    Woocommerce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawRespond {
    Accepted,
    Sync,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawVerify {
    HmacSha256(RawHmac),
    TimestampedHmacSha256(RawTimestampedHmac),
}

/// A signature header such as Stripe's `t=<unix seconds>,v1=<hex>`, where
/// the HMAC covers `<t>.<raw body>`.
#[derive(Debug, Deserialize)]
pub struct RawTimestampedHmac {
    pub header: Spanned<String>,
    pub secret: Spanned<String>,
    /// Largest accepted distance between `t` and the current time, such as
    /// `5m`.
    #[serde(default)]
    pub tolerance: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawHmac {
    pub header: Spanned<String>,
    pub secret: Spanned<String>,
    #[serde(default)]
    pub encoding: Option<RawEncoding>,
    /// Text before the signature in the header, such as `sha256=`.
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawEncoding {
    Base64,
    Hex,
}

#[derive(Debug, Deserialize)]
pub struct RawStep {
    pub id: Spanned<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uses: Option<Spanned<String>>,
    #[serde(default)]
    pub with: IndexMap<String, Spanned<Value>>,
    #[serde(default)]
    pub script: Option<Spanned<String>>,
    /// Pause the run for this long, such as `5s` or `2h`.
    #[serde(default)]
    pub delay: Option<Spanned<String>>,
    /// Pause the run until this time: an expression giving an RFC 3339
    /// timestamp.
    #[serde(default)]
    pub wait_until: Option<Spanned<String>>,
    #[serde(default)]
    pub retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Runs the step only when this expression is true.
    #[serde(default, rename = "if")]
    pub condition: Option<Spanned<String>>,
    /// Lets the run go on when the step fails.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Runs `steps` once per item of this list expression.
    #[serde(default)]
    pub foreach: Option<Spanned<String>>,
    /// Items of a `foreach` in flight at once (default 1).
    #[serde(default)]
    pub concurrency: Option<Spanned<u32>>,
    /// Largest list a `foreach` accepts (default 10,000).
    #[serde(default)]
    pub max_items: Option<Spanned<u32>>,
    /// Steps of each `foreach` iteration.
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    /// Chooses among `cases` by this expression's value.
    #[serde(default)]
    pub switch: Option<Spanned<String>>,
    #[serde(default)]
    pub cases: IndexMap<String, Vec<Spanned<RawStep>>>,
    /// Steps of a `switch` when no case matches.
    #[serde(default)]
    pub default: Option<Vec<Spanned<RawStep>>>,
    /// Named branches that run at once.
    #[serde(default)]
    pub parallel: IndexMap<String, Vec<Spanned<RawStep>>>,
    /// Runs another workflow with `with` as its input and waits for it.
    #[serde(default)]
    pub call: Option<Spanned<String>>,
    /// Steps that run when this step fails; they see `error`.
    #[serde(default)]
    pub on_failure: Vec<Spanned<RawStep>>,
    /// In an `on_failure` list: when this step succeeds, the failed step
    /// counts as recovered, with this step's output as its own.
    #[serde(default)]
    pub recover: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawDebounce {
    pub key: Spanned<String>,
    pub window: Spanned<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawRetry {
    pub attempts: Spanned<u32>,
    #[serde(default)]
    pub backoff: Option<Spanned<String>>,
    #[serde(default)]
    pub multiplier: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_backoff: Option<Spanned<String>>,
    /// Fraction of each backoff that is randomised, from 0 to 1.
    #[serde(default)]
    pub jitter: Option<Spanned<f64>>,
}
