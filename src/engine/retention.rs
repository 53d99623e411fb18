//! Deletes finished runs older than the retention period in the
//! background, in small batches, so the engine keeps running meanwhile.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Engine;

/// Runs deleted per store call; each batch runs on the blocking pool.
const BATCH: usize = 500;
/// Pause between batches, leaving the store to the engine.
const BATCH_PAUSE: Duration = Duration::from_millis(50);
/// Time between passes once a pass found nothing more to delete.
const PASS_INTERVAL: Duration = Duration::from_secs(600);

/// Starts the retention task: finished runs created more than `retain` ago
/// are deleted until the engine shuts down.
pub fn start(engine: &Arc<Engine>, retain: Duration) {
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        loop {
            let deleted = run_pass(&engine, retain).await;
            if deleted > 0 {
                tracing::info!(
                    deleted,
                    retain_s = retain.as_secs(),
                    "deleted runs past retention"
                );
            }
            if !engine.sleep_unless_stopping(PASS_INTERVAL).await {
                return;
            }
        }
    });
}

/// Deletes batches until none is left or shutdown begins, and returns the
/// number of runs deleted.
pub async fn run_pass(engine: &Arc<Engine>, retain: Duration) -> usize {
    let retain = chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(retain)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut total = 0;
    loop {
        let store = Arc::clone(engine.store());
        let no_retries = engine.retries_or_retention.write().await;
        let batch =
            tokio::task::spawn_blocking(move || store.delete_finished_before(cutoff, BATCH)).await;
        drop(no_retries);
        match batch {
            Ok(Ok(0)) => return total,
            Ok(Ok(deleted)) => total += deleted,
            Ok(Err(error)) => {
                tracing::error!(%error, "deleting runs past retention failed; the next pass tries again");
                return total;
            }
            Err(error) => {
                tracing::error!(%error, "the retention batch task failed; the next pass tries again");
                return total;
            }
        }
        if !engine.sleep_unless_stopping(BATCH_PAUSE).await {
            return total;
        }
    }
}
