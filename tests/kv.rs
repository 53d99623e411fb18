//! The native `kv` connector: durable values shared by workflows, with
//! writes applied once per step even when the step runs again.

mod common;

use common::*;
use serde_json::json;
use tether::engine::run::{RunStatus, TriggerEvent};

const COUNTER: &str = r#"name: counter
trigger: manual
steps:
  - id: map
    uses: kv.set
    with: { key: "sku/${{ trigger.body.sku }}", value: { vid: "1699000000000000101", supplier: cj } }
  - id: count
    uses: kv.increment
    with: { key: orders, by: 2 }
  - id: swap
    uses: kv.compare_and_set
    with: { key: last, expected: null, value: "${{ trigger.body.sku }}" }
  - id: read
    uses: kv.get
    with: { key: "sku/${{ trigger.body.sku }}" }
  - id: missing
    uses: kv.get
    with: { key: nothing, default: 0 }
"#;

#[tokio::test]
async fn kv_operations_round_trip() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("counter.yaml", COUNTER);
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let first = server
        .engine
        .run_now("counter", TriggerEvent::manual(json!({ "sku": "00123" })))
        .await
        .expect("run");
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let output = |run: &tether::engine::run::Run, id: &str| {
        run.steps
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.output.clone())
            .unwrap_or_default()
    };
    assert_eq!(output(&first, "count"), json!({ "value": 2 }));
    assert_eq!(output(&first, "swap")["swapped"], true);
    assert_eq!(
        output(&first, "read"),
        json!({ "found": true, "value": { "vid": "1699000000000000101", "supplier": "cj" } })
    );
    assert_eq!(
        output(&first, "missing"),
        json!({ "found": false, "value": 0 })
    );

    let second = server
        .engine
        .run_now("counter", TriggerEvent::manual(json!({ "sku": "HL-900" })))
        .await
        .expect("run");
    assert_eq!(output(&second, "count"), json!({ "value": 4 }));
    assert_eq!(
        output(&second, "swap"),
        json!({ "swapped": false, "value": "00123" })
    );
}

#[tokio::test]
async fn repeated_kv_write_applies_once() {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let store = server.engine.store();

    let write = || tether::store::KvWrite::Increment { by: 5 };
    let first = store
        .kv_write("stock", write(), "run-1:count")
        .expect("first write");
    let again = store
        .kv_write("stock", write(), "run-1:count")
        .expect("repeated write");
    let other = store
        .kv_write("stock", write(), "run-2:count")
        .expect("other step");
    assert_eq!(first, json!({ "value": 5 }));
    assert_eq!(
        again,
        json!({ "value": 5 }),
        "the repeat returns the first result"
    );
    assert_eq!(other, json!({ "value": 10 }));

    store
        .kv_write(
            "label",
            tether::store::KvWrite::Set {
                value: json!("text"),
            },
            "run-3:set",
        )
        .expect("set");
    let error = store
        .kv_write("label", write(), "run-3:inc")
        .expect_err("text is not a number");
    assert!(error.to_string().contains("not an integer"), "{error}");
}

#[test]
fn kv_name_is_reserved() {
    let project = Project::bundled();
    std::fs::write(
        project.path().join("connectors/kv.yaml"),
        "name: kv\nconfig: { base_url: \"http://127.0.0.1:1\" }\noperations:\n  get: { method: GET, path: /x }\n",
    )
    .expect("writing a connector");
    let scripts = tether::expr::ScriptEngine::new(tether::expr::Limits::default());
    let registry = tether::workflow::load_dir(project.path(), &scripts, &shop_env_static());
    let problems: Vec<String> = registry.problems.iter().map(ToString::to_string).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("connector name `kv` is taken")),
        "{problems:#?}"
    );
}

fn shop_env_static() -> tether::workflow::Env {
    tether::workflow::Env::from_pairs([
        ("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET),
        ("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN),
    ])
}

const LISTER: &str = r#"name: lister
trigger: manual
steps:
  - id: a
    uses: kv.set
    with: { key: "catalog/CJHL0900-BK", value: { vid: "101" } }
  - id: b
    uses: kv.set
    with: { key: "catalog/CJHL0230", value: { vid: "201" } }
  - id: other
    uses: kv.set
    with: { key: "price/CJHL0230", value: "8.99" }
  - id: first_page
    uses: kv.list
    with: { prefix: "catalog/", limit: 1 }
  - id: second_page
    uses: kv.list
    with: { prefix: "catalog/", after: "${{ steps.first_page.output.next }}", limit: 1 }
  - id: all
    uses: kv.list
    with: { prefix: "catalog/" }
"#;

#[tokio::test]
async fn kv_list_walks_one_prefix_in_key_order() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("lister.yaml", LISTER);
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let run = server
        .engine
        .run_now("lister", TriggerEvent::manual(json!({})))
        .await
        .expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let output = |id: &str| {
        run.steps
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.output.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        output("first_page"),
        json!({
            "entries": [{ "key": "catalog/CJHL0230", "value": { "vid": "201" } }],
            "next": "catalog/CJHL0230",
        })
    );
    assert_eq!(
        output("second_page"),
        json!({
            "entries": [{ "key": "catalog/CJHL0900-BK", "value": { "vid": "101" } }],
            "next": null,
        })
    );
    assert_eq!(output("all")["entries"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn kv_list_rejects_a_limit_out_of_range() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow(
        "huge.yaml",
        "name: huge\ntrigger: manual\nsteps:\n  - id: all\n    uses: kv.list\n    with: { prefix: \"\", limit: 20000 }\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    let run = server
        .engine
        .run_now("huge", TriggerEvent::manual(json!({})))
        .await
        .expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.steps[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("`limit` must be a whole number from 1 to 10000, got 20000"),
        "{error}"
    );
}
