//! The bundled `price-rule` and `price-sync` workflows: the sale price rule
//! and its edges, and price pushes to a Shopify stand-in on 127.0.0.1.

mod common;

use common::*;
use serde_json::{Value, json};
use tether::engine::run::{RunStatus, TriggerEvent};

/// Runs `price-rule` on `(sku, wholesale)` pairs and returns its prices.
async fn rule_prices(server: &TestServer, items: &[(&str, Value)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, wholesale)| json!({ "sku": sku, "wholesale": wholesale }))
        .collect();
    let run = server
        .engine
        .run_now(
            "price-rule",
            TriggerEvent::manual(json!({ "items": items })),
        )
        .await
        .expect("running price-rule");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    run.output.expect("price-rule has an output")["prices"].clone()
}

#[tokio::test]
async fn rule_prices_fixture_wholesale() {
    let apis = ShopApis::start().await;
    let server = TestServer::start(&Project::bundled(), apis.env()).await;

    let prices = rule_prices(
        &server,
        &[("CJHL0900-BK", json!(8.42)), ("CJHL0230", json!("3.10"))],
    )
    .await;

    // 8.42 × 2.2 = 18.524, above 8.42 + 5.00, rounded up to 18.99.
    assert_eq!(prices["CJHL0900-BK"], json!("18.99"));
    // 3.10 × 2.2 = 6.82 is below 3.10 + 5.00 = 8.10, which rounds up to 8.99.
    assert_eq!(prices["CJHL0230"], json!("8.99"));
}

#[tokio::test]
async fn rule_rounds_up_to_next_99() {
    let apis = ShopApis::start().await;
    let server = TestServer::start(&Project::bundled(), apis.env()).await;

    // "Rounded up to the next .99" is the smallest amount ending in .99 that
    // is not below the price: X.99 stays, anything above it goes to (X+1).99.
    let cases = [
        ("markup-exact-99", "5.45", "11.99"),   // 5.45 × 2.2 = 11.99
        ("markup-below-99", "5.4495", "11.99"), // 11.9889
        ("markup-above-99", "5.4505", "12.99"), // 11.9911
        ("markup-whole", "10.00", "22.99"),     // 22.00
        ("margin-exact-99", "3.99", "8.99"),    // 3.99 + 5.00 = 8.99
        ("margin-whole", "4.00", "9.99"),       // 9.00 beats 8.80
        ("margin-above-99", "3.991", "9.99"),   // 8.991
        ("tiny", "0.01", "5.99"),               // 5.01
    ];
    let items: Vec<(&str, Value)> = cases
        .iter()
        .map(|(sku, wholesale, _)| (*sku, json!(wholesale)))
        .collect();
    let prices = rule_prices(&server, &items).await;

    for (sku, wholesale, expected) in cases {
        assert_eq!(
            prices[sku],
            json!(expected),
            "SKU {sku} with wholesale {wholesale}"
        );
    }
}

#[tokio::test]
async fn rule_rejects_invalid_wholesale() {
    let apis = ShopApis::start().await;
    let server = TestServer::start(&Project::bundled(), apis.env()).await;

    for wholesale in [json!("12,50"), json!("0"), json!(null)] {
        let input = json!({ "items": [{ "sku": "BAD-1", "wholesale": wholesale }] });
        let run = server
            .engine
            .run_now("price-rule", TriggerEvent::manual(input))
            .await
            .expect("running price-rule");
        assert_eq!(run.status, RunStatus::Failed, "wholesale {wholesale}");
        let error = run.error.unwrap_or_default();
        assert!(error.contains("BAD-1"), "wholesale {wholesale}: {error}");
    }
}

/// Ids of the store products and variants seeded for price-sync.
const LAMP_PRODUCT: u64 = 8_100_000_000_001;
const COB_PRODUCT: u64 = 8_100_000_000_002;
const VARIANTS: [(&str, &str, u64, u64); 3] = [
    (
        "CJHL0900-BK",
        "1699000000000000101",
        LAMP_PRODUCT,
        45_100_000_000_001,
    ),
    (
        "CJHL0900-OR",
        "1699000000000000102",
        LAMP_PRODUCT,
        45_100_000_000_002,
    ),
    (
        "CJHL0230",
        "1699000000000000201",
        COB_PRODUCT,
        45_100_000_000_003,
    ),
];

fn variant_path(variant_id: u64) -> String {
    format!("/admin/api/2024-10/variants/{variant_id}.json")
}

/// Starts the engine with the fixture's CJ products, a store holding them
/// at an old price, and their catalog/ entries, as catalog-import leaves
/// them but without any price/ entry.
async fn seeded_shop() -> (ShopApis, TestServer) {
    let apis = ShopApis::start().await;
    {
        let mut state = apis.state();
        let page: Value =
            serde_json::from_slice(&fixture("supplier-products-page1.json")).expect("fixture JSON");
        state.cj_products = page["data"]["list"].as_array().expect("a list").clone();
        for product_id in [LAMP_PRODUCT, COB_PRODUCT] {
            let variants: Vec<Value> = VARIANTS
                .iter()
                .filter(|(_, _, product, _)| *product == product_id)
                .map(|(sku, _, _, variant_id)| {
                    json!({ "id": variant_id, "product_id": product_id, "sku": sku, "price": "9.99", "inventory_item_id": variant_id + 1 })
                })
                .collect();
            let product = json!({ "id": product_id, "title": "Headlamp", "status": "active", "variants": variants });
            state.shopify_products.insert(product_id, product);
        }
    }
    let project = Project::bundled();
    project.add_workflow("kv-tool.yaml", KV_TOOL);
    let server = TestServer::start(&project, apis.env()).await;
    let entries: Vec<Value> = VARIANTS
        .iter()
        .map(|(sku, vid, product_id, variant_id)| {
            json!({ "key": format!("catalog/{sku}"), "value": {
                "sku": sku, "vid": vid, "wholesale": "0.00",
                "shopify": { "product_id": product_id, "variant_id": variant_id, "inventory_item_id": variant_id + 1 },
                "sources": [{ "supplier": "cj", "vid": vid }],
            } })
        })
        .collect();
    kv_tool(&server, json!(entries), json!([]), "catalog/").await;
    (apis, server)
}

async fn sync(server: &TestServer) -> tether::engine::run::Run {
    let run = server
        .engine
        .run_now("price-sync", TriggerEvent::manual(json!({})))
        .await
        .expect("running price-sync");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    run
}

/// Returns the price of each `PUT variants/{id}.json` received, by SKU.
fn pushed_prices(apis: &ShopApis) -> Vec<(String, Value)> {
    let mut pushed = Vec::new();
    for (sku, _, _, variant_id) in VARIANTS {
        for request in apis.calls("PUT", &variant_path(variant_id)) {
            pushed.push((sku.to_string(), request.json()["variant"]["price"].clone()));
        }
    }
    pushed
}

#[tokio::test]
async fn sync_pushes_rule_prices() {
    let (apis, server) = seeded_shop().await;

    let run = sync(&server).await;

    let expected = [
        ("CJHL0900-BK", "18.99"),
        ("CJHL0900-OR", "19.99"),
        ("CJHL0230", "8.99"),
    ];
    let pushed = pushed_prices(&apis);
    assert_eq!(pushed.len(), 3, "{pushed:?}");
    for (sku, price) in expected {
        assert!(
            pushed.contains(&(sku.to_string(), json!(price))),
            "SKU {sku} at {price}: {pushed:?}"
        );
        let state = apis.state();
        let variant = state.shopify_variant_by_sku(sku).expect("variant");
        assert_eq!(variant["price"], price, "SKU {sku}");
    }
    let prices = kv_values(&server, "price/").await;
    assert_eq!(prices["price/CJHL0900-BK"], "18.99");
    assert_eq!(prices["price/CJHL0900-OR"], "19.99");
    assert_eq!(prices["price/CJHL0230"], "8.99");
    let output = run.output.expect("a summary");
    assert_eq!(output["checked"], 3);
    assert_eq!(output["pushed"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn sync_pushes_only_changed_prices() {
    let (apis, server) = seeded_shop().await;
    sync(&server).await;
    assert_eq!(pushed_prices(&apis).len(), 3);

    // Nothing changed at CJ: nothing is pushed.
    let unchanged = sync(&server).await;
    assert_eq!(pushed_prices(&apis).len(), 3);
    assert_eq!(unchanged.output.expect("a summary")["pushed"], json!([]));

    // The COB lamp's cost rises but its price stays 8.99 (3.60 + 5.00 =
    // 8.60), and the black 900lm lamp's rises from 8.42 to 9.10 (20.02).
    {
        let mut state = apis.state();
        state.cj_products[1]["variants"][0]["variantSellPrice"] = json!(3.6);
        state.cj_products[0]["variants"][0]["variantSellPrice"] = json!(9.1);
    }
    let changed = sync(&server).await;

    let pushed = pushed_prices(&apis);
    assert_eq!(pushed.len(), 4, "{pushed:?}");
    let black: Vec<&Value> = pushed
        .iter()
        .filter(|(sku, _)| sku == "CJHL0900-BK")
        .map(|(_, price)| price)
        .collect();
    assert_eq!(black, [&json!("18.99"), &json!("20.99")]);
    assert_eq!(
        changed.output.expect("a summary")["pushed"],
        json!([{ "sku": "CJHL0900-BK", "variant_id": 45_100_000_000_001u64, "price": "20.99", "previous": "18.99" }])
    );
    let prices = kv_values(&server, "price/").await;
    assert_eq!(prices["price/CJHL0900-BK"], "20.99");
}

#[tokio::test]
async fn sync_after_import_pushes_nothing() {
    let apis = ShopApis::start().await;
    {
        let page: Value =
            serde_json::from_slice(&fixture("supplier-products-page1.json")).expect("fixture JSON");
        apis.state().cj_products = page["data"]["list"].as_array().expect("a list").clone();
    }
    let project = Project::bundled();
    let server = TestServer::start(&project, apis.env()).await;
    let import = server
        .engine
        .run_now("catalog-import", TriggerEvent::manual(json!({})))
        .await
        .expect("running catalog-import");
    assert_eq!(import.status, RunStatus::Succeeded, "{import:?}");
    let variant_puts = |apis: &ShopApis| {
        apis.received()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/variants/"))
            .filter(|r| !r.json()["variant"]["price"].is_null())
            .count()
    };
    assert_eq!(variant_puts(&apis), 0);

    let run = sync(&server).await;

    assert_eq!(variant_puts(&apis), 0, "the import pushed these prices");
    assert_eq!(run.output.expect("a summary")["checked"], 3);
}

#[tokio::test]
async fn failed_listing_pushes_nothing() {
    let (apis, server) = seeded_shop().await;
    apis.set_fault(Some(std::sync::Arc::new(|request: &Recorded| {
        (request.path == "/api2.0/v1/product/list").then(|| cj_error(1600100, "Param error"))
    })));

    let run = server
        .engine
        .run_now("price-sync", TriggerEvent::manual(json!({})))
        .await
        .expect("running price-sync");

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(pushed_prices(&apis).is_empty());
    assert!(kv_values(&server, "price/").await.is_empty());
}

#[tokio::test]
async fn sync_prices_from_catalog_vid() {
    let (apis, server) = seeded_shop().await;
    // Another CJ product, listed first, carries the COB lamp's SKU on a
    // cheaper variant that the store does not sell.
    {
        let mut state = apis.state();
        let impostor = json!({
            "pid": "1699000000000000009", "productSku": "CJHL9999",
            "productNameEn": "COB work headlamp, bulk", "categoryName": "Outdoor / Lighting / Headlamps",
            "variants": [
                { "vid": "1699000000000000901", "variantSku": "CJHL0230", "variantSellPrice": "1.00" }
            ]
        });
        state.cj_products.insert(0, impostor);
        // CJ repeats the sold variant further down the listing.
        let repeated = state.cj_products[2].clone();
        state.cj_products.push(repeated);
    }

    let run = sync(&server).await;

    let cob_puts = apis.calls("PUT", &variant_path(45_100_000_000_003));
    assert_eq!(cob_puts.len(), 1, "one push for the COB lamp");
    // 3.10 + 5.00 rounds up to 8.99; the impostor's 1.00 would give 6.99.
    assert_eq!(cob_puts[0].json()["variant"]["price"], "8.99");
    let output = run.output.expect("a summary");
    assert_eq!(output["checked"], 3);
    let warnings = output["warnings"].as_array().expect("warnings").clone();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let text = |index: usize| warnings[index].as_str().unwrap_or_default().to_string();
    assert!(text(0).contains("1699000000000000901"), "{}", text(0));
    assert!(text(1).contains("again"), "{}", text(1));
}

/// Runs `price-rule` with `input` in a project whose price-rule.yaml has
/// `from` replaced by `to`, and returns the run's error.
async fn rule_error(from: &str, to: &str, input: Value) -> String {
    let apis = ShopApis::start().await;
    let project = Project::bundled();
    let path = project.path().join("workflows/price-rule.yaml");
    let text = std::fs::read_to_string(&path).expect("reading price-rule.yaml");
    assert!(text.contains(from), "price-rule.yaml has no {from}");
    std::fs::write(&path, text.replace(from, to)).expect("writing price-rule.yaml");
    let server = TestServer::start(&project, apis.env()).await;
    let run = server
        .engine
        .run_now("price-rule", TriggerEvent::manual(input))
        .await
        .expect("running price-rule");
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    run.error.unwrap_or_default()
}

#[tokio::test]
async fn rule_names_bad_vars_and_items() {
    let one = json!({ "items": [{ "sku": "X1", "wholesale": "10.00" }] });
    let error = rule_error(r#"markup: "2.2""#, r#"markup: "2,2""#, one.clone()).await;
    assert_eq!(
        error,
        r#"vars.markup in price-rule.yaml is "2,2", not a decimal; write it with a dot, such as "2.2""#
    );
    let error = rule_error(r#"min_margin: "5.00""#, r#"min_margin: "5,00""#, one).await;
    assert!(
        error.starts_with(r#"vars.min_margin in price-rule.yaml is "5,00""#),
        "{error}"
    );

    let cases = [
        (
            json!([{ "wholesale": "3" }]),
            "items[0] has no \"sku\" string",
        ),
        (
            json!([{ "sku": "A1", "wholesale": "3" }, { "sku": 12345, "wholesale": "3" }]),
            "items[1] has no \"sku\" string",
        ),
        (json!(["A1"]), "items[0] is A1, not an object"),
        (
            json!([{ "sku": "A1", "wholesale": "1_99" }]),
            "SKU A1: the wholesale cost is not a decimal number (invalid decimal number \"1_99\"",
        ),
    ];
    let apis = ShopApis::start().await;
    let server = TestServer::start(&Project::bundled(), apis.env()).await;
    for (items, expected) in cases {
        let run = server
            .engine
            .run_now(
                "price-rule",
                TriggerEvent::manual(json!({ "items": items })),
            )
            .await
            .expect("running price-rule");
        assert_eq!(run.status, RunStatus::Failed, "{items}");
        let error = run.error.unwrap_or_default();
        assert!(error.starts_with(expected), "{items}: {error}");
        assert!(!error.contains("#{"), "{items}: {error}");
    }
}
