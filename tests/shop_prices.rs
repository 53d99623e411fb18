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
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;

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
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;

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
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;

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
