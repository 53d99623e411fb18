//! Step errors carry their retry meaning, so the engine decides from the
//! error alone whether another attempt can help.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// May succeed later: connection errors, timeouts, 408, 429, 5xx, and
    /// answers a connector marks retryable.
    Transient,
    /// Trying again gives the same answer: other 4xx, script errors, bad input.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    pub kind: ErrorKind,
    /// Wait the remote side asked for, from `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl StepError {
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            kind: ErrorKind::Permanent,
            retry_after: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            kind: ErrorKind::Transient,
            retry_after: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}
