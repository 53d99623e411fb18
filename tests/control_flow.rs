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

const ROUTER: &str = r#"name: router
trigger: manual
steps:
  - id: route
    switch: "${{ trigger.body.supplier }}"
    cases:
      cj:
        - id: place
          uses: supplier.create_order
          with: { via: cj }
      other:
        - id: note
          script: '"other supplier"'
    default:
      - id: unknown
        script: '`no route for ${trigger.body.supplier}`'
  - id: after
    script: steps.route.output
"#;

#[tokio::test]
async fn switch_runs_matching_case() {
    let supplier = Supplier::accepting().await;
    let (_server, run) =
        run_workflow(&supplier, "router", ROUTER, json!({ "supplier": "cj" })).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.output.clone().unwrap_or_default()["orderId"],
        "SO-2611-000123"
    );
    assert_eq!(
        step(&run, "steps[0]").input.clone().unwrap_or_default()["case"],
        "cj"
    );
    assert_eq!(
        step(&run, "steps[0].cases.cj[0]").status,
        StepStatus::Succeeded
    );
    let key = format!("{}:steps[0].cases.cj[0]", run.id);
    assert_eq!(
        supplier.received()[0].header("idempotency-key"),
        Some(key.as_str())
    );
}

#[tokio::test]
async fn switch_falls_back_to_default() {
    let supplier = Supplier::accepting().await;
    let (_server, run) =
        run_workflow(&supplier, "router", ROUTER, json!({ "supplier": "acme" })).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output, Some(json!("no route for acme")));
    assert!(supplier.received().is_empty());
}

const BOTH: &str = r#"name: both
trigger: manual
steps:
  - id: sync
    parallel:
      stock:
        - id: read
          uses: supplier.get_order
          with: { id: stock }
      price:
        - id: read
          uses: supplier.get_order
          with: { id: price }
"#;

#[tokio::test]
async fn parallel_maps_branch_outputs() {
    let slow = std::sync::Arc::new(|request: &Recorded, _: usize| {
        let name = request.path.rsplit('/').next().unwrap_or("").to_string();
        Answer::order_created(&name).after(HELD)
    });
    let supplier = Supplier::start(slow).await;
    let (_server, run) = run_workflow(&supplier, "both", BOTH, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let output = run.output.clone().unwrap_or_default();
    assert_eq!(output["stock"]["orderId"], "stock");
    assert_eq!(output["price"]["orderId"], "price");
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    // The supplier delays each response; the second request arriving while the
    // first is held means the branches ran at once.
    let gap = received[1].received_at - received[0].received_at;
    assert!(
        gap < HELD,
        "branches ran one after the other ({gap:?} apart)"
    );
}

/// Delay of each supplier response in the parallel test.
const HELD: std::time::Duration = std::time::Duration::from_millis(1000);

#[tokio::test]
async fn failing_branch_fails_parallel() {
    let supplier = Supplier::start(std::sync::Arc::new(|request: &Recorded, _: usize| {
        if request.path.ends_with("/stock") {
            Answer::json(StatusCode::NOT_FOUND, json!({ "error": "no such order" }))
        } else {
            Answer::order_created("p").after(std::time::Duration::from_millis(300))
        }
    }))
    .await;
    let (_server, run) = run_workflow(&supplier, "both", BOTH, json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("branch stock") && error.contains("404"),
        "{error}"
    );
}

#[tokio::test]
async fn handler_recovers_failed_step() {
    let rejected = Answer::json(StatusCode::CONFLICT, json!({ "error": "out of stock" }));
    let supplier = Supplier::sequence(vec![rejected, Answer::order_created("SO-BACKUP")]).await;
    let text = r#"name: fallback
trigger: manual
steps:
  - id: place
    uses: supplier.create_order
    with: { supplier: primary }
    on_failure:
      - id: log
        script: 'error.message'
      - id: backup
        recover: true
        uses: supplier.create_order
        with: { supplier: backup, reason: "${{ error.message }}" }
  - id: done
    script: steps.place.output.orderId
"#;
    let (_server, run) = run_workflow(&supplier, "fallback", text, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output, Some(json!("SO-BACKUP")));
    let place = step(&run, "steps[0]");
    assert_eq!(place.status, StepStatus::Failed);
    assert!(place.recovered);
    let log = step(&run, "steps[0].on_failure[0]");
    assert!(
        log.output
            .clone()
            .unwrap_or_default()
            .as_str()
            .unwrap_or("")
            .contains("409"),
        "{log:?}"
    );
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    assert!(
        received[1].json()["reason"]
            .as_str()
            .unwrap_or("")
            .contains("out of stock")
    );
}

#[tokio::test]
async fn handler_without_recover_keeps_failure() {
    let rejected = Answer::json(StatusCode::CONFLICT, json!({ "error": "out of stock" }));
    let supplier = Supplier::sequence(vec![rejected]).await;
    let text = "name: noted\ntrigger: manual\nsteps:\n  - id: place\n    uses: supplier.create_order\n    on_failure:\n      - id: note\n        script: 'error.step'\n";
    let (_server, run) = run_workflow(&supplier, "noted", text, json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        step(&run, "steps[0].on_failure[0]").output,
        Some(json!("place"))
    );
}

#[tokio::test]
async fn call_runs_child_and_links_it() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "child.yaml",
        "name: child\ntrigger: manual\nsteps:\n  - id: double\n    script: 'trigger.body.n * 2'\n",
    );
    project.add_workflow(
        "parent.yaml",
        "name: parent\ntrigger: manual\nsteps:\n  - id: ask\n    call: child\n    with: { n: \"${{ trigger.body.n }}\" }\n  - id: plus\n    script: 'steps.ask.output + 1'\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    let run = server
        .engine
        .run_now("parent", TriggerEvent::manual(json!({ "n": 20 })))
        .await
        .expect("running");

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output, Some(json!(41)));
    let child_id = step(&run, "steps[0]").input.clone().unwrap_or_default()["child_run_id"]
        .as_str()
        .expect("child run id")
        .to_string();
    let child = server.get_json(&format!("/api/runs/{child_id}")).await;
    assert_eq!(child["status"], "succeeded");
    assert_eq!(child["parent"]["run_id"], run.id.as_str());
    assert_eq!(child["trigger"]["kind"], "call");
}

#[tokio::test]
async fn recursive_call_hits_depth_limit() {
    let supplier = Supplier::accepting().await;
    let text = "name: again\ntrigger: manual\nsteps:\n  - id: deeper\n    call: again\n";
    let (_server, run) = run_workflow(&supplier, "again", text, json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("limited to 8 levels"), "{error}");
}

#[test]
fn nested_steps_checked_with_positions() {
    let project = Project::bundled();
    let text = "\
name: nested
trigger: manual
steps:
  - id: lines
    foreach: \"${{ trigger.body.items }}\"
    steps:
      - id: place
        uses: supplier.create_ordr
      - id: place
        script: '1'
        retyr: 2
";
    project.add_workflow("nested.yaml", text);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("check")
        .arg(project.path().join("workflows/nested.yaml"))
        .arg("--dir")
        .arg(project.path())
        .env("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET)
        .env("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN)
        .envs(CONNECTOR_SECRETS)
        .output()
        .expect("running tether check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("nested.yaml:11:9: steps[0].steps[1].retyr: unknown field `retyr`, did you mean `retry`?"), "{stdout}");
    assert!(stdout.contains("nested.yaml:8:15: steps[0].steps[0].uses: connector `supplier` has no operation `create_ordr`"), "{stdout}");
    assert!(
        stdout.contains("nested.yaml:9:13: steps[0].steps[1].id: duplicate step id `place`"),
        "{stdout}"
    );
}

#[tokio::test]
async fn fail_ends_run_with_reason() {
    let supplier = Supplier::accepting().await;
    let text = "name: strict\ntrigger: manual\nsteps:\n  - id: check\n    script: 'if trigger.body.qty < 1 { fail(`quantity ${trigger.body.qty} is not positive`) } 1'\n  - id: place\n    uses: supplier.create_order\n";
    let (_server, run) = run_workflow(&supplier, "strict", text, json!({ "qty": 0 })).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("quantity 0 is not positive"));
    assert!(supplier.received().is_empty());
}

#[tokio::test]
async fn workflow_handler_sees_run_error() {
    let rejected = Answer::json(StatusCode::BAD_REQUEST, json!({ "error": "bad address" }));
    let supplier = Supplier::sequence(vec![rejected, Answer::order_created("ALERT-1")]).await;
    let text = r#"name: alerting
trigger: manual
steps:
  - id: place
    uses: supplier.create_order
on_failure:
  - id: alert
    uses: supplier.create_order
    with: { alert: "${{ run.error }}" }
"#;
    let (_server, run) = run_workflow(&supplier, "alerting", text, json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let received = supplier.received();
    assert_eq!(received.len(), 2);
    let alert = received[1].json()["alert"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        alert.contains("step `place` (steps[0]) failed") && alert.contains("bad address"),
        "{alert}"
    );
    assert_eq!(step(&run, "on_failure[0]").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn call_to_deleted_child_fails() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "child.yaml",
        "name: child\ntrigger: manual\nsteps:\n  - id: reject\n    script: 'throw \"out of stock\"'\n",
    );
    project.add_workflow(
        "parent.yaml",
        "name: parent\ntrigger: manual\nsteps:\n  - id: ask\n    call: child\n",
    );
    let env = shop_env(&supplier);
    let server = TestServer::start(&project, env.clone()).await;
    let failed = server
        .engine
        .run_now("parent", TriggerEvent::manual(json!({})))
        .await
        .expect("running");
    assert_eq!(failed.status, RunStatus::Failed);
    let child_id = failed.steps[0]
        .input
        .as_ref()
        .and_then(|input| input["child_run_id"].as_str())
        .expect("the call step names its child")
        .to_owned();
    server.engine.store().sync().await.expect("flushing");

    // Delete the failed child as retention would, and keep the parent.
    let copy = tempfile::TempDir::new().expect("a second data directory");
    copy_data_dir(server.data_path(), copy.path());
    {
        let db = sled::open(copy.path()).expect("opening the copy");
        let runs = db.open_tree("runs").expect("the runs tree");
        runs.remove(child_id.as_bytes())
            .expect("deleting the child")
            .expect("the child was stored");
        db.flush().expect("flushing the copy");
    }
    let engine = tether::app::open(project.path(), copy.path(), &env).expect("opening the copy");
    engine.retry(&failed.id).await.expect("retrying the parent");
    let retried = engine.execute(&failed.id).await.expect("executing");

    assert_eq!(retried.status, RunStatus::Failed);
    let error = retried.steps[0].error.clone().unwrap_or_default();
    assert!(error.contains(&child_id), "{error}");
    assert!(error.contains("no longer exists"), "{error}");
    assert!(error.contains("replay this run"), "{error}");
}
