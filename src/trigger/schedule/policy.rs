//! Catch-up and overlap policies, and the plan of which due ticks run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Policy for ticks that passed while the engine was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Record every missed tick as missed; run none of them.
    None,
    /// Run the newest missed tick once, late; record the older ones.
    #[default]
    Latest,
    /// Run the newest missed ticks, up to `catch_up_limit`, oldest first.
    All,
}

/// Policy for a tick that comes while an earlier run of the workflow is
/// unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start no run for the tick, and record it as skipped.
    #[default]
    Skip,
    /// Start the run; it waits behind the workflow's `concurrency`, which is
    /// 1 unless the workflow sets it.
    Queue,
    /// Start the run with no limit of its own.
    Allow,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

/// The ticks to run, oldest first, and how many due ticks are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub run: Vec<DateTime<Utc>>,
    pub missed: usize,
}

/// Decides which due ticks run.
///
/// `newest` contains the newest due ticks, oldest first, and `total` counts
/// every due tick. With `on_time` the newest tick is the one the scheduler
/// slept for and always runs, and only the ticks before it were missed
/// (the process was suspended, say). Without it, every due tick was missed
/// while the engine was down.
pub fn plan(
    newest: &[DateTime<Utc>],
    total: usize,
    catch_up: CatchUp,
    limit: usize,
    on_time: bool,
) -> Plan {
    let Some((&current, earlier)) = newest.split_last() else {
        return Plan::default();
    };
    let total = total.max(newest.len());
    let (missed_ticks, missed_total, mut run) = if on_time {
        (earlier, total - 1, vec![current])
    } else {
        (newest, total, Vec::new())
    };
    let keep = match catch_up {
        CatchUp::None => 0,
        CatchUp::Latest if on_time => 0,
        CatchUp::Latest => 1,
        CatchUp::All => limit,
    };
    let keep = keep.min(missed_ticks.len());
    let caught_up = &missed_ticks[missed_ticks.len() - keep..];
    run.splice(0..0, caught_up.iter().copied());
    Plan {
        run,
        missed: missed_total - keep,
    }
}
