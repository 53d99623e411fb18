//! Prometheus metrics of the engine and the webhook listener, served as
//! text on `GET /metrics`. Counters and histograms are updated where the
//! events happen. Gauges that the store can count, such as the runs in each
//! unfinished status, are read when `/metrics` is scraped instead.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::run::RunStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabels {
    pub workflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub workflow: String,
    pub status: String,
}

/// A step's kind of work: `connector.operation`, or `script`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// Every metric tether exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    pub runs_started: Family<WorkflowLabels, Counter>,
    pub runs_finished: Family<FinishedLabels, Counter>,
    pub step_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub step_retries: Family<OperationLabels, Counter>,
    pub webhooks_acknowledged: Family<WorkflowLabels, Counter>,
    pub webhooks_rejected: Family<ReasonLabels, Counter>,
    /// Runs in each unfinished status; `queued` is the queue depth.
    pub runs_unfinished: Family<StatusLabels, Gauge>,
    /// Seconds from a schedule tick's time to the start of its run.
    pub schedule_lag: Family<WorkflowLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tether");
        let runs_started = Family::default();
        registry.register(
            "runs_started",
            "Runs that began executing, by workflow",
            runs_started.clone(),
        );
        let runs_finished = Family::default();
        registry.register(
            "runs_finished",
            "Runs that reached a terminal status, by workflow and status",
            runs_finished.clone(),
        );
        let step_duration: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(step_histogram);
        registry.register(
            "step_duration_seconds",
            "Duration of each step attempt, by connector operation or `script`",
            step_duration.clone(),
        );
        let step_retries = Family::default();
        registry.register(
            "step_retries",
            "Step attempts retried after a transient failure, by operation",
            step_retries.clone(),
        );
        let webhooks_acknowledged = Family::default();
        registry.register(
            "webhooks_acknowledged",
            "Webhook deliveries stored and acknowledged, duplicates included, by workflow",
            webhooks_acknowledged.clone(),
        );
        let webhooks_rejected = Family::default();
        registry.register(
            "webhooks_rejected",
            "Webhook deliveries rejected, by reason",
            webhooks_rejected.clone(),
        );
        let runs_unfinished = Family::default();
        registry.register(
            "runs_unfinished",
            "Runs currently in each unfinished status, read from the store at scrape time",
            runs_unfinished.clone(),
        );
        let schedule_lag: Family<WorkflowLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(lag_histogram);
        registry.register(
            "schedule_lag_seconds",
            "Seconds between a schedule tick's time and the start of its run, by workflow",
            schedule_lag.clone(),
        );
        Metrics {
            registry,
            schedule_lag,
            runs_started,
            runs_finished,
            step_duration,
            step_retries,
            webhooks_acknowledged,
            webhooks_rejected,
            runs_unfinished,
        }
    }

    /// Records a step attempt of `operation` that took `seconds`.
    pub fn step_attempted(&self, operation: &str, seconds: f64) {
        let labels = OperationLabels {
            operation: operation.to_string(),
        };
        self.step_duration.get_or_create(&labels).observe(seconds);
    }

    /// Records how late the run of a schedule tick started.
    pub fn schedule_started(&self, workflow: &str, seconds: f64) {
        let labels = WorkflowLabels {
            workflow: workflow.to_string(),
        };
        self.schedule_lag
            .get_or_create(&labels)
            .observe(seconds.max(0.0));
    }

    pub fn step_retried(&self, operation: &str) {
        let labels = OperationLabels {
            operation: operation.to_string(),
        };
        self.step_retries.get_or_create(&labels).inc();
    }

    pub fn webhook_acknowledged(&self, workflow: &str) {
        let labels = WorkflowLabels {
            workflow: workflow.to_string(),
        };
        self.webhooks_acknowledged.get_or_create(&labels).inc();
    }

    pub fn run_started(&self, workflow: &str) {
        let labels = WorkflowLabels {
            workflow: workflow.to_string(),
        };
        self.runs_started.get_or_create(&labels).inc();
    }

    pub fn run_finished(&self, workflow: &str, status: RunStatus) {
        let labels = FinishedLabels {
            workflow: workflow.to_string(),
            status: status.as_str().to_string(),
        };
        self.runs_finished.get_or_create(&labels).inc();
    }

    pub fn webhook_rejected(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.to_string(),
        };
        self.webhooks_rejected.get_or_create(&labels).inc();
    }

    /// Sets the gauge of runs in `status`.
    pub fn set_unfinished(&self, status: RunStatus, count: usize) {
        let labels = StatusLabels {
            status: status.as_str().to_string(),
        };
        let value = i64::try_from(count).unwrap_or(i64::MAX);
        self.runs_unfinished.get_or_create(&labels).set(value);
    }

    /// Encodes every metric in the Prometheus text format, version 0.0.4.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Creates a step duration histogram: buckets from 1 ms to about 65 s,
/// doubling.
fn step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Buckets from 10 ms to about 40 minutes: a late tick after downtime
/// lands in the top ones.
fn lag_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.01, 4.0, 10,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_lag_recorded_by_workflow() {
        let metrics = Metrics::new();
        metrics.schedule_started("nightly", 2.5);
        metrics.schedule_started("nightly", -1.0);
        let text = metrics.encode().expect("encoding");
        assert!(
            text.contains("tether_schedule_lag_seconds_count{workflow=\"nightly\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tether_schedule_lag_seconds_sum{workflow=\"nightly\"} 2.5"),
            "{text}"
        );
    }
}
