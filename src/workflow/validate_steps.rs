//! Validation of step lists, nested ones included: ids, kinds,
//! connector references and references to earlier steps.

use std::collections::HashSet;

use super::checker::Checker;
use super::de::Spanned;
use super::diag::suggest;
use super::load::Registry;
use super::model::{Step, StepKind};
use super::raw::RawStep;
use super::validate::validate_retry;
use super::validate_flow as flow;
use crate::expr::ValueTemplate;

/// Validates a list of steps. `visible` names steps of an enclosing list
/// that expressions in these steps may also read.
pub(super) fn validate_steps(
    raw: &[Spanned<RawStep>],
    visible: &[String],
    handler: bool,
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
        if let Some(valid) = validate_step(step, &seen, handler, registry, checker) {
            steps.push(valid);
        }
        seen.push(id.value.clone());
    }
    steps
}

fn validate_step(
    step: &Spanned<RawStep>,
    earlier: &[String],
    handler: bool,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<Step> {
    let kinds = [
        step.uses.as_ref().map(|_| "uses"),
        step.script.as_ref().map(|_| "script"),
        step.delay.as_ref().map(|_| "delay"),
        step.wait_until.as_ref().map(|_| "wait_until"),
        step.foreach.as_ref().map(|_| "foreach"),
        step.switch.as_ref().map(|_| "switch"),
        (!step.parallel.is_empty()).then_some("parallel"),
        step.call.as_ref().map(|_| "call"),
    ];
    let given: Vec<&str> = kinds.into_iter().flatten().collect();
    if given.len() != 1 {
        let message = if given.is_empty() {
            "a step needs one of `uses: connector.operation`, `script`, `delay`, `wait_until`, `foreach`, `switch`, `parallel` or `call`"
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
    } else if let Some(items) = &step.foreach {
        flow::validate_foreach(step, items, earlier, registry, checker)
    } else if let Some(value) = &step.switch {
        flow::validate_switch(step, value, earlier, registry, checker)
    } else if !step.parallel.is_empty() {
        flow::validate_parallel(step, earlier, registry, checker)
    } else if let Some(workflow) = &step.call {
        flow::validate_call(step, workflow, earlier, registry, checker)
    } else {
        None
    };
    flow::check_misplaced(step, checker);
    let condition = step.condition.as_ref().and_then(|condition| {
        let template = checker.template(condition)?;
        check_step_references(
            template.source(),
            condition.mark,
            &condition.path,
            earlier,
            checker,
        );
        Some(template)
    });
    if step.recover && !handler {
        let message = "`recover` applies only to steps in a step's `on_failure` list";
        checker.error(step.mark, &step.path, message);
    }
    let mut visible = earlier.to_vec();
    visible.push(step.id.value.clone());
    let on_failure = validate_steps(&step.on_failure, &visible, true, registry, checker);
    let retry = step.retry.as_ref().and_then(|r| validate_retry(r, checker));
    let timeout = step.timeout.as_ref().and_then(|t| checker.duration(t));
    Some(Step {
        id: step.id.value.clone(),
        path: step.path.clone(),
        kind: kind?,
        retry,
        timeout,
        condition,
        continue_on_error: step.continue_on_error,
        on_failure,
        recover: step.recover,
    })
}

pub(super) fn validate_with(
    step: &Spanned<RawStep>,
    earlier: &[String],
    checker: &mut Checker<'_>,
) -> ValueTemplate {
    let mut with = Vec::new();
    for (name, value) in &step.with {
        if let Some(template) = checker.value(value) {
            for source in template_sources(&template) {
                check_step_references(source, value.mark, &value.path, earlier, checker);
            }
            with.push((name.clone(), template));
        }
    }
    ValueTemplate::Object(with)
}

fn validate_uses(
    step: &Spanned<RawStep>,
    uses: &Spanned<String>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let with = validate_with(step, earlier, checker);
    let (connector, operation) = resolve_uses(uses, registry, checker)?;
    Some(StepKind::Uses {
        connector,
        operation,
        with,
    })
}

/// Splits `connector.operation` and checks that both exist, built-in
/// connectors included.
pub(super) fn resolve_uses(
    uses: &Spanned<String>,
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<(String, String)> {
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
    if let Some(operations) = crate::connector::native::operations(connector_name) {
        if !operations.contains(&operation) {
            let hint = hint(operation, operations, "operations");
            let message =
                format!("connector `{connector_name}` has no operation `{operation}`{hint}");
            checker.error(uses.mark, &uses.path, message);
            return None;
        }
        return Some((connector_name.to_string(), operation.to_string()));
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
    Some((connector_name.to_string(), operation.to_string()))
}

pub(super) fn hint(word: &str, known: &[&str], kind: &str) -> String {
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

/// Returns every expression source inside a compiled value.
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
pub(super) fn check_step_references(
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
