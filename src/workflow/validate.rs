//! Turns a raw workflow into a [`Workflow`]: checks names and references,
//! compiles expressions and scripts, reads secrets, and records every
//! problem it finds instead of stopping at the first.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::checker::Checker;
use super::de::Spanned;
use super::diag::suggest;
use super::load::Registry;
use super::model::{
    ConcurrencyKey, DEFAULT_MAX_BODY, HmacVerify, RetryPolicy, SignatureEncoding, Step, StepKind,
    Trigger, WebhookTrigger, Workflow,
};
use super::raw::{RawEncoding, RawRetry, RawStep, RawTrigger, RawWebhook, RawWorkflow};
use super::schedule::validate_schedule;
use crate::expr::ValueTemplate;
use crate::trigger::schedule::Overlap;

pub fn validate(
    raw: &RawWorkflow,
    file: &Path,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<Workflow> {
    check_name(&raw.name, checker);
    let trigger = validate_trigger(&raw.trigger, checker);
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
    let retry = raw
        .retry
        .as_ref()
        .and_then(|r| validate_retry(r, checker))
        .unwrap_or_default();
    let timeout = raw.timeout.as_ref().and_then(|t| checker.duration(t));

    let steps = validate_steps(&raw.steps, &[], registry, checker);
    let step_ids: Vec<String> = raw.steps.iter().map(|s| s.id.value.clone()).collect();
    let on_failure = validate_steps(&raw.on_failure, &step_ids, registry, checker);
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
        trigger,
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

fn validate_trigger(trigger: &Spanned<RawTrigger>, checker: &mut Checker<'_>) -> Option<Trigger> {
    match &trigger.value {
        RawTrigger::Manual => Some(Trigger::Manual),
        RawTrigger::Webhook(webhook) => validate_webhook(webhook, checker).map(Trigger::Webhook),
        RawTrigger::Schedule(schedule) => {
            validate_schedule(schedule, checker).map(|valid| Trigger::Schedule(Box::new(valid)))
        }
    }
}

fn validate_webhook(raw: &RawWebhook, checker: &mut Checker<'_>) -> Option<WebhookTrigger> {
    let path = &raw.path;
    let path_ok = path.value.starts_with("/hooks/")
        && path.value.len() > "/hooks/".len()
        && !path.value.contains(['?', '#', ' ']);
    if !path_ok {
        let message = format!(
            "invalid webhook path `{}`; it must start with `/hooks/`, such as `/hooks/shop/orders`",
            path.value
        );
        checker.error(path.mark, &path.path, message);
    }

    let verify = raw.verify.as_ref().and_then(|verify| {
        let hmac = &verify.hmac_sha256;
        let secret = checker.render_with_secrets(&hmac.secret)?;
        if secret.is_empty() {
            checker.error(
                hmac.secret.mark,
                &hmac.secret.path,
                "the signing secret is empty",
            );
            return None;
        }
        Some(HmacVerify {
            header: hmac.header.value.to_ascii_lowercase(),
            secret,
            encoding: match hmac.encoding {
                Some(RawEncoding::Hex) => SignatureEncoding::Hex,
                Some(RawEncoding::Base64) | None => SignatureEncoding::Base64,
            },
            prefix: hmac.prefix.clone(),
        })
    });
    let max_body = match &raw.max_body {
        None => DEFAULT_MAX_BODY,
        Some(size) => parse_size(size, checker)?,
    };

    if !path_ok {
        return None;
    }
    Some(WebhookTrigger {
        path: path.value.clone(),
        verify,
        dedup_header: raw
            .dedup_header
            .as_ref()
            .map(|h| h.value.to_ascii_lowercase()),
        max_body,
    })
}

/// Reads a size: a number of bytes, or text such as `512KiB` or `10MiB`.
fn parse_size(size: &Spanned<Value>, checker: &mut Checker<'_>) -> Option<usize> {
    let parsed = match &size.value {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (digits, unit) = text.split_at(split);
            let factor = match unit.trim() {
                "" | "B" => Some(1),
                "KiB" | "KB" | "K" => Some(1024),
                "MiB" | "MB" | "M" => Some(1024 * 1024),
                _ => None,
            };
            digits.parse::<usize>().ok().zip(factor).map(|(n, f)| n * f)
        }
        _ => None,
    };
    if parsed.is_none() {
        let message = format!(
            "invalid size `{}`; write a number of bytes or a value such as `512KiB` or `10MiB`",
            size.value
        );
        checker.error(size.mark, &size.path, message);
    }
    parsed
}

fn validate_retry(raw: &Spanned<RawRetry>, checker: &mut Checker<'_>) -> Option<RetryPolicy> {
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

/// Validates a list of steps. `visible` names steps of an enclosing list
/// that expressions in these steps may also read.
fn validate_steps(
    raw: &[Spanned<RawStep>],
    visible: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Vec<Step> {
    let mut seen: Vec<String> = visible.to_vec();
    let mut own_ids = HashSet::new();
    let mut steps = Vec::new();
    for step in raw {
        let id = &step.id;
        if !is_identifier(&id.value) {
            let message = format!(
                "invalid step id `{}`; use lower-case letters, digits and `_`, starting with a letter, so expressions can read `steps.{}`",
                id.value,
                id.value.replace('-', "_")
            );
            checker.error(id.mark, &id.path, message);
        }
        if !own_ids.insert(id.value.clone()) {
            checker.error(
                id.mark,
                &id.path,
                format!("duplicate step id `{}`", id.value),
            );
        }
        if let Some(valid) = validate_step(step, &seen, registry, checker) {
            steps.push(valid);
        }
        seen.push(id.value.clone());
    }
    steps
}

fn validate_step(
    step: &Spanned<RawStep>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<Step> {
    let kinds = [
        step.uses.as_ref().map(|_| "uses"),
        step.script.as_ref().map(|_| "script"),
        step.delay.as_ref().map(|_| "delay"),
        step.wait_until.as_ref().map(|_| "wait_until"),
    ];
    let given: Vec<&str> = kinds.into_iter().flatten().collect();
    if given.len() != 1 {
        let message = if given.is_empty() {
            "a step needs one of `uses: connector.operation`, `script`, `delay` or `wait_until`"
                .to_string()
        } else {
            format!(
                "a step has exactly one of {}, not several",
                given.join(", ")
            )
        };
        checker.error(step.mark, &step.path, message);
        return None;
    }
    let kind = if let Some(uses) = &step.uses {
        validate_uses(step, uses, earlier, registry, checker)
    } else if let Some(source) = &step.script {
        let script = checker.script(source)?;
        check_step_references(script.source(), source.mark, &source.path, earlier, checker);
        Some(StepKind::Script(script))
    } else if let Some(delay) = &step.delay {
        checker.duration(delay).map(StepKind::Delay)
    } else if let Some(until) = &step.wait_until {
        let template = checker.template(until)?;
        check_step_references(template.source(), until.mark, &until.path, earlier, checker);
        Some(StepKind::WaitUntil(template))
    } else {
        None
    };
    if step.uses.is_none() && !step.with.is_empty() {
        checker.error(step.mark, &step.path, "`with` applies only to `uses` steps");
    }
    let retry = step.retry.as_ref().and_then(|r| validate_retry(r, checker));
    let timeout = step.timeout.as_ref().and_then(|t| checker.duration(t));
    Some(Step {
        id: step.id.value.clone(),
        path: step.path.clone(),
        kind: kind?,
        retry,
        timeout,
    })
}

fn validate_uses(
    step: &Spanned<RawStep>,
    uses: &Spanned<String>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let mut with = Vec::new();
    for (name, value) in &step.with {
        if let Some(template) = checker.value(value) {
            for source in template_sources(&template) {
                check_step_references(source, value.mark, &value.path, earlier, checker);
            }
            with.push((name.clone(), template));
        }
    }
    let Some((connector_name, operation)) = uses.value.split_once('.') else {
        let message = format!(
            "invalid `uses: {}`; write `connector.operation`",
            uses.value
        );
        checker.error(uses.mark, &uses.path, message);
        return None;
    };
    if registry.broken_connectors.contains(connector_name) {
        let message = format!(
            "connector `{connector_name}` has problems and is not loaded; fix its file first"
        );
        checker.error(uses.mark, &uses.path, message);
        return None;
    }
    let connectors = &registry.connectors;
    let Some(connector) = connectors.get(connector_name) else {
        let known: Vec<&str> = connectors.keys().map(String::as_str).collect();
        let hint = hint(connector_name, &known, "connectors");
        let message = format!("unknown connector `{connector_name}`{hint}");
        checker.error(uses.mark, &uses.path, message);
        return None;
    };
    if !connector.operations.contains_key(operation) {
        let known: Vec<&str> = connector.operations.keys().map(String::as_str).collect();
        let hint = hint(operation, &known, "operations");
        let message = format!("connector `{connector_name}` has no operation `{operation}`{hint}");
        checker.error(uses.mark, &uses.path, message);
        return None;
    }
    Some(StepKind::Uses {
        connector: connector_name.to_string(),
        operation: operation.to_string(),
        with: ValueTemplate::Object(with),
    })
}

fn hint(word: &str, known: &[&str], kind: &str) -> String {
    match suggest(word, known) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if known.is_empty() => format!("; no {kind} are loaded"),
        None => format!("; known {kind}: {}", known.join(", ")),
    }
}

fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every expression source inside a compiled value.
fn template_sources(template: &ValueTemplate) -> Vec<&str> {
    match template {
        ValueTemplate::Literal(_) => Vec::new(),
        ValueTemplate::Template(t) => vec![t.source()],
        ValueTemplate::Array(items) => items.iter().flat_map(template_sources).collect(),
        ValueTemplate::Object(fields) => fields
            .iter()
            .flat_map(|(_, v)| template_sources(v))
            .collect(),
    }
}

/// Reports each `steps.NAME` in `source` whose NAME is not an earlier step.
fn check_step_references(
    source: &str,
    mark: super::diag::Mark,
    path: &str,
    earlier: &[String],
    checker: &mut Checker<'_>,
) {
    for name in referenced_steps(source) {
        if earlier.contains(&name) {
            continue;
        }
        let known: Vec<&str> = earlier.iter().map(String::as_str).collect();
        let hint = hint(&name, &known, "earlier steps");
        let message = format!("`steps.{name}` does not name an earlier step{hint}");
        checker.error(mark, path, message);
    }
}

/// Names read as `steps.NAME` in an expression or script source.
fn referenced_steps(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(found) = source[from..].find("steps.") {
        let start = from + found;
        from = start + "steps.".len();
        if start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b'.') {
            continue;
        }
        let end = source[from..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(source.len(), |n| from + n);
        let name = &source[from..end];
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}
