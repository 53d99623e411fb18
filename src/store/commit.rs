//! Group commit: one thread owns the flushing of the sled database. Callers
//! queue a request and wait. The thread takes every request queued so far,
//! flushes once and replies to all of them, so concurrent writers share one
//! fsync. Each reply comes only after a flush that started after the
//! caller's writes.
//!
//! New runs are written by the same thread, just before the flush that
//! covers them. Writing them one after another on one thread costs far less
//! than many tokio workers inserting into the same sled trees at once, and
//! the caller's only wait is the one it has anyway: the flush.
//!
//! A caller that can wait a little, such as a run recording its end,
//! requests a flush within a window instead. The thread then waits until the
//! window closes or an urgent request comes, so such writes ride along with
//! other flushes rather than each costing one.
//!
//! A blocking flush on a dedicated thread is used because sled 0.34's
//! `flush_async` can deadlock when called concurrently. The flush is
//! [`Durable::flush`], which adds the `fdatasync` sled leaves out.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::durable::Durable;
use super::{Inserted, Result, StoreError};
use crate::engine::run::RunStatus;

/// A new run, encoded by the caller, for the commit thread to write.
pub(crate) struct NewRun {
    pub(crate) id: String,
    pub(crate) workflow: String,
    pub(crate) status: RunStatus,
    pub(crate) header: Vec<u8>,
    pub(crate) trigger: Vec<u8>,
    /// The deduplication key to claim with the run, already joined with
    /// its workflow.
    pub(crate) claim: Option<Vec<u8>>,
    /// Whether the claim goes in one transaction with the run, rather than
    /// after it (see `SledStore::drop_unclaimed_runs`).
    pub(crate) claim_in_transaction: bool,
}

/// Writes one new run. Runs on the commit thread.
pub(crate) type RunWriter = Box<dyn Fn(&NewRun) -> Result<Inserted> + Send>;

type Flushed = oneshot::Sender<std::result::Result<(), String>>;

enum Request {
    Sync(Flushed),
    /// A flush that may start as late as the given instant.
    SyncBy(Instant, Flushed),
    Insert(Box<NewRun>, oneshot::Sender<Result<Inserted>>),
}

pub(crate) struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    pub(crate) fn start(durable: Arc<Durable>, writer: RunWriter) -> Self {
        let (requests, receiver) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("tether-flush".into())
            .spawn(move || commit_loop(&durable, &writer, &receiver))
            .expect("spawning the flush thread must succeed at start-up");
        GroupCommit { requests }
    }

    /// Waits for a flush that covers every write made before this call.
    pub(crate) async fn sync(&self) -> Result<()> {
        let (reply, response) = oneshot::channel();
        self.send(Request::Sync(reply))?;
        response
            .await
            .map_err(|_| StoreError::FlusherGone)?
            .map_err(flush_error)
    }

    /// Waits for a flush that covers every write made before this call and
    /// starts at most `window` from now.
    pub(crate) async fn sync_within(&self, window: Duration) -> Result<()> {
        let (reply, response) = oneshot::channel();
        let request = match Instant::now().checked_add(window) {
            Some(by) => Request::SyncBy(by, reply),
            // A window too long for `Instant` gets an urgent flush.
            None => Request::Sync(reply),
        };
        self.send(request)?;
        response
            .await
            .map_err(|_| StoreError::FlusherGone)?
            .map_err(flush_error)
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests
            .send(request)
            .map_err(|_| StoreError::FlusherGone)
    }

    /// Writes `run` on the commit thread and waits for the flush that
    /// covers it.
    pub(crate) async fn insert(&self, run: NewRun) -> Result<Inserted> {
        let (reply, response) = oneshot::channel();
        self.send(Request::Insert(Box::new(run), reply))?;
        response.await.map_err(|_| StoreError::FlusherGone)?
    }
}

fn flush_error(message: String) -> StoreError {
    StoreError::Sled(sled::Error::Unsupported(message))
}

fn commit_loop(durable: &Durable, writer: &RunWriter, receiver: &mpsc::Receiver<Request>) {
    let mut syncs = Vec::new();
    let mut inserts = Vec::new();
    // The earliest time by which a waiting `SyncBy` wants its flush.
    let mut deadline: Option<Instant> = None;
    let mut urgent = false;
    let mut closed = false;
    loop {
        let first = match deadline {
            None => match receiver.recv() {
                Ok(request) => Some(request),
                Err(mpsc::RecvError) => break,
            },
            Some(deadline) => {
                match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        closed = true;
                        None
                    }
                }
            }
        };
        for request in first.into_iter().chain(receiver.try_iter()) {
            match request {
                Request::Sync(reply) => {
                    urgent = true;
                    syncs.push(reply);
                }
                Request::SyncBy(by, reply) => {
                    deadline = Some(deadline.map_or(by, |deadline| deadline.min(by)));
                    syncs.push(reply);
                }
                Request::Insert(run, reply) => {
                    urgent = true;
                    let written = writer(&run);
                    if let Err(error) = &written {
                        tracing::error!(run_id = %run.id, workflow = %run.workflow, %error,
                            "storing a new run failed");
                    }
                    inserts.push((run.id.clone(), written, reply));
                }
            }
        }
        let due = deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if !urgent && !due && !closed {
            continue;
        }

        let outcome = durable.flush().map_err(|error| {
            tracing::error!(%error, "flushing the store failed");
            error.to_string()
        });
        for reply in syncs.drain(..) {
            let _ = reply.send(outcome.clone());
        }
        for (run_id, written, reply) in inserts.drain(..) {
            let response = match (&outcome, written) {
                (Ok(()), written) => written,
                (Err(message), Ok(inserted)) => Err(StoreError::NotFlushed {
                    run_id,
                    inserted,
                    message: message.clone(),
                }),
                (Err(_), Err(error)) => Err(error),
            };
            let _ = reply.send(response);
        }
        if closed {
            break;
        }
        deadline = None;
        urgent = false;
    }
}
