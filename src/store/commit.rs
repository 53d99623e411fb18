//! Group commit: one thread owns the flushing of the sled database. Callers
//! queue a request after their writes and wait; the thread takes every
//! request queued so far, flushes once, and answers them all, so concurrent
//! writers share one fsync and each is answered only after a flush that
//! started after its writes.
//!
//! A blocking `Db::flush` on a dedicated thread is used because sled 0.34's
//! `flush_async` can deadlock when called concurrently.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use super::{Result, StoreError};

type Reply = oneshot::Sender<std::result::Result<(), String>>;

pub(crate) struct GroupCommit {
    requests: mpsc::Sender<Reply>,
}

impl GroupCommit {
    pub(crate) fn start(db: sled::Db) -> Self {
        let (requests, receiver) = mpsc::channel::<Reply>();
        thread::Builder::new()
            .name("tether-flush".into())
            .spawn(move || flush_loop(&db, &receiver))
            .expect("spawning the flush thread must succeed at start-up");
        GroupCommit { requests }
    }

    /// Waits for a flush that covers every write made before this call.
    pub(crate) async fn sync(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(reply)
            .map_err(|_| StoreError::FlusherGone)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Sled(sled::Error::Unsupported(message))),
            Err(_) => Err(StoreError::FlusherGone),
        }
    }
}

fn flush_loop(db: &sled::Db, receiver: &mpsc::Receiver<Reply>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());

        let outcome = db.flush().map(|_| ()).map_err(|error| {
            tracing::error!(%error, "flushing the store failed");
            error.to_string()
        });
        for reply in batch {
            let _ = reply.send(outcome.clone());
        }
    }
}
