//! The bundled `woocommerce` connector against a WooCommerce store on
//! 127.0.0.1: basic auth with the consumer key and secret, orders listed
//! after a date page by page, an order note, a status change and a product
//! batch update.

mod common;

use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, TriggerEvent};

/// Orders in the store: more than two pages of 100.
const ORDERS: u64 = 230;

async fn store_server(store: &WooStore, workflow: &str) -> TestServer {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("woo-call.yaml", workflow);
    let env = shop_env(&supplier).with("WOOCOMMERCE_BASE_URL", &store.url());
    TestServer::start(&project, env).await
}

async fn run(server: &TestServer, input: Value) -> Run {
    server
        .engine
        .run_now("woo-call", TriggerEvent::manual(input))
        .await
        .expect("running the workflow")
}

fn order(id: u64, day: u64) -> Value {
    json!({
        "id": id,
        "number": id.to_string(),
        "status": "processing",
        "date_created": format!("2026-11-{day:02}T10:00:00"),
        "line_items": [],
    })
}

#[tokio::test]
async fn orders_after_date_read_every_page() {
    let store = WooStore::start().await;
    {
        let mut state = store.state();
        state.orders.push(order(1, 1));
        for id in 2..=ORDERS {
            state.orders.push(order(id, 2 + id % 20));
        }
    }
    let workflow = r#"name: woo-call
trigger: manual
steps:
  - id: list
    uses: woocommerce.list_orders
    with: { after: "${{ trigger.body.after }}" }
"#;
    let server = store_server(&store, workflow).await;

    let run = run(&server, json!({ "after": "2026-11-01T23:59:59" })).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let orders = run.steps[0].output.clone().expect("the listed orders");
    let ids: Vec<u64> = orders
        .as_array()
        .expect("a list")
        .iter()
        .map(|order| order["id"].as_u64().expect("an id"))
        .collect();
    let expected: Vec<u64> = (2..=ORDERS).collect();
    assert_eq!(ids, expected, "every order after the date, in order");

    let requests = store.received();
    let pages: Vec<Option<String>> = requests.iter().map(|r| r.param("page")).collect();
    let expected_pages: Vec<Option<String>> = ["1", "2", "3", "4"]
        .iter()
        .map(|p| Some(p.to_string()))
        .collect();
    assert_eq!(pages, expected_pages, "three full pages and an empty one");
    for request in &requests {
        assert_eq!(request.path, "/wp-json/wc/v3/orders");
        assert_eq!(
            request.param("after").as_deref(),
            Some("2026-11-01T23:59:59")
        );
        assert_eq!(request.param("per_page").as_deref(), Some("100"));
        assert_eq!(request.param("status"), None, "an unset status is left out");
    }
}

#[tokio::test]
async fn wrong_consumer_secret_fails_with_store_message() {
    let store = WooStore::start().await;
    let workflow = "name: woo-call\ntrigger: manual\nsteps:\n  - id: list\n    uses: woocommerce.list_orders\n    with: { after: \"2026-11-01T00:00:00\" }\n";
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("woo-call.yaml", workflow);
    let env = shop_env(&supplier)
        .with("WOOCOMMERCE_BASE_URL", &store.url())
        .with("WOOCOMMERCE_CONSUMER_SECRET", "cs_wrong");
    let server = TestServer::start(&project, env).await;

    let run = run(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.contains("401"), "{error}");
    assert_eq!(store.received().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn note_and_status_reach_order() {
    let store = WooStore::start().await;
    store.state().orders.push(order(7315, 1));
    let workflow = r#"name: woo-call
trigger: manual
steps:
  - id: note
    uses: woocommerce.add_order_note
    with: { id: 7315, note: "Sent to CJ Dropshipping as order CJ1." }
  - id: hold
    uses: woocommerce.update_order_status
    with: { id: 7315, status: on-hold }
"#;
    let server = store_server(&store, workflow).await;

    let run = run(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let requests = store.received();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/wp-json/wc/v3/orders/7315/notes");
    assert_eq!(
        requests[0].json(),
        json!({ "note": "Sent to CJ Dropshipping as order CJ1.", "customer_note": false })
    );
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path, "/wp-json/wc/v3/orders/7315");
    assert_eq!(requests[1].json(), json!({ "status": "on-hold" }));

    let state = store.state();
    let notes = state.notes_of(7315);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["note"], "Sent to CJ Dropshipping as order CJ1.");
    assert_eq!(state.order(7315).expect("the order")["status"], "on-hold");
    let note_output = run.steps[0].output.clone().expect("the created note");
    assert_eq!(note_output["customer_note"], false);
}

#[tokio::test]
async fn batch_updates_stock_and_price() {
    let store = WooStore::start().await;
    {
        let mut state = store.state();
        for (id, sku) in [(501, "HL-900-RC"), (502, "00123")] {
            state.products.push(json!({
                "id": id, "sku": sku, "regular_price": "19.99", "stock_quantity": 3,
                "manage_stock": true,
            }));
        }
    }
    let workflow = r#"name: woo-call
trigger: manual
steps:
  - id: batch
    uses: woocommerce.batch_update_products
    with: { updates: "${{ trigger.body.updates }}" }
"#;
    let server = store_server(&store, workflow).await;
    let updates = json!([
        { "id": 501, "stock_quantity": 0 },
        { "id": 502, "regular_price": "21.49", "stock_quantity": 12 },
    ]);

    let run = run(&server, json!({ "updates": updates })).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let requests = store.received();
    assert_eq!(requests.len(), 1, "one request for the whole batch");
    assert_eq!(requests[0].path, "/wp-json/wc/v3/products/batch");
    assert_eq!(requests[0].json(), json!({ "update": updates }));
    let state = store.state();
    assert_eq!(state.products[0]["stock_quantity"], 0);
    assert_eq!(state.products[1]["stock_quantity"], 12);
    assert_eq!(state.products[1]["regular_price"], "21.49");
    let output = run.steps[0].output.clone().expect("the batch answer");
    assert_eq!(output["update"].as_array().map(Vec::len), Some(2));
}
