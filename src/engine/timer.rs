//! Durable timers, in memory: the wake times themselves are stored with
//! the runs (`Run::wake_at`), and this task only queues each run when its
//! time comes. On start-up the engine schedules every waiting run again, and
//! one whose time passed while the engine was down runs at once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

/// Where to send `(wake time, run id)` to queue a run at that time.
pub(crate) type TimerSender = mpsc::UnboundedSender<(DateTime<Utc>, String)>;

/// Starts the timer task.
pub(crate) fn start(queue: mpsc::UnboundedSender<String>) -> TimerSender {
    let (sender, mut requests) = mpsc::unbounded_channel::<(DateTime<Utc>, String)>();
    tokio::spawn(async move {
        let mut pending: BTreeSet<(DateTime<Utc>, String)> = BTreeSet::new();
        loop {
            let next = pending.first().map(|(at, _)| *at);
            let sleep = next.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                request = requests.recv() => match request {
                    Some(timer) => {
                        pending.insert(timer);
                    }
                    None => return,
                },
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {
                    let now = Utc::now();
                    while pending.first().is_some_and(|(at, _)| *at <= now) {
                        let (_, run_id) = pending.pop_first().expect("checked that an entry exists");
                        if queue.send(run_id).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    sender
}
