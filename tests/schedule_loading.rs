//! Loading schedule triggers: defaults, and each problem reported with its
//! file, line and column.

use std::path::PathBuf;

use chrono_tz::Tz;
use tempfile::TempDir;
use tether::expr::{Limits, ScriptEngine};
use tether::trigger::schedule::{CatchUp, Overlap};
use tether::workflow::model::ScheduleTrigger;
use tether::workflow::{Env, Registry, Trigger, load_files};

fn load(workflow: &str) -> (Registry, PathBuf, TempDir) {
    let dir = TempDir::new().expect("temporary directory");
    let file = dir.path().join("tick.yaml");
    std::fs::write(&file, workflow).expect("writing the workflow");
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_files(std::slice::from_ref(&file), &scripts, &Env::default());
    (registry, file, dir)
}

fn problems(registry: &Registry) -> Vec<String> {
    registry.problems.iter().map(ToString::to_string).collect()
}

fn with_trigger(trigger: &str) -> String {
    format!(
        "name: tick\ntrigger:\n{trigger}steps:\n  - id: one\n    script: trigger.scheduled_at\n"
    )
}

fn loaded_trigger(registry: &Registry) -> (ScheduleTrigger, Option<usize>) {
    let workflow = registry.workflow("tick").expect("the workflow loads");
    match &workflow.trigger {
        Trigger::Schedule(schedule) => (ScheduleTrigger::clone(schedule), workflow.concurrency),
        other => panic!("expected a schedule trigger, got {other:?}"),
    }
}

#[test]
fn defaults_are_utc_latest_skip() {
    let (registry, _, _dir) = load(&with_trigger("  schedule:\n    cron: \"0 * * * *\"\n"));
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    let (trigger, concurrency) = loaded_trigger(&registry);
    assert_eq!(trigger.schedule.timezone(), Tz::UTC);
    assert_eq!(trigger.catch_up, CatchUp::Latest);
    assert_eq!(trigger.catch_up_limit, 100);
    assert_eq!(trigger.overlap, Overlap::Skip);
    assert_eq!(concurrency, None);
}

#[test]
fn all_settings_read() {
    let text = with_trigger(
        "  schedule: { cron: \"30 2 * * *\", timezone: America/New_York, catch_up: all, catch_up_limit: 7, overlap: allow }\n",
    );
    let (registry, _, _dir) = load(&text);
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    let (trigger, _) = loaded_trigger(&registry);
    assert_eq!(trigger.schedule.expression(), "30 2 * * *");
    assert_eq!(trigger.schedule.timezone(), Tz::America__New_York);
    assert_eq!(trigger.catch_up, CatchUp::All);
    assert_eq!(trigger.catch_up_limit, 7);
    assert_eq!(trigger.overlap, Overlap::Allow);
}

#[test]
fn catch_up_none_is_not_null() {
    let (registry, _, _dir) = load(&with_trigger(
        "  schedule:\n    cron: \"0 * * * *\"\n    catch_up: none\n",
    ));
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    assert_eq!(loaded_trigger(&registry).0.catch_up, CatchUp::None);
}

#[test]
fn queue_sets_concurrency_one() {
    let (registry, _, _dir) = load(&with_trigger(
        "  schedule:\n    cron: \"0 * * * *\"\n    overlap: queue\n",
    ));
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    assert_eq!(loaded_trigger(&registry).1, Some(1));
}

#[test]
fn queue_keeps_own_concurrency() {
    let text = format!(
        "{}concurrency: 3\n",
        with_trigger("  schedule:\n    cron: \"0 * * * *\"\n    overlap: queue\n")
    );
    let (registry, _, _dir) = load(&text);
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    assert_eq!(loaded_trigger(&registry).1, Some(3));
}

#[test]
fn invalid_cron_has_position() {
    let (registry, file, _dir) = load(&with_trigger("  schedule:\n    cron: \"0 25 * * *\"\n"));
    let problems = problems(&registry);
    let expected = format!(
        "{}:4:11: trigger.schedule.cron: invalid cron expression `0 25 * * *`",
        file.display()
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with(&expected), "{problems:?}");
    assert!(registry.workflow("tick").is_none());
}

#[test]
fn four_fields_rejected_with_hint() {
    let (registry, file, _dir) = load(&with_trigger("  schedule:\n    cron: \"0 * * *\"\n"));
    let problems = problems(&registry);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let position = format!("{}:4:11: trigger.schedule.cron:", file.display());
    assert!(problems[0].starts_with(&position), "{problems:?}");
    assert!(
        problems[0].contains("has 4 fields; write 5"),
        "{problems:?}"
    );
}

#[test]
fn never_matching_cron_rejected() {
    let (registry, _, _dir) = load(&with_trigger("  schedule:\n    cron: \"0 0 30 2 *\"\n"));
    let problems = problems(&registry);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("never fires"), "{problems:?}");
}

#[test]
fn unknown_timezone_named_with_position() {
    let (registry, file, _dir) = load(&with_trigger(
        "  schedule:\n    cron: \"0 * * * *\"\n    timezone: Europe/Berln\n",
    ));
    let problems = problems(&registry);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let expected = format!(
        "{}:5:15: trigger.schedule.timezone: unknown time zone `Europe/Berln`; did you mean `Europe/Berlin`?",
        file.display()
    );
    assert_eq!(problems[0], expected);
}

#[test]
fn unknown_catch_up_policy_reported() {
    let (registry, file, _dir) = load(&with_trigger(
        "  schedule:\n    cron: \"0 * * * *\"\n    catch_up: every\n",
    ));
    let problems = problems(&registry);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let position = format!("{}:5:15: trigger.schedule.catch_up", file.display());
    assert!(problems[0].starts_with(&position), "{problems:?}");
    assert!(problems[0].contains("every"), "{problems:?}");
}

#[test]
fn zero_catch_up_limit_rejected() {
    let (registry, _, _dir) = load(&with_trigger(
        "  schedule:\n    cron: \"0 * * * *\"\n    catch_up_limit: 0\n",
    ));
    let problems = problems(&registry);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("catch_up_limit must be between 1 and 10000, not 0"),
        "{problems:?}"
    );
}
