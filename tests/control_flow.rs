//! `if`, `continue_on_error` and `foreach` against the engine and a
//! supplier stand-in on 127.0.0.1.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, StepStatus, TriggerEvent};

async fn run_workflow(
    supplier: &Supplier,
    name: &str,
    text: &str,
    input: Value,
) -> (TestServer, Run) {
    let project = Project::bundled();
    project.add_workflow(&format!("{name}.yaml"), text);
    let server = TestServer::start(&project, shop_env(supplier)).await;
    let run = server
        .engine
        .run_now(name, TriggerEvent::manual(input))
        .await
        .expect("running");
    (server, run)
}

fn step<'a>(run: &'a Run, path: &str) -> &'a tether::engine::run::StepRecord {
    run.steps
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no step at {path}: {:?}",
                run.steps.iter().map(|s| &s.path).collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn false_condition_skips_step_only() {
    let supplier = Supplier::accepting().await;
    let text = r#"name: gated
trigger: manual
steps:
  - id: place
    if: "${{ trigger.body.total > 100 }}"
    uses: supplier.create_order
    with: { reference: 1 }
  - id: after
    script: '`place was ${steps.place.status}`'
"#;
    let (_server, run) = run_workflow(&supplier, "gated", text, json!({ "total": 40 })).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let place = step(&run, "steps[0]");
    assert_eq!(place.status, StepStatus::Skipped);
    assert_eq!(place.condition, Some(Value::Bool(false)));
    assert!(place.attempts.is_empty());
    assert_eq!(run.output, Some(json!("place was skipped")));
    assert!(supplier.received().is_empty());
}

#[tokio::test]
async fn true_condition_runs_step() {
    let supplier = Supplier::accepting().await;
    let text = "name: gated\ntrigger: manual\nsteps:\n  - id: place\n    if: \"${{ trigger.body.total > 100 }}\"\n    uses: supplier.create_order\n";
    let (_server, run) = run_workflow(&supplier, "gated", text, json!({ "total": 140 })).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(step(&run, "steps[0]").status, StepStatus::Succeeded);
    assert_eq!(supplier.received().len(), 1);
}

#[tokio::test]
async fn continue_on_error_lets_run_go_on() {
    let rejected = Answer::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "error": "sku unknown" }),
    );
    let supplier = Supplier::sequence(vec![rejected]).await;
    let text = r#"name: tolerant
trigger: manual
steps:
  - id: place
    continue_on_error: true
    uses: supplier.create_order
  - id: report
    script: '#{ status: steps.place.status, error: steps.place.error }'
"#;
    let (_server, run) = run_workflow(&supplier, "tolerant", text, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(step(&run, "steps[0]").status, StepStatus::Failed);
    let output = run.output.clone().unwrap_or_default();
    assert_eq!(output["status"], "failed");
    assert!(
        output["error"].as_str().unwrap_or("").contains("422"),
        "{output}"
    );
}

const PER_ITEM: &str = r#"name: per-item
trigger: manual
steps:
  - id: lines
    foreach: "${{ trigger.body.items }}"
    concurrency: 3
    steps:
      - id: label
        script: '`${index}:${item.sku}`'
      - id: place
        uses: supplier.create_order
        with:
          sku: "${{ item.sku }}"
          label: "${{ steps.label.output }}"
  - id: count
    script: steps.lines.output.len()
"#;

#[tokio::test]
async fn foreach_keeps_input_order_and_keys() {
    let slow_first = std::sync::Arc::new(|request: &Recorded, _: usize| {
        let sku = request.json()["sku"].as_str().unwrap_or("").to_string();
        let delay = if sku == "A" { 150 } else { 0 };
        Answer::order_created(&format!("SO-{sku}")).after(std::time::Duration::from_millis(delay))
    });
    let supplier = Supplier::start(slow_first).await;
    let items =
        json!({ "items": [{ "sku": "A" }, { "sku": "B" }, { "sku": "C" }, { "sku": "D" }] });
    let (_server, run) = run_workflow(&supplier, "per-item", PER_ITEM, items).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let lines = step(&run, "steps[0]");
    let outputs = lines.output.clone().unwrap_or_default();
    let order_ids: Vec<&str> = outputs
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["orderId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order_ids, ["SO-A", "SO-B", "SO-C", "SO-D"]);
    assert_eq!(run.output, Some(json!(4)));
    assert_eq!(
        step(&run, "steps[0].foreach[2].steps[0]").output,
        Some(json!("2:C"))
    );

    let received = supplier.received();
    assert_eq!(received.len(), 4);
    let mut keys: Vec<String> = received
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or("").to_string())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "each iteration has its own key");
    let expected = format!("{}:steps[0].foreach[1].steps[1]", run.id);
    assert!(keys.contains(&expected), "{keys:?}");
}

#[tokio::test]
async fn foreach_over_limit_fails_clearly() {
    let supplier = Supplier::accepting().await;
    let text = "name: capped\ntrigger: manual\nsteps:\n  - id: lines\n    foreach: \"${{ trigger.body.items }}\"\n    max_items: 2\n    steps:\n      - id: one\n        script: item\n";
    let (_server, run) =
        run_workflow(&supplier, "capped", text, json!({ "items": [1, 2, 3] })).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("3 items") && error.contains("max_items"),
        "{error}"
    );

    let text = "name: not-list\ntrigger: manual\nsteps:\n  - id: lines\n    foreach: \"${{ trigger.body }}\"\n    steps:\n      - id: one\n        script: item\n";
    let (_server, run) = run_workflow(&supplier, "not-list", text, json!({ "a": 1 })).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .clone()
            .unwrap_or_default()
            .contains("needs a list"),
        "{:?}",
        run.error
    );
}
