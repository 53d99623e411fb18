//! Validates a schedule trigger: the cron expression, the time zone and the
//! catch-up settings.

use chrono::Utc;
use chrono_tz::Tz;

use super::checker::Checker;
use super::model::{DEFAULT_CATCH_UP_LIMIT, ScheduleTrigger};
use super::raw::RawSchedule;
use crate::trigger::schedule::{MAX_COUNTED, Schedule, parse_timezone};

pub(super) fn validate_schedule(
    raw: &RawSchedule,
    checker: &mut Checker<'_>,
) -> Option<ScheduleTrigger> {
    let timezone = match &raw.timezone {
        None => Some(Tz::UTC),
        Some(name) => match parse_timezone(name.value.trim()) {
            Ok(timezone) => Some(timezone),
            Err(message) => {
                checker.error(name.mark, &name.path, message);
                None
            }
        },
    };
    let catch_up_limit = match &raw.catch_up_limit {
        None => Some(DEFAULT_CATCH_UP_LIMIT),
        Some(limit) if limit.value == 0 || limit.value as usize > MAX_COUNTED => {
            let message = format!(
                "catch_up_limit must be between 1 and {MAX_COUNTED}, not {}",
                limit.value
            );
            checker.error(limit.mark, &limit.path, message);
            None
        }
        Some(limit) => Some(limit.value as usize),
    };
    let schedule = parse_cron(raw, timezone?, checker)?;
    Some(ScheduleTrigger {
        schedule,
        catch_up: raw.catch_up.unwrap_or_default(),
        catch_up_limit: catch_up_limit?,
        overlap: raw.overlap.unwrap_or_default(),
    })
}

fn parse_cron(raw: &RawSchedule, timezone: Tz, checker: &mut Checker<'_>) -> Option<Schedule> {
    let cron = &raw.cron;
    let schedule = match Schedule::parse(&cron.value, timezone) {
        Ok(schedule) => schedule,
        Err(message) => {
            checker.error(cron.mark, &cron.path, message);
            return None;
        }
    };
    // An expression that parses can still never match, such as
    // `0 0 30 2 *` (30 February).
    if let Err(error) = schedule.next_after(Utc::now()) {
        let message = format!(
            "cron expression `{}` never fires: {}; check the day of month and month fields",
            cron.value, error.reason
        );
        checker.error(cron.mark, &cron.path, message);
        return None;
    }
    Some(schedule)
}
