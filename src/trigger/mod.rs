//! Triggers: how events from outside become runs.

pub mod poll;
pub mod schedule;
pub mod timestamped;
pub mod webhook;
