//! Command-line helpers: commands that act on runs, either through the
//! data directory or through a running server's API, and schedule times.

pub mod recovery;
pub mod run;
pub mod schedule;
