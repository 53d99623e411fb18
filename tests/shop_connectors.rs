//! The bundled Shopify and CJ Dropshipping connectors against servers on
//! 127.0.0.1 that answer in those APIs' shapes.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{RunStatus, TriggerEvent};
use tether::workflow::Env;

fn env_for(base_var: &str, server: &Supplier) -> Env {
    shop_env(server).with(base_var, &server.url())
}

async fn run_step(env: Env, uses: &str, with: &str) -> tether::engine::run::Run {
    let project = Project::bundled();
    let workflow = format!(
        "name: one-call\ntrigger: manual\nsteps:\n  - id: call\n    uses: {uses}\n    with: {with}\n"
    );
    project.add_workflow("one-call.yaml", &workflow);
    let server = TestServer::start(&project, env).await;
    server
        .engine
        .run_now("one-call", TriggerEvent::manual(json!({})))
        .await
        .expect("running")
}

#[tokio::test]
async fn shopify_fulfillment_sent_with_tracking() {
    let shopify = Supplier::fixed(
        StatusCode::CREATED,
        json!({ "fulfillment": { "id": 255858046, "status": "success" } }),
    )
    .await;
    let with = "{ fulfillment_order_id: 1046000832, tracking_number: \"1Z999AA10123456784\", company: UPS, tracking_url: \"https://www.ups.com/track?tracknum=1Z999AA10123456784\" }";
    let run = run_step(
        env_for("SHOPIFY_BASE_URL", &shopify),
        "shopify.create_fulfillment",
        with,
    )
    .await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output.clone().unwrap_or_default()["id"], 255858046);
    let request = &shopify.received()[0];
    assert_eq!(request.path, "/admin/api/2024-10/fulfillments.json");
    assert_eq!(
        request.header("x-shopify-access-token"),
        Some("shpat_test_admin")
    );
    let body = request.json();
    let fulfillment = &body["fulfillment"];
    assert_eq!(
        fulfillment["line_items_by_fulfillment_order"][0]["fulfillment_order_id"],
        1046000832
    );
    assert_eq!(fulfillment["tracking_info"]["number"], "1Z999AA10123456784");
    assert_eq!(fulfillment["tracking_info"]["company"], "UPS");
}

#[tokio::test]
async fn shopify_products_follow_link_pages() {
    let shopify = Supplier::start(Arc::new(|request: &Recorded, n| {
        let products = json!({ "products": [{ "id": n, "title": format!("page {n}") }] });
        let answer = Answer::json(StatusCode::OK, products);
        if n == 0 {
            let next = format!(
                "<http://{}/admin/api/2024-10/products.json?limit=250&page_info=abc>; rel=\"next\"",
                request.header("host").unwrap_or("")
            );
            answer.header("link", &next)
        } else {
            answer
        }
    }))
    .await;
    let run = run_step(
        env_for("SHOPIFY_BASE_URL", &shopify),
        "shopify.list_products",
        "{}",
    )
    .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.output
            .clone()
            .unwrap_or_default()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        shopify.received()[1].param("page_info").as_deref(),
        Some("abc")
    );
}

#[tokio::test]
async fn cj_token_envelope_and_pages() {
    let cj = Supplier::start(Arc::new(|request: &Recorded, _| {
        if request.path.ends_with("/getAccessToken") {
            return Answer::json(StatusCode::OK, json!({ "code": 200, "result": true, "message": "Success",
                "data": { "accessToken": "cj-token-1", "accessTokenExpiryDate": "2026-12-19T00:00:00+08:00" } }));
        }
        assert_eq!(request.header("cj-access-token"), Some("cj-token-1"));
        let page: u32 = request.param("pageNum").and_then(|p| p.parse().ok()).unwrap_or(0);
        let list: Vec<Value> = if page == 1 {
            serde_json::from_slice::<Value>(&fixture("supplier-products-page1.json")).expect("fixture")["data"]["list"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        Answer::json(StatusCode::OK, json!({ "code": 200, "result": true, "message": "Success", "data": { "pageNum": page, "list": list } }))
    }))
    .await;
    let run = run_step(env_for("CJ_BASE_URL", &cj), "cj.list_products", "{}").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let products = run.output.clone().unwrap_or_default();
    assert_eq!(products.as_array().map(Vec::len), Some(2));
    assert_eq!(products[0]["pid"], "1699000000000000001");
    let token_request = cj.received()[0].json();
    assert_eq!(token_request["email"], "ops@lumen-trail.example");

    let limited = Supplier::start(Arc::new(|request: &Recorded, _| {
        if request.path.ends_with("/getAccessToken") {
            return Answer::json(
                StatusCode::OK,
                json!({ "code": 200, "result": true, "data": { "accessToken": "t" } }),
            );
        }
        Answer::json(
            StatusCode::OK,
            serde_json::from_slice(&fixture("supplier-error-envelope.json")).expect("fixture"),
        )
    }))
    .await;
    let run = run_step(
        env_for("CJ_BASE_URL", &limited),
        "cj.order_detail",
        "{ order_id: \"SO-1\" }",
    )
    .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .clone()
            .unwrap_or_default()
            .contains("Too much request"),
        "{:?}",
        run.error
    );
}

/// Returns the CJ product items of the fixture's first page.
fn fixture_catalog() -> Vec<Value> {
    let page: Value =
        serde_json::from_slice(&fixture("supplier-products-page1.json")).expect("fixture");
    page["data"]["list"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn shop_stand_in_keeps_state() {
    let shop = ShopApis::start().await;
    shop.state().cj_products = fixture_catalog();

    let run = run_step(shop.env(), "cj.list_products", "{}").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let products = run.output.clone().unwrap_or_default();
    assert_eq!(products.as_array().map(Vec::len), Some(2), "{products}");
    assert_eq!(shop.state().cj_tokens_issued, 1);

    let with = format!(
        "{{ location_id: {SHOP_LOCATION_ID}, inventory_item_id: 47000000000009, available: 12 }}"
    );
    let run = run_step(shop.env(), "shopify.set_inventory", &with).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        shop.state().shopify_inventory.get(&47_000_000_000_009),
        Some(&12)
    );
    let sets = shop.calls("POST", "/admin/api/2024-10/inventory_levels/set.json");
    assert_eq!(sets.len(), 1);
}
