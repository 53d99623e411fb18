//! Turns a raw workflow into a [`Workflow`]: checks names and references,
//! compiles expressions and scripts, reads secrets, and records every
//! problem it finds instead of stopping at the first.

use std::path::Path;

use serde_json::Value;

use super::checker::Checker;
use super::de::Spanned;
use super::load::Registry;
use super::model::{ConcurrencyKey, Debounce, RetryPolicy, Trigger, Workflow};
use super::poll::validate_poll;
use super::raw::{RawRetry, RawTrigger, RawWorkflow};
use super::schedule::validate_schedule;
use super::validate_steps::validate_steps;
use super::webhook::validate_webhook;
use crate::trigger::schedule::Overlap;

pub fn validate(
    raw: &RawWorkflow,
    file: &Path,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<Workflow> {
    check_name(&raw.name, checker);
    let trigger = validate_trigger(&raw.trigger, registry, checker);
    let concurrency = raw.concurrency.as_ref().and_then(|c| {
        if c.value == 0 {
            checker.error(c.mark, &c.path, "concurrency must be at least 1");
            return None;
        }
        Some(c.value as usize)
    });
    let concurrency_key = raw.concurrency_key.as_ref().and_then(|key| {
        let per_key = match &raw.concurrency_per_key {
            Some(limit) if limit.value == 0 => {
                checker.error(
                    limit.mark,
                    &limit.path,
                    "concurrency_per_key must be at least 1",
                );
                1
            }
            Some(limit) => limit.value as usize,
            None => 1,
        };
        Some(ConcurrencyKey {
            key: checker.template(key)?,
            per_key,
        })
    });
    if let (Some(limit), None) = (&raw.concurrency_per_key, &raw.concurrency_key) {
        let message = "concurrency_per_key needs `concurrency_key` to say what groups runs";
        checker.error(limit.mark, &limit.path, message);
    }
    let debounce = raw.debounce.as_ref().and_then(|debounce| {
        let key = checker.template(&debounce.key);
        let window = checker.duration(&debounce.window);
        if window.is_some_and(|w| w.is_zero()) {
            checker.error(
                debounce.window.mark,
                &debounce.window.path,
                "the window must be longer than 0s",
            );
        }
        Some(Debounce {
            key: key?,
            window: window?,
        })
    });
    let retry = raw
        .retry
        .as_ref()
        .and_then(|r| validate_retry(r, checker))
        .unwrap_or_default();
    let timeout = raw.timeout.as_ref().and_then(|t| checker.duration(t));

    let steps = validate_steps(&raw.steps, &[], false, registry, checker);
    let step_ids: Vec<String> = raw.steps.iter().map(|s| s.id.value.clone()).collect();
    let on_failure = validate_steps(&raw.on_failure, &step_ids, false, registry, checker);
    if raw.steps.is_empty() {
        checker.error(raw.name.mark, "steps", "a workflow needs at least one step");
    }

    if !checker.diags.is_empty() {
        return None;
    }
    let trigger = trigger?;
    // `overlap: queue` runs ticks one after another unless the workflow
    // sets its own `concurrency`.
    let concurrency = match &trigger {
        Trigger::Schedule(schedule) if schedule.overlap == Overlap::Queue => {
            concurrency.or(Some(1))
        }
        _ => concurrency,
    };
    Some(Workflow {
        name: raw.name.value.clone(),
        description: raw.description.clone(),
        file: file.to_path_buf(),
        version: String::new(),
        trigger,
        debounce,
        concurrency,
        concurrency_key,
        vars: Value::Object(raw.vars.clone().into_iter().collect()),
        secrets: checker.secrets.clone(),
        retry,
        timeout,
        steps,
        on_failure,
    })
}

fn check_name(name: &Spanned<String>, checker: &mut Checker<'_>) {
    let valid = !name.value.is_empty()
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        let message = format!(
            "invalid workflow name `{}`; use lower-case letters, digits and `-`",
            name.value
        );
        checker.error(name.mark, &name.path, message);
    }
}

fn validate_trigger(
    trigger: &Spanned<RawTrigger>,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<Trigger> {
    match &trigger.value {
        RawTrigger::Poll(poll) => {
            validate_poll(poll, registry, checker).map(|valid| Trigger::Poll(Box::new(valid)))
        }
        RawTrigger::Manual => Some(Trigger::Manual),
        RawTrigger::Webhook(webhook) => validate_webhook(webhook, checker).map(Trigger::Webhook),
        RawTrigger::Schedule(schedule) => {
            validate_schedule(schedule, checker).map(|valid| Trigger::Schedule(Box::new(valid)))
        }
    }
}

pub(super) fn validate_retry(
    raw: &Spanned<RawRetry>,
    checker: &mut Checker<'_>,
) -> Option<RetryPolicy> {
    let defaults = RetryPolicy::default();
    if raw.attempts.value == 0 {
        let attempts = &raw.attempts;
        checker.error(attempts.mark, &attempts.path, "attempts must be at least 1");
    }
    let backoff = raw.backoff.as_ref().and_then(|b| checker.duration(b));
    let max_backoff = raw.max_backoff.as_ref().and_then(|b| checker.duration(b));
    let multiplier = raw
        .multiplier
        .as_ref()
        .map_or(defaults.multiplier, |m| m.value);
    if multiplier < 1.0 {
        let m = raw
            .multiplier
            .as_ref()
            .expect("a multiplier below 1 was written");
        checker.error(m.mark, &m.path, "multiplier must be 1 or more");
    }
    let jitter = raw.jitter.as_ref().map_or(defaults.jitter, |j| j.value);
    if !(0.0..=1.0).contains(&jitter) {
        let j = raw
            .jitter
            .as_ref()
            .expect("a jitter outside 0..=1 was written");
        checker.error(j.mark, &j.path, "jitter must be between 0 and 1");
    }
    Some(RetryPolicy {
        attempts: raw.attempts.value.max(1),
        backoff: backoff.unwrap_or(defaults.backoff),
        multiplier,
        max_backoff: max_backoff.unwrap_or(defaults.max_backoff),
        jitter,
    })
}
