//! The bundled `inventory-sync` workflow against the Shopify and CJ
//! stand-in and the generic supplier: levels are summed over suppliers,
//! only changes are pushed, and a supplier that fails never zeroes stock.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, TriggerEvent};
use tether::store::KvWrite;
use tether::trigger::schedule::Clock;

const SET_INVENTORY: &str = "/admin/api/2024-10/inventory_levels/set.json";
const CJ_STOCK: &str = "/api2.0/v1/product/stock/queryByVid";

/// A headlamp sold by CJ and by the generic supplier.
const SHARED_SKU: &str = "CJHL0900-BK";
const SHARED_VID: &str = "1699000000000000101";
const SHARED_ITEM: u64 = 47_000_000_000_101;
/// A headlamp only CJ sells.
const CJ_SKU: &str = "CJHL0230";
const CJ_VID: &str = "1699000000000000201";
const CJ_ITEM: u64 = 47_000_000_000_201;

/// The wall clock moved to just after a 10-minute tick, so the schedule's
/// own next tick is minutes away and only the test starts syncs.
struct AfterTick {
    offset: TimeDelta,
}

impl Clock for AfterTick {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

struct Shop {
    apis: ShopApis,
    server: TestServer,
}

impl Shop {
    /// Starts the stand-in and the engine, with two mapped SKUs in the
    /// catalog and one CJ variant that has no store product yet.
    async fn start() -> Self {
        let apis = ShopApis::start().await;
        let project = Project::bundled();
        let start = DateTime::parse_from_rfc3339("2030-01-07T09:00:05Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        let clock = Arc::new(AfterTick {
            offset: start - Utc::now(),
        });
        let server = TestServer::start_with_clock(&project, apis.env(), clock).await;
        let shop = Shop { apis, server };
        shop.catalog(
            SHARED_SKU,
            json!({
                "sku": SHARED_SKU, "product_sku": "CJHL0900", "pid": "1699000000000000001",
                "vid": SHARED_VID, "wholesale": "8.42", "title": "Headlamp 900lm, black",
                "shopify": { "product_id": 8_000_000_000_001u64, "variant_id": 45_000_000_000_101u64, "inventory_item_id": SHARED_ITEM },
                "sources": [
                    { "supplier": "cj", "vid": SHARED_VID },
                    { "supplier": "supplier", "sku": SHARED_SKU },
                ],
            }),
        );
        shop.catalog(
            CJ_SKU,
            json!({
                "sku": CJ_SKU, "product_sku": "CJHL0230", "pid": "1699000000000000002",
                "vid": CJ_VID, "wholesale": "3.10", "title": "COB work headlamp",
                "shopify": { "product_id": 8_000_000_000_002u64, "variant_id": 45_000_000_000_201u64, "inventory_item_id": CJ_ITEM },
                "sources": [{ "supplier": "cj", "vid": CJ_VID }],
            }),
        );
        shop.catalog(
            "CJHL0900-OR",
            json!({
                "sku": "CJHL0900-OR", "pid": "1699000000000000001", "vid": "1699000000000000102",
                "wholesale": "8.67", "title": "Headlamp 900lm, orange",
                "sources": [{ "supplier": "cj", "vid": "1699000000000000102" }],
            }),
        );
        {
            let mut state = shop.apis.state();
            state.cj_stock.insert(SHARED_VID.to_string(), 7);
            state.cj_stock.insert(CJ_VID.to_string(), 3);
            state.cj_stock.insert("1699000000000000102".to_string(), 40);
            state.supplier_stock.insert(SHARED_SKU.to_string(), 5);
        }
        shop
    }

    fn catalog(&self, sku: &str, entry: Value) {
        self.kv_set(&format!("catalog/{sku}"), entry);
    }

    fn kv_set(&self, key: &str, value: Value) {
        let store = self.server.engine.store();
        store
            .kv_write(key, KvWrite::Set { value }, &format!("test:{key}"))
            .expect("writing a kv entry");
    }

    fn kv_get(&self, key: &str) -> Option<Value> {
        self.server.engine.store().kv_get(key).expect("reading kv")
    }

    /// Runs one sync the way a schedule tick starts it.
    async fn sync(&self) -> Run {
        self.server
            .engine
            .run_now("inventory-sync", TriggerEvent::schedule(Utc::now()))
            .await
            .expect("running inventory-sync")
    }

    /// Returns the `inventory_levels/set.json` bodies received so far.
    fn pushes(&self) -> Vec<Value> {
        self.apis
            .calls("POST", SET_INVENTORY)
            .iter()
            .map(Recorded::json)
            .collect()
    }

    fn store_level(&self, item: u64) -> Option<i64> {
        self.apis.state().shopify_inventory.get(&item).copied()
    }
}

fn step_output<'a>(run: &'a Run, path: &str) -> &'a Value {
    run.steps
        .iter()
        .find(|step| step.path == path)
        .and_then(|step| step.output.as_ref())
        .unwrap_or_else(|| panic!("step {path} has no output: {run:?}"))
}

#[tokio::test]
async fn sync_sums_suppliers_and_pushes_changes() {
    let shop = Shop::start().await;

    let first = shop.sync().await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(shop.store_level(SHARED_ITEM), Some(12));
    assert_eq!(shop.store_level(CJ_ITEM), Some(3));
    assert_eq!(shop.pushes().len(), 2);
    for push in shop.pushes() {
        assert_eq!(push["location_id"], json!(SHOP_LOCATION_ID));
    }
    assert_eq!(shop.kv_get("inventory/CJHL0900-BK"), Some(json!(12)));
    assert_eq!(shop.kv_get("inventory/CJHL0230"), Some(json!(3)));
    let summary = first.output.clone().unwrap_or_default();
    assert_eq!(summary["unmapped"], json!(["CJHL0900-OR"]));
    // The unmapped variant's stock is never read.
    let stock_reads = shop.apis.calls("GET", CJ_STOCK);
    assert_eq!(stock_reads.len(), 2);
    assert!(
        stock_reads
            .iter()
            .all(|read| read.param("vid").as_deref() != Some("1699000000000000102"))
    );
    let supplier_reads = shop.apis.calls("GET", "/v1/stock/CJHL0900-BK");
    assert_eq!(supplier_reads.len(), 1);
    assert_eq!(
        supplier_reads[0].header("authorization"),
        Some(format!("Bearer {SUPPLIER_TOKEN}").as_str())
    );

    let second = shop.sync().await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        shop.pushes().len(),
        2,
        "an unchanged level was pushed again"
    );
    assert_eq!(second.output.clone().unwrap_or_default()["unchanged"], 2);

    shop.apis.state().cj_stock.insert(CJ_VID.to_string(), 9);
    let third = shop.sync().await;
    assert_eq!(third.status, RunStatus::Succeeded, "{third:?}");
    let pushes = shop.pushes();
    assert_eq!(pushes.len(), 3);
    assert_eq!(pushes[2]["inventory_item_id"], json!(CJ_ITEM));
    assert_eq!(pushes[2]["available"], 9);
    assert_eq!(shop.store_level(CJ_ITEM), Some(9));
    assert_eq!(shop.store_level(SHARED_ITEM), Some(12));
}

#[tokio::test]
async fn failing_cj_keeps_store_level() {
    let shop = Shop::start().await;
    // The last sync pushed 20, and the store still shows it.
    shop.kv_set("inventory/CJHL0900-BK", json!(20));
    shop.apis.state().shopify_inventory.insert(SHARED_ITEM, 20);
    shop.apis.set_fault(Some(Arc::new(|request: &Recorded| {
        (request.path == CJ_STOCK && request.param("vid").as_deref() == Some(SHARED_VID))
            .then(|| cj_error(1600100, "System error, please try again later"))
    })));

    let run = shop.sync().await;

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("CJHL0900-BK"), "{error}");
    assert!(error.contains("System error"), "{error}");
    assert!(!error.contains("CJHL0230"), "{error}");
    // The generic supplier returned 5, but a partial sum is never pushed.
    assert_eq!(shop.store_level(SHARED_ITEM), Some(20));
    assert_eq!(shop.kv_get("inventory/CJHL0900-BK"), Some(json!(20)));
    let pushes = shop.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0]["inventory_item_id"], json!(CJ_ITEM));
    assert_eq!(shop.store_level(CJ_ITEM), Some(3));
    let summary = step_output(&run, "steps[5]");
    assert_eq!(summary["unsynced"][0]["sku"], SHARED_SKU);
    assert_eq!(summary["pushed"], json!([{ "sku": CJ_SKU, "level": 3 }]));

    // Once CJ responds again, the next sync pushes the full sum.
    shop.apis.set_fault(None);
    let next = shop.sync().await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!(shop.store_level(SHARED_ITEM), Some(12));
}

#[tokio::test]
async fn unreachable_supplier_keeps_store_level() {
    let shop = Shop::start().await;
    shop.apis.state().shopify_inventory.insert(SHARED_ITEM, 20);
    shop.apis.set_fault(Some(Arc::new(|request: &Recorded| {
        request.path.starts_with("/v1/stock/").then(|| {
            Answer::json(
                axum::http::StatusCode::OK,
                json!({ "code": 1600300, "result": false, "message": "SKU CJHL0900-BK is not listed", "data": null }),
            )
        })
    })));

    let run = shop.sync().await;

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .unwrap_or("")
            .contains("\nCJHL0900-BK: supplier: supplier.stock_by_sku: the remote side reported an error: SKU CJHL0900-BK is not listed;"),
        "{:?}",
        run.error
    );
    assert_eq!(shop.store_level(SHARED_ITEM), Some(20));
    assert_eq!(shop.store_level(CJ_ITEM), Some(3));
    assert_eq!(shop.kv_get("inventory/CJHL0900-BK"), None);
}

#[tokio::test]
async fn negative_stock_counts_as_zero() {
    let shop = Shop::start().await;
    shop.kv_set("inventory/CJHL0230", json!(12));
    shop.apis.state().shopify_inventory.insert(CJ_ITEM, 12);
    shop.apis.state().cj_stock.insert(CJ_VID.to_string(), -2);

    let run = shop.sync().await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(shop.store_level(CJ_ITEM), Some(0));
    assert_eq!(shop.kv_get("inventory/CJHL0230"), Some(json!(0)));
    let summary = run.output.clone().unwrap_or_default();
    let warnings = summary["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = warnings[0].as_str().unwrap_or_default();
    assert!(warning.contains("CJHL0230"), "{warning}");
    assert!(warning.contains("-2"), "{warning}");
}

#[tokio::test]
async fn malformed_source_is_reported_per_sku() {
    let shop = Shop::start().await;
    shop.catalog(
        "CJHL0700",
        json!({
            "sku": "CJHL0700", "vid": "1699000000000000701",
            "shopify": { "product_id": 8_000_000_000_007u64, "variant_id": 45_000_000_000_701u64, "inventory_item_id": 47_000_000_000_701u64 },
            "sources": ["cj"],
        }),
    );

    let run = shop.sync().await;

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("CJHL0700"), "{error}");
    assert!(
        error.contains(r#"{"supplier":"cj","vid":"..."}"#),
        "{error}"
    );
    // The rest of the batch is synced and the cursor moves on.
    assert_eq!(shop.store_level(SHARED_ITEM), Some(12));
    assert_eq!(shop.store_level(CJ_ITEM), Some(3));
    let summary = step_output(&run, "steps[5]");
    assert_eq!(summary["unsynced"][0]["sku"], "CJHL0700");
    let advance = run
        .steps
        .iter()
        .find(|step| step.path == "steps[4]")
        .expect("the cursor step");
    assert_eq!(advance.status, tether::engine::run::StepStatus::Succeeded);
}

#[tokio::test]
async fn retired_sku_is_zeroed_once() {
    let shop = Shop::start().await;
    let mut entry = shop
        .kv_get("catalog/CJHL0230")
        .expect("the COB lamp's entry");
    entry["retired"] = json!(true);
    shop.server
        .engine
        .store()
        .kv_write(
            "catalog/CJHL0230",
            KvWrite::Set { value: entry },
            "test:retire",
        )
        .expect("writing a kv entry");
    shop.kv_set("inventory/CJHL0230", json!(3));
    shop.apis.state().shopify_inventory.insert(CJ_ITEM, 3);
    // CJ no longer lists the variant.
    shop.apis.state().cj_stock.remove(CJ_VID);

    let first = shop.sync().await;

    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(shop.store_level(CJ_ITEM), Some(0));
    assert_eq!(shop.kv_get("inventory/CJHL0230"), Some(json!(0)));
    let cj_reads = shop.apis.calls("GET", CJ_STOCK);
    assert!(
        cj_reads
            .iter()
            .all(|read| read.param("vid").as_deref() != Some(CJ_VID)),
        "a retired SKU's supplier is not asked"
    );

    let second = shop.sync().await;

    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let to_cob: Vec<Value> = shop
        .pushes()
        .into_iter()
        .filter(|push| push["inventory_item_id"] == json!(CJ_ITEM))
        .collect();
    assert_eq!(to_cob.len(), 1, "{to_cob:?}");
    let summary = second.output.clone().unwrap_or_default();
    assert_eq!(summary["retired"], json!([CJ_SKU]));
}
