//! Validation of the control-flow steps: `foreach`, `switch`, `parallel`
//! and `call`, and of fields given to a step kind they do not apply to.

use super::checker::Checker;
use super::de::Spanned;
use super::load::Registry;
use super::model::{DEFAULT_MAX_ITEMS, StepKind};
use super::raw::RawStep;
use super::validate_steps::{check_step_references, hint, validate_steps, validate_with};

/// Validates a `foreach` step: the list expression, its nested steps (which see the
/// enclosing earlier steps too), and its limits.
pub(super) fn validate_foreach(
    step: &Spanned<RawStep>,
    items: &Spanned<String>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let template = expression(items, earlier, checker);
    if step.steps.is_empty() {
        let message = "a `foreach` step needs `steps:` to run for each item";
        checker.error(step.mark, &step.path, message);
    }
    let steps = validate_steps(&step.steps, earlier, false, registry, checker);
    let concurrency = at_least_one(&step.concurrency, 1, checker);
    let max_items = at_least_one(&step.max_items, DEFAULT_MAX_ITEMS, checker);
    Some(StepKind::Foreach {
        items: template?,
        steps,
        concurrency,
        max_items,
    })
}

/// Validates a `switch` step: the value expression, each case's steps and the
/// optional `default`.
pub(super) fn validate_switch(
    step: &Spanned<RawStep>,
    value: &Spanned<String>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let template = expression(value, earlier, checker);
    if step.cases.is_empty() {
        let message = "a `switch` step needs `cases:`, a map from values to steps";
        checker.error(step.mark, &step.path, message);
    }
    let cases = step
        .cases
        .iter()
        .map(|(name, steps)| {
            (
                name.clone(),
                validate_steps(steps, earlier, false, registry, checker),
            )
        })
        .collect();
    let default = step
        .default
        .as_ref()
        .map(|steps| validate_steps(steps, earlier, false, registry, checker));
    Some(StepKind::Switch {
        value: template?,
        cases,
        default,
    })
}

/// Validates a `parallel` step: named branches of steps.
pub(super) fn validate_parallel(
    step: &Spanned<RawStep>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let branches = step
        .parallel
        .iter()
        .map(|(name, steps)| {
            if steps.is_empty() {
                let message = format!("parallel branch `{name}` has no steps");
                checker.error(step.mark, &step.path, message);
            }
            (
                name.clone(),
                validate_steps(steps, earlier, false, registry, checker),
            )
        })
        .collect();
    Some(StepKind::Parallel { branches })
}

/// A `call` step: the workflow must be loaded from another file, and
/// `with` becomes the child run's `trigger.body`.
pub(super) fn validate_call(
    step: &Spanned<RawStep>,
    workflow: &Spanned<String>,
    earlier: &[String],
    registry: &Registry,
    checker: &mut Checker<'_>,
) -> Option<StepKind> {
    let with = validate_with(step, earlier, checker);
    if !registry.declared_workflows.contains(&workflow.value) {
        let known: Vec<&str> = registry
            .declared_workflows
            .iter()
            .map(String::as_str)
            .collect();
        let hint = hint(&workflow.value, &known, "workflows");
        let message = format!("unknown workflow `{}`{hint}", workflow.value);
        checker.error(workflow.mark, &workflow.path, message);
        return None;
    }
    Some(StepKind::Call {
        workflow: workflow.value.clone(),
        with,
    })
}

/// Reports fields written on a step kind that does not use them.
pub(super) fn check_misplaced(step: &Spanned<RawStep>, checker: &mut Checker<'_>) {
    let rules = [
        (
            "with",
            !step.with.is_empty(),
            step.uses.is_some() || step.call.is_some(),
            "`uses` and `call`",
        ),
        (
            "steps",
            !step.steps.is_empty(),
            step.foreach.is_some(),
            "`foreach`",
        ),
        (
            "concurrency",
            step.concurrency.is_some(),
            step.foreach.is_some(),
            "`foreach`",
        ),
        (
            "max_items",
            step.max_items.is_some(),
            step.foreach.is_some(),
            "`foreach`",
        ),
        (
            "cases",
            !step.cases.is_empty(),
            step.switch.is_some(),
            "`switch`",
        ),
        (
            "default",
            step.default.is_some(),
            step.switch.is_some(),
            "`switch`",
        ),
    ];
    for (field, given, allowed, kinds) in rules {
        if given && !allowed {
            let message = format!("`{field}` applies only to {kinds} steps");
            checker.error(step.mark, &step.path, message);
        }
    }
}

fn expression(
    text: &Spanned<String>,
    earlier: &[String],
    checker: &mut Checker<'_>,
) -> Option<crate::expr::Template> {
    let template = checker.template(text)?;
    check_step_references(template.source(), text.mark, &text.path, earlier, checker);
    Some(template)
}

fn at_least_one(value: &Option<Spanned<u32>>, default: usize, checker: &mut Checker<'_>) -> usize {
    match value {
        Some(limit) if limit.value == 0 => {
            checker.error(limit.mark, &limit.path, "must be at least 1");
            default
        }
        Some(limit) => limit.value as usize,
        None => default,
    }
}
