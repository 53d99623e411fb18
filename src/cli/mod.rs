//! Command-line helpers for commands that act on runs, either through the
//! data directory or through a running server's API.

pub mod recovery;
