//! Validates a poll trigger: the operation it calls, its interval and the
//! expressions that pick out items, their keys and the next page.

use std::time::Duration;

use super::checker::Checker;
use super::load::Registry;
use super::model::{DEFAULT_POLL_RETENTION, PollTrigger};
use super::raw::RawPoll;
use super::validate_steps::resolve_uses;
use crate::expr::ValueTemplate;

pub(super) fn validate_poll(
    raw: &RawPoll,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<PollTrigger> {
    let uses = resolve_uses(&raw.uses, registry, checker);
    let mut with = Vec::new();
    for (name, value) in &raw.with {
        if let Some(template) = checker.value(value) {
            with.push((name.clone(), template));
        }
    }
    let every = checker.duration(&raw.every);
    if every == Some(Duration::ZERO) {
        let message = "`every` must be longer than zero, such as `5m`";
        checker.error(raw.every.mark, &raw.every.path, message);
    }
    let items = checker.template(&raw.items);
    let key = checker.template(&raw.key);
    let next = match &raw.next {
        Some(next) => Some(checker.template(next)?),
        None => None,
    };
    let retention = match &raw.retention {
        Some(text) => checker.duration(text)?,
        None => DEFAULT_POLL_RETENTION,
    };

    let (connector, operation) = uses?;
    Some(PollTrigger {
        connector,
        operation,
        with: ValueTemplate::Object(with),
        every: every.filter(|every| !every.is_zero())?,
        items: items?,
        key: key?,
        next,
        backfill: raw.backfill,
        retention,
    })
}
