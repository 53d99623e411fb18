//! `tether next`, and the fire times that `tether check` prints after its
//! `ok:` line. Times are shown in UTC, and `next` adds the schedule's local
//! time with its offset.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use chrono::{DateTime, Utc};
use tether::expr::{Limits, ScriptEngine};
use tether::trigger::schedule::{format_local, format_utc};
use tether::workflow::model::ScheduleTrigger;
use tether::workflow::{Env, Registry, Trigger, load_dir};

/// Number of fire times that `tether check` prints for each schedule.
pub const CHECK_COUNT: usize = 3;

/// Reads a `--from` time: RFC 3339 with any offset, converted to UTC.
pub fn parse_from(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            format!("invalid time `{text}`: {error}; write RFC 3339, such as 2025-03-08T06:00:00Z")
        })
}

/// Prints the next `count` fire times of `workflow` after `from`.
pub fn next(
    dir: &Path,
    workflow: &str,
    from: DateTime<Utc>,
    count: usize,
) -> anyhow::Result<ExitCode> {
    tether::app::install_tls_provider();
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_dir(dir, &scripts, &Env::from_process());
    let trigger = schedule_of(&registry, dir, workflow)?;
    let schedule = &trigger.schedule;
    let timezone = schedule.timezone();
    println!(
        "{workflow}: cron `{}` in {}",
        schedule.expression(),
        timezone.name()
    );
    for time in schedule.upcoming(from, count)? {
        println!(
            "{}  {} {}",
            format_utc(time),
            format_local(time, timezone),
            timezone.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn schedule_of<'a>(
    registry: &'a Registry,
    dir: &Path,
    workflow: &str,
) -> anyhow::Result<&'a ScheduleTrigger> {
    let Some(loaded) = registry.workflow(workflow) else {
        for problem in &registry.problems {
            eprintln!("{problem}");
        }
        let known: Vec<&str> = registry.workflows.keys().map(String::as_str).collect();
        bail!(
            "workflow `{workflow}` is not loaded from {}; loaded: {}",
            dir.display(),
            known.join(", ")
        );
    };
    match &loaded.trigger {
        Trigger::Schedule(trigger) => Ok(trigger),
        Trigger::Webhook(_) => bail!("workflow `{workflow}` has a webhook trigger, not a schedule"),
        Trigger::Poll(_) => bail!("workflow `{workflow}` has a poll trigger, not a schedule"),
        Trigger::Manual => bail!("workflow `{workflow}` has a manual trigger, not a schedule"),
    }
}

/// Prints one line per schedule workflow with its next [`CHECK_COUNT`] fire
/// times after `from`, in UTC.
pub fn print_upcoming(registry: &Registry, from: DateTime<Utc>) {
    for workflow in registry.workflows.values() {
        let Trigger::Schedule(trigger) = &workflow.trigger else {
            continue;
        };
        let schedule = &trigger.schedule;
        let times = match schedule.upcoming(from, CHECK_COUNT) {
            Ok(times) => times.into_iter().map(format_utc).collect::<Vec<_>>(),
            Err(error) => {
                println!("{}: {error}", workflow.name);
                continue;
            }
        };
        println!(
            "{} ({} in {}) fires next at {}",
            workflow.name,
            schedule.expression(),
            schedule.timezone().name(),
            times.join(", ")
        );
    }
}
