//! Fire times against a pinned `from`, across daylight saving changes.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("invalid test time {text}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expression: &str, timezone: &str) -> Schedule {
    let timezone = parse_timezone(timezone).expect("a known time zone");
    Schedule::parse(expression, timezone).expect("a valid expression")
}

fn upcoming(expression: &str, timezone: &str, from: &str, count: usize) -> Vec<String> {
    schedule(expression, timezone)
        .upcoming(at(from), count)
        .expect("fire times")
        .into_iter()
        .map(format_utc)
        .collect()
}

#[test]
fn spring_forward_gap_fires_after_gap() {
    let times = upcoming("30 2 * * *", "America/New_York", "2025-03-08T06:00:00Z", 3);
    assert_eq!(
        times,
        [
            "2025-03-08T07:30:00Z",
            "2025-03-09T07:00:00Z",
            "2025-03-10T06:30:00Z"
        ]
    );
}

#[test]
fn gap_tick_fires_once_from_inside_gap() {
    // 06:59:59Z is 01:59:59 EST, the last second before the gap.
    let times = upcoming("30 2 * * *", "America/New_York", "2025-03-09T06:59:59Z", 2);
    assert_eq!(times, ["2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"]);
}

#[test]
fn weekday_one_is_monday() {
    let times = upcoming("0 9 * * 1", "UTC", "2025-05-31T00:00:00Z", 3);
    assert_eq!(
        times,
        [
            "2025-06-02T09:00:00Z",
            "2025-06-09T09:00:00Z",
            "2025-06-16T09:00:00Z"
        ]
    );
}

#[test]
fn weekday_zero_and_seven_are_sunday() {
    for expression in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
        let times = upcoming(expression, "UTC", "2025-05-31T00:00:00Z", 2);
        assert_eq!(
            times,
            ["2025-06-01T09:00:00Z", "2025-06-08T09:00:00Z"],
            "{expression}"
        );
    }
}

#[test]
fn names_of_days_and_months() {
    let times = upcoming("0 12 * JUN MON-FRI", "UTC", "2025-05-31T00:00:00Z", 2);
    assert_eq!(times, ["2025-06-02T12:00:00Z", "2025-06-03T12:00:00Z"]);
}

#[test]
fn five_fields_step_minutes_not_seconds() {
    let times = upcoming("*/5 * * * *", "UTC", "2025-06-01T10:02:30Z", 3);
    assert_eq!(
        times,
        [
            "2025-06-01T10:05:00Z",
            "2025-06-01T10:10:00Z",
            "2025-06-01T10:15:00Z"
        ]
    );
}

#[test]
fn six_fields_lead_with_seconds() {
    let times = upcoming("*/20 * * * * *", "UTC", "2025-06-01T10:00:05Z", 3);
    assert_eq!(
        times,
        [
            "2025-06-01T10:00:20Z",
            "2025-06-01T10:00:40Z",
            "2025-06-01T10:01:00Z"
        ]
    );
}

#[test]
fn fall_back_repeated_time_fires_once() {
    let times = upcoming("30 1 * * *", "America/New_York", "2025-11-01T00:00:00Z", 3);
    assert_eq!(
        times,
        [
            "2025-11-01T05:30:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-03T06:30:00Z"
        ]
    );
}

#[test]
fn fall_back_second_occurrence_is_not_a_tick() {
    // 06:00Z is 01:00 EST, inside the repeated hour after 01:30 EDT passed.
    let times = upcoming("30 1 * * *", "America/New_York", "2025-11-02T06:00:00Z", 1);
    assert_eq!(times, ["2025-11-03T06:30:00Z"]);
}

#[test]
fn sub_hour_keeps_absolute_spacing_at_spring_forward() {
    let times = upcoming(
        "*/30 * * * *",
        "America/New_York",
        "2025-03-09T06:00:00Z",
        4,
    );
    assert_eq!(
        times,
        [
            "2025-03-09T06:30:00Z",
            "2025-03-09T07:00:00Z",
            "2025-03-09T07:30:00Z",
            "2025-03-09T08:00:00Z"
        ]
    );
}

#[test]
fn sub_hour_keeps_absolute_spacing_at_fall_back() {
    let times = upcoming(
        "*/30 * * * *",
        "America/New_York",
        "2025-11-02T04:45:00Z",
        6,
    );
    assert_eq!(
        times,
        [
            "2025-11-02T05:00:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-02T06:00:00Z",
            "2025-11-02T06:30:00Z",
            "2025-11-02T07:00:00Z",
            "2025-11-02T07:30:00Z"
        ]
    );
}

#[test]
fn fall_back_in_southern_hemisphere() {
    // Sydney goes from AEDT (+11) to AEST (+10) at 03:00 on 2025-04-06, so
    // 02:30 happens twice: at 15:30Z and 16:30Z the day before.
    let times = upcoming("30 2 * * *", "Australia/Sydney", "2025-04-05T12:00:00Z", 2);
    assert_eq!(times, ["2025-04-05T15:30:00Z", "2025-04-06T16:30:00Z"]);
}

#[test]
fn default_timezone_is_utc_not_host() {
    let utc = Schedule::parse("0 9 * * *", Tz::UTC).expect("valid");
    let next = utc.next_after(at("2025-06-01T00:00:00Z")).expect("a time");
    assert_eq!(format_utc(next), "2025-06-01T09:00:00Z");
}

#[test]
fn next_after_is_strict() {
    let times = upcoming("0 9 * * *", "UTC", "2025-06-01T09:00:00Z", 1);
    assert_eq!(times, ["2025-06-02T09:00:00Z"]);
}

#[test]
fn wrong_field_count_rejected() {
    for expression in ["* * * *", "0 0 0 1 1 * 2030", ""] {
        let error = Schedule::parse(expression, Tz::UTC).expect_err(expression);
        assert!(error.contains("fields"), "{expression}: {error}");
    }
}

#[test]
fn out_of_range_value_rejected() {
    let error = Schedule::parse("61 * * * *", Tz::UTC).expect_err("minute 61");
    assert!(
        error.contains("invalid cron expression `61 * * * *`"),
        "{error}"
    );
}

#[test]
fn nickname_reads_as_five_fields() {
    let times = upcoming("@hourly", "UTC", "2025-06-01T10:20:00Z", 2);
    assert_eq!(times, ["2025-06-01T11:00:00Z", "2025-06-01T12:00:00Z"]);
}

#[test]
fn impossible_date_is_error() {
    let schedule = schedule("0 0 30 2 *", "UTC");
    let error = schedule
        .next_after(at("2025-06-01T00:00:00Z"))
        .expect_err("30 February never comes");
    assert_eq!(error.expression, "0 0 30 2 *");
}

#[test]
fn unknown_timezone_suggests_name() {
    let error = parse_timezone("America/NewYork").expect_err("misspelt");
    assert!(error.contains("`America/NewYork`"), "{error}");
    assert!(
        error.contains("did you mean `America/New_York`?"),
        "{error}"
    );
}

#[test]
fn local_time_shows_offset() {
    let tz = parse_timezone("America/New_York").expect("known");
    let text = format_local(at("2025-03-09T07:00:00Z"), tz);
    assert_eq!(text, "2025-03-09T03:00:00-04:00");
}

#[test]
fn due_counts_and_keeps_newest() {
    let every_three_hours = schedule("0 */3 * * *", "UTC");
    let due = every_three_hours
        .due(at("2025-06-01T00:00:00Z"), at("2025-06-01T13:30:00Z"), 2)
        .expect("due ticks");
    assert_eq!(due.total, 4);
    let newest: Vec<String> = due.newest.into_iter().map(format_utc).collect();
    assert_eq!(newest, ["2025-06-01T09:00:00Z", "2025-06-01T12:00:00Z"]);
}

#[test]
fn due_includes_until_and_excludes_after() {
    let hourly = schedule("0 * * * *", "UTC");
    let due = hourly
        .due(at("2025-06-01T10:00:00Z"), at("2025-06-01T12:00:00Z"), 5)
        .expect("due ticks");
    let newest: Vec<String> = due.newest.into_iter().map(format_utc).collect();
    assert_eq!(newest, ["2025-06-01T11:00:00Z", "2025-06-01T12:00:00Z"]);
}

#[test]
fn due_past_count_limit_keeps_real_newest() {
    let every_second = schedule("* * * * * *", "UTC");
    let due = every_second
        .due(at("2025-06-01T00:00:00Z"), at("2025-06-02T00:00:00Z"), 2)
        .expect("due ticks");
    assert_eq!(due.total, MAX_COUNTED);
    let newest: Vec<String> = due.newest.into_iter().map(format_utc).collect();
    assert_eq!(newest, ["2025-06-01T23:59:59Z", "2025-06-02T00:00:00Z"]);
}

#[test]
fn backward_walk_matches_forward_across_dst() {
    // `due` falls back to a backward walk past MAX_COUNTED ticks; both
    // walks must find the same ticks around both changes.
    for (expression, from, until) in [
        ("30 2 * * *", "2025-03-07T00:00:00Z", "2025-03-12T00:00:00Z"),
        ("30 1 * * *", "2025-10-31T00:00:00Z", "2025-11-05T00:00:00Z"),
        (
            "*/30 * * * *",
            "2025-11-02T03:00:00Z",
            "2025-11-02T09:00:00Z",
        ),
        (
            "*/30 * * * *",
            "2025-03-09T04:00:00Z",
            "2025-03-09T10:00:00Z",
        ),
    ] {
        let schedule = schedule(expression, "America/New_York");
        let forward = schedule.due(at(from), at(until), 100).expect("forward");
        let backward = schedule
            .newest_before(at(until), forward.total)
            .expect("backward");
        assert_eq!(backward, forward.newest, "{expression}");
    }
}

fn ticks(texts: &[&str]) -> Vec<DateTime<Utc>> {
    texts.iter().map(|text| at(text)).collect()
}

#[test]
fn plan_after_downtime_by_policy() {
    let due = ticks(&[
        "2025-06-01T03:00:00Z",
        "2025-06-01T06:00:00Z",
        "2025-06-01T09:00:00Z",
    ]);
    let none = plan(&due, 3, CatchUp::None, 100, false);
    assert!(none.run.is_empty(), "{:?}", none.run);
    assert_eq!(none.missed, 3);

    let latest = plan(&due, 3, CatchUp::Latest, 100, false);
    assert_eq!(latest.run, ticks(&["2025-06-01T09:00:00Z"]));
    assert_eq!(latest.missed, 2);

    let limited = plan(&due, 3, CatchUp::All, 2, false);
    assert_eq!(
        limited.run,
        ticks(&["2025-06-01T06:00:00Z", "2025-06-01T09:00:00Z"])
    );
    assert_eq!(limited.missed, 1);

    let all = plan(&due, 3, CatchUp::All, 100, false);
    assert_eq!(all.run, due);
    assert_eq!(all.missed, 0);
}

#[test]
fn plan_on_time_always_runs_newest() {
    let due = ticks(&["2025-06-01T06:00:00Z", "2025-06-01T09:00:00Z"]);
    for catch_up in [CatchUp::None, CatchUp::Latest] {
        let decided = plan(&due, 5, catch_up, 100, true);
        assert_eq!(decided.run, ticks(&["2025-06-01T09:00:00Z"]));
        assert_eq!(decided.missed, 4);
    }
    let all = plan(&due, 2, CatchUp::All, 100, true);
    assert_eq!(all.run, due);
    assert_eq!(all.missed, 0);
}

#[test]
fn plan_with_nothing_due_is_empty() {
    assert_eq!(plan(&[], 0, CatchUp::All, 100, true), Plan::default());
}

#[test]
fn dedup_key_names_scheduled_time() {
    let key = dedup_key(at("2025-03-09T03:00:00-04:00"));
    assert_eq!(key, "schedule:2025-03-09T07:00:00Z");
}
