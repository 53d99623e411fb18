//! Schedule triggers: cron expressions evaluated in an IANA time zone, the
//! policies for ticks missed while the engine was down, and the scheduler
//! task that turns each tick into a run.
//!
//! Fire times always come from the expression, never from "last fire plus
//! an interval". Around daylight saving changes the rules are those of
//! croner 4 (the Open Cron Pattern Specification):
//!
//! - A local time that does not exist on the spring-forward day fires once,
//!   at the first valid instant after the gap (`30 2 * * *` in New York
//!   fires at 03:00 EDT that day).
//! - A local time that occurs twice on the fall-back day fires once, at its
//!   first occurrence, when the minute, hour and seconds fields each name a
//!   single value.
//! - Expressions with a wildcard, range, list or step in those fields (such
//!   as `*/15 * * * *`) fire on every instant whose local time matches, so
//!   they keep their spacing in absolute time through both changes.
//!
//! Every function here takes the current time as an argument, so tests pin
//! the clock.

mod policy;
mod scheduler;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

pub use policy::{CatchUp, Overlap, Plan, plan};
pub(crate) use scheduler::start_one;
pub use scheduler::{Clock, ScheduleBoard, ScheduleStatus, SystemClock};

/// Prefix of the deduplication key of a scheduled run; the scheduled time
/// in RFC 3339 follows.
pub const DEDUP_PREFIX: &str = "schedule:";

/// A parsed cron expression and the time zone it is read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    timezone: Tz,
}

/// Failure to compute a fire time, such as for `0 0 30 2 *` (30 February),
/// which never matches.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot compute a fire time of `{expression}` near {from}: {reason}")]
pub struct ScheduleError {
    pub expression: String,
    pub from: String,
    pub reason: String,
}

/// Ticks due in a span of time, newest kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The newest due ticks, oldest first, at most as many as requested.
    pub newest: Vec<DateTime<Utc>>,
    /// Number of due ticks, counted up to [`MAX_COUNTED`].
    pub total: usize,
}

/// Maximum number of due ticks counted. A schedule that fires every second
/// and was down for a month has millions of them, so counting stops here.
pub const MAX_COUNTED: usize = 10_000;

impl Schedule {
    /// Parses `expression` in the classic 5-field crontab form (minute,
    /// hour, day of month, month, day of week) or in the 6-field form with a
    /// leading seconds field. `@hourly`, `@daily` and the other nicknames
    /// are read as 5-field expressions. Returns the problem as a message.
    pub fn parse(expression: &str, timezone: Tz) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        let is_nickname = fields == 1 && expression.trim_start().starts_with('@');
        // The field count picks the form, so croner never reads the minute
        // of a 5-field expression as seconds.
        let seconds = match fields {
            5 => Seconds::Disallowed,
            1 if is_nickname => Seconds::Disallowed,
            6 => Seconds::Required,
            count => {
                return Err(format!(
                    "cron expression `{expression}` has {count} fields; write 5 (minute, hour, day of month, month, day of week), such as `30 2 * * *`, or 6 with a leading seconds field, such as `0 30 2 * * *`"
                ));
            }
        };
        let parser = CronParser::builder()
            .seconds(seconds)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expression)
            .map_err(|error| format!("invalid cron expression `{expression}`: {error}"))?;
        Ok(Schedule {
            expression: expression.trim().to_string(),
            cron,
            timezone,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Returns the first fire time strictly after `from`.
    pub fn next_after(&self, from: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let local = from.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .map(|next| next.with_timezone(&Utc))
            .map_err(|error| self.error(from, error))
    }

    /// Returns the next `count` fire times strictly after `from`.
    pub fn upcoming(
        &self,
        from: DateTime<Utc>,
        count: usize,
    ) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = from;
        for _ in 0..count {
            cursor = self.next_after(cursor)?;
            times.push(cursor);
        }
        Ok(times)
    }

    /// Returns the ticks in `(after, until]`: the newest `keep` of them and
    /// how many there are.
    pub fn due(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
    ) -> Result<Due, ScheduleError> {
        let mut newest = VecDeque::with_capacity(keep + 1);
        let mut total = 0;
        // Walk forward from `after`, because the scheduler fires by croner's
        // forward search, so catch-up finds exactly the ticks that would
        // have fired.
        let mut cursor = after;
        while total < MAX_COUNTED {
            let next = self.next_after(cursor)?;
            if next > until {
                break;
            }
            total += 1;
            newest.push_back(next);
            if newest.len() > keep {
                newest.pop_front();
            }
            cursor = next;
        }
        let mut newest = Vec::from(newest);
        if total == MAX_COUNTED {
            // The newest ticks may lie past the counting limit, so they are
            // found again by walking back from `until`.
            newest = self.newest_before(until, keep)?;
            newest.retain(|tick| *tick > after);
        }
        Ok(Due { newest, total })
    }

    /// Returns the newest `keep` ticks at or before `until`, oldest first, found by
    /// walking backwards.
    fn newest_before(
        &self,
        until: DateTime<Utc>,
        keep: usize,
    ) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        let mut found = Vec::new();
        let mut cursor = until.with_timezone(&self.timezone);
        let mut inclusive = true;
        while found.len() < keep {
            cursor = self
                .cron
                .find_previous_occurrence(&cursor, inclusive)
                .map_err(|error| self.error(until, error))?;
            inclusive = false;
            found.push(cursor.with_timezone(&Utc));
        }
        found.reverse();
        Ok(found)
    }

    fn error(&self, from: DateTime<Utc>, error: croner::errors::CronError) -> ScheduleError {
        ScheduleError {
            expression: self.expression.clone(),
            from: format_utc(from),
            reason: error.to_string(),
        }
    }
}

/// Reads an IANA time zone name such as `America/New_York` or `UTC`.
/// Returns the problem as a message, with the closest known name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name).map_err(|_| {
        let known: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        let hint = match crate::workflow::diag::suggest(name, &known) {
            Some(close) => format!("did you mean `{close}`?"),
            None => "use an IANA name such as `America/New_York`, `Europe/Berlin` or `UTC`".into(),
        };
        format!("unknown time zone `{name}`; {hint}")
    })
}

/// Formats an instant as RFC 3339 in UTC with whole seconds, such as
/// `2025-03-09T07:00:00Z`: the form of `trigger.scheduled_at`.
pub fn format_utc(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Formats an instant in `timezone` with its offset, such as
/// `2025-03-09T03:00:00-04:00`.
pub fn format_local(time: DateTime<Utc>, timezone: Tz) -> String {
    time.with_timezone(&timezone)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Returns the deduplication key of the run for the tick at `scheduled_at`.
pub fn dedup_key(scheduled_at: DateTime<Utc>) -> String {
    format!("{DEDUP_PREFIX}{}", format_utc(scheduled_at))
}
