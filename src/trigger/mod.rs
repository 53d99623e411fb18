//! Triggers: how events from outside become runs.

pub mod webhook;
