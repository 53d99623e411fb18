//! Callers waiting for a run to end, such as a webhook with
//! `respond: sync` that responds with the run's output.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::run::Run;
use super::{Engine, EngineError, lock};

/// Senders of the callers waiting for each run, by run id.
#[derive(Default)]
pub(crate) struct Waiters {
    by_run: Mutex<HashMap<String, Vec<oneshot::Sender<Run>>>>,
}

impl Waiters {
    /// Hands the ended run to everyone waiting for it.
    pub(crate) fn notify(&self, run: &Run) {
        let senders = lock(&self.by_run).remove(&run.id).unwrap_or_default();
        for sender in senders {
            let _ = sender.send(run.clone());
        }
    }

    /// Returns whether a caller waits for the run to end.
    pub(crate) fn is_awaited(&self, run_id: &str) -> bool {
        lock(&self.by_run).contains_key(run_id)
    }

    fn register(&self, run_id: &str) -> oneshot::Receiver<Run> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.by_run)
            .entry(run_id.to_string())
            .or_default()
            .push(sender);
        receiver
    }

    fn forget(&self, run_id: &str) {
        let mut by_run = lock(&self.by_run);
        if let Some(senders) = by_run.get_mut(run_id) {
            senders.retain(|sender| !sender.is_closed());
            if senders.is_empty() {
                by_run.remove(run_id);
            }
        }
    }
}

impl Engine {
    /// Waits up to `timeout` for the run to reach a terminal status, and
    /// returns it then, or `None` when the time passes first. A run that
    /// parks on a timer counts as not ended.
    pub async fn wait_for_end(
        &self,
        run_id: &str,
        timeout: Duration,
    ) -> Result<Option<Run>, EngineError> {
        // Registering before reading the store closes the gap where the
        // run ends between the two: `finish` saves the header first and
        // notifies after, so one of the two sees the end.
        let receiver = self.waiters.register(run_id);
        if let Some(run) = self.store.load_run(run_id)?
            && run.status.is_terminal()
        {
            self.waiters.forget(run_id);
            // The end may not be flushed yet when the run ended before this
            // caller registered.
            self.store.sync().await?;
            return Ok(Some(run));
        }
        let ended = tokio::time::timeout(timeout, receiver).await;
        self.waiters.forget(run_id);
        Ok(ended.ok().and_then(Result::ok))
    }
}
