//! The bundled `catalog-import` workflow against the Shopify and CJ
//! stand-in: products created from the CJ listing with normalised fields,
//! kv mappings, updates, drafts for dropped products, and listings that
//! fail.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, TriggerEvent};

/// Items per CJ page in these tests, so the fixture's two products fill
/// page 1 and a third product lands on page 2.
const PAGE_SIZE: usize = 2;

/// Builds a third product for page 2, with untidy text, HTML in its name and a
/// valid EAN-13.
fn strap_product() -> Value {
    json!({
        "pid": "1699000000000000003",
        "productSku": "CJHL0400",
        "productNameEn": "  Headlamp <b>silicone</b>&nbsp;strap,\n replacement\u{200b}  ",
        "categoryName": "Outdoor /  Lighting / Accessories ",
        "sellPrice": "1.25",
        "description": "<p>Fits most headlamps.</p>",
        "productImageSet": ["https://img.example.test/strap/1.jpg", "https://img.example.test/strap/2.jpg"],
        "variants": [
            { "vid": "1699000000000000301", "variantSku": "CJHL0400", "variantKey": "", "variantSellPrice": "1.25", "upc": " 4006381333931 ", "mpn": "TB-STRAP" }
        ]
    })
}

fn fixture_products() -> Vec<Value> {
    let page: Value =
        serde_json::from_slice(&fixture("supplier-products-page1.json")).expect("fixture JSON");
    page["data"]["list"].as_array().expect("a list").clone()
}

/// The CJ listing the stand-in serves, `PAGE_SIZE` items a page.
#[derive(Clone)]
struct Listing(Arc<Mutex<Vec<Value>>>);

impl Listing {
    /// Serves `products` from `apis`' CJ product list, `PAGE_SIZE` a page,
    /// unless `page_answer` returns another response for a page number.
    fn serve(
        apis: &ShopApis,
        products: Vec<Value>,
        page_answer: impl Fn(usize) -> Option<Answer> + Send + Sync + 'static,
    ) -> Self {
        Self::serve_with(apis, products, page_answer, |_| None)
    }

    /// Like `serve`, and responds to every other request with `other_answer`
    /// when it returns a response.
    fn serve_with(
        apis: &ShopApis,
        products: Vec<Value>,
        page_answer: impl Fn(usize) -> Option<Answer> + Send + Sync + 'static,
        other_answer: impl Fn(&Recorded) -> Option<Answer> + Send + Sync + 'static,
    ) -> Self {
        let listing = Listing(Arc::new(Mutex::new(products)));
        let served = listing.clone();
        apis.set_fault(Some(Arc::new(move |request: &Recorded| {
            if request.path != "/api2.0/v1/product/list" {
                return other_answer(request);
            }
            let page: usize = request
                .param("pageNum")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if let Some(answer) = page_answer(page) {
                return Some(answer);
            }
            let products = served.0.lock().expect("listing lock");
            let list: Vec<&Value> = products
                .iter()
                .skip((page - 1) * PAGE_SIZE)
                .take(PAGE_SIZE)
                .collect();
            Some(cj_ok(json!({
                "pageNum": page, "pageSize": PAGE_SIZE,
                "total": products.len(), "list": list,
            })))
        })));
        listing
    }

    fn set(&self, products: Vec<Value>) {
        *self.0.lock().expect("listing lock") = products;
    }
}

async fn start(apis: &ShopApis) -> TestServer {
    let project = Project::bundled();
    project.add_workflow("kv-tool.yaml", KV_TOOL);
    // The bundled connectors keep to CJ's one request per second and
    // Shopify's bucket. These tests import several times, so their copies
    // allow more.
    for file in ["cj", "shopify"] {
        let connector = project.path().join(format!("connectors/{file}.yaml"));
        let text = std::fs::read_to_string(&connector).expect("reading a connector");
        let faster: String = text
            .lines()
            .map(|line| {
                if line.starts_with("rate_limit:") {
                    "rate_limit: { requests: 100, per: 1s }\n".to_string()
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert_ne!(
            faster, text,
            "{file}.yaml has no rate_limit line to replace"
        );
        std::fs::write(&connector, faster).expect("writing a connector");
    }
    TestServer::start(&project, apis.env()).await
}

async fn import(server: &TestServer, input: Value) -> Run {
    server
        .engine
        .run_now("catalog-import", TriggerEvent::manual(input))
        .await
        .expect("running catalog-import")
}

fn product_status(apis: &ShopApis, sku: &str) -> String {
    let state = apis.state();
    let product = state
        .shopify_product_by_sku(sku)
        .unwrap_or_else(|| panic!("no Shopify product has SKU {sku}"));
    product["status"].as_str().unwrap_or_default().to_string()
}

fn variant_field(apis: &ShopApis, sku: &str, field: &str) -> Value {
    let state = apis.state();
    let variant = state
        .shopify_variant_by_sku(sku)
        .unwrap_or_else(|| panic!("no Shopify variant has SKU {sku}"));
    variant[field].clone()
}

#[tokio::test]
async fn import_creates_normalised_products() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    products.push(strap_product());
    Listing::serve(&apis, products, |_| None);
    let server = start(&apis).await;

    let run = import(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let pages: Vec<String> = apis
        .calls("GET", "/api2.0/v1/product/list")
        .iter()
        .map(|request| request.param("pageNum").unwrap_or_default())
        .collect();
    assert_eq!(pages, ["1", "2", "3"], "two pages and the empty one");
    assert_eq!(
        apis.calls("POST", "/admin/api/2024-10/products.json").len(),
        3
    );

    {
        let state = apis.state();
        assert_eq!(state.shopify_products.len(), 3);
        let lamp = state
            .shopify_product_by_sku("CJHL0900-BK")
            .expect("the 900lm lamp");
        assert_eq!(
            lamp["title"],
            "Rechargeable LED headlamp 900lm, motion sensor"
        );
        assert_eq!(lamp["product_type"], "Headlamps");
        assert_eq!(lamp["tags"], "Outdoor, Lighting, Headlamps");
        assert_eq!(lamp["status"], "active");
        assert_eq!(
            lamp["images"],
            json!([{ "src": "https://img.example.test/hl900/main.jpg" }])
        );
        assert_eq!(lamp["options"], json!([{ "name": "Variant" }]));
        let option_values: Vec<&Value> = lamp["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .map(|v| &v["option1"])
            .collect();
        assert_eq!(option_values, [&json!("Black"), &json!("Orange")]);

        let strap = state.shopify_product_by_sku("CJHL0400").expect("the strap");
        assert_eq!(strap["title"], "Headlamp silicone strap, replacement");
        assert_eq!(strap["product_type"], "Accessories");
        assert_eq!(strap["tags"], "Outdoor, Lighting, Accessories");
        assert_eq!(strap["body_html"], "<p>Fits most headlamps.</p>");
        assert_eq!(strap["images"].as_array().map(Vec::len), Some(2));
        assert!(strap["options"].is_null(), "one variant needs no option");
    }

    // Sale prices come from price-rule.
    assert_eq!(variant_field(&apis, "CJHL0900-BK", "price"), "18.99");
    assert_eq!(variant_field(&apis, "CJHL0900-OR", "price"), "19.99");
    assert_eq!(variant_field(&apis, "CJHL0230", "price"), "8.99");
    assert_eq!(variant_field(&apis, "CJHL0400", "price"), "6.99");

    // Both fixture GTINs fail the check digit; the orange one is empty.
    assert_eq!(variant_field(&apis, "CJHL0400", "barcode"), "4006381333931");
    for sku in ["CJHL0900-BK", "CJHL0900-OR", "CJHL0230"] {
        assert!(
            variant_field(&apis, sku, "barcode").is_null(),
            "SKU {sku} must have no barcode"
        );
    }
    let output = run.output.clone().expect("a summary");
    let warnings = output["warnings"].as_array().expect("warnings").clone();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap_or("").contains("0850012345678"));
    assert!(
        warnings[1]
            .as_str()
            .unwrap_or("")
            .contains("00850012345692")
    );
    assert_eq!(output["created"], 3);
    assert_eq!(output["drafted"], 0);

    // The MPN is a variant metafield; CJHL0230 has none.
    let metafields = variant_field(&apis, "CJHL0900-BK", "metafields");
    assert_eq!(
        metafields,
        json!([{ "namespace": "custom", "key": "mpn", "type": "single_line_text_field", "value": "TB-900-BK" }])
    );
    assert!(variant_field(&apis, "CJHL0230", "metafields").is_null());

    let catalog = kv_values(&server, "catalog/").await;
    assert_eq!(catalog.len(), 4);
    let entry = &catalog["catalog/CJHL0900-BK"];
    let variant_id = variant_field(&apis, "CJHL0900-BK", "id");
    let inventory_item_id = variant_field(&apis, "CJHL0900-BK", "inventory_item_id");
    let product_id = variant_field(&apis, "CJHL0900-BK", "product_id");
    assert_eq!(
        entry,
        &json!({
            "sku": "CJHL0900-BK",
            "product_sku": "CJHL0900",
            "pid": "1699000000000000001",
            "vid": "1699000000000000101",
            "wholesale": "8.42",
            "title": "Rechargeable LED headlamp 900lm, motion sensor",
            "shopify": { "product_id": product_id, "variant_id": variant_id, "inventory_item_id": inventory_item_id },
            "sources": [{ "supplier": "cj", "vid": "1699000000000000101" }],
        })
    );
    assert_eq!(catalog["catalog/CJHL0230"]["wholesale"], "3.10");
    let prices = kv_values(&server, "price/").await;
    assert_eq!(prices["price/CJHL0900-BK"], "18.99");
    assert_eq!(prices["price/CJHL0230"], "8.99");
}

#[tokio::test]
async fn reimport_drafts_dropped_product() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    products.push(strap_product());
    let listing = Listing::serve(&apis, products.clone(), |_| None);
    let server = start(&apis).await;
    let first = import(&server, json!({})).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");

    // An operator adds a second supplier for one SKU.
    let mut entry = kv_values(&server, "catalog/CJHL0230").await["catalog/CJHL0230"].clone();
    entry["sources"]
        .as_array_mut()
        .expect("sources")
        .push(json!({ "supplier": "supplier", "sku": "SUP-0230" }));
    kv_put(&server, "catalog/CJHL0230", entry).await;

    // CJ drops the strap and renames the 900lm lamp.
    products.pop();
    products[0]["productNameEn"] = json!("Rechargeable LED headlamp 900lm,  motion sensor, USB-C");
    listing.set(products.clone());
    let created_before = apis.calls("POST", "/admin/api/2024-10/products.json").len();
    let second = import(&server, json!({})).await;

    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let output = second.output.clone().expect("a summary");
    assert_eq!(output["created"], 0);
    assert_eq!(output["updated"], 2);
    assert_eq!(output["drafted"], 1);
    assert_eq!(
        apis.calls("POST", "/admin/api/2024-10/products.json").len(),
        created_before,
        "no product is created again"
    );
    let deletes = apis
        .received()
        .into_iter()
        .filter(|request| request.method == "DELETE")
        .count();
    assert_eq!(deletes, 0);
    assert_eq!(apis.state().shopify_products.len(), 3);
    assert_eq!(product_status(&apis, "CJHL0400"), "draft");
    assert_eq!(product_status(&apis, "CJHL0900-BK"), "active");
    assert_eq!(product_status(&apis, "CJHL0230"), "active");
    assert_eq!(
        apis.state()
            .shopify_product_by_sku("CJHL0900-BK")
            .expect("lamp")["title"],
        "Rechargeable LED headlamp 900lm, motion sensor, USB-C"
    );
    // Prices belong to price-sync: an update leaves them alone.
    assert_eq!(variant_field(&apis, "CJHL0900-BK", "price"), "18.99");

    let catalog = kv_values(&server, "catalog/").await;
    assert_eq!(catalog["catalog/CJHL0400"]["retired"], true);
    assert!(catalog["catalog/CJHL0230"]["retired"].is_null());
    assert_eq!(
        catalog["catalog/CJHL0230"]["sources"],
        json!([
            { "supplier": "cj", "vid": "1699000000000000201" },
            { "supplier": "supplier", "sku": "SUP-0230" },
        ])
    );

    // A third run drafts nothing again, and a product CJ lists again
    // becomes active without being created twice.
    let third = import(&server, json!({})).await;
    assert_eq!(third.output.clone().expect("a summary")["drafted"], 0);
    products.push(strap_product());
    listing.set(products);
    let fourth = import(&server, json!({})).await;
    assert_eq!(fourth.status, RunStatus::Succeeded, "{fourth:?}");
    assert_eq!(product_status(&apis, "CJHL0400"), "active");
    assert_eq!(apis.state().shopify_products.len(), 3);
    let catalog = kv_values(&server, "catalog/CJHL0400").await;
    assert!(catalog["catalog/CJHL0400"]["retired"].is_null());
}

#[tokio::test]
async fn new_variant_is_added_to_product() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    let listing = Listing::serve(&apis, products.clone(), |_| None);
    let server = start(&apis).await;
    let first = import(&server, json!({})).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");

    products[0]["variants"]
        .as_array_mut()
        .expect("variants")
        .push(json!({
            "vid": "1699000000000000103", "variantSku": "CJHL0900-GR", "variantKey": "Green",
            "variantSellPrice": 8.42, "upc": "0850012345671", "mpn": "TB-900-GR"
        }));
    listing.set(products);
    let second = import(&server, json!({})).await;

    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let lamp_id = variant_field(&apis, "CJHL0900-BK", "product_id");
    let path = format!("/admin/api/2024-10/products/{lamp_id}/variants.json");
    assert_eq!(apis.calls("POST", &path).len(), 1);
    assert_eq!(variant_field(&apis, "CJHL0900-GR", "product_id"), lamp_id);
    assert_eq!(variant_field(&apis, "CJHL0900-GR", "price"), "18.99");
    assert_eq!(
        variant_field(&apis, "CJHL0900-GR", "barcode"),
        "0850012345671"
    );
    assert_eq!(variant_field(&apis, "CJHL0900-GR", "option1"), "Green");
    let catalog = kv_values(&server, "catalog/CJHL0900-GR").await;
    assert_eq!(
        catalog["catalog/CJHL0900-GR"]["shopify"]["variant_id"],
        variant_field(&apis, "CJHL0900-GR", "id")
    );
}

/// Starts the stand-in with the fixture products and the strap, and
/// imports them once successfully.
async fn imported_catalog() -> (ShopApis, TestServer, Vec<Value>) {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    products.push(strap_product());
    Listing::serve(&apis, products.clone(), |_| None);
    let server = start(&apis).await;
    let first = import(&server, json!({})).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    (apis, server, products)
}

#[tokio::test]
async fn failed_page_drafts_nothing() {
    let (apis, server, products) = imported_catalog().await;

    // Page 2 returns CJ's error envelope, which is not retryable.
    Listing::serve(&apis, products, |page| {
        (page == 2).then(|| cj_error(1600100, "Param error"))
    });
    let writes_before = shopify_writes(&apis);
    let second = import(&server, json!({})).await;

    assert_eq!(second.status, RunStatus::Failed, "{second:?}");
    let error = second.error.clone().unwrap_or_default();
    assert!(error.contains("Param error"), "{error}");
    assert_eq!(
        shopify_writes(&apis),
        writes_before,
        "the store is untouched"
    );
    for sku in ["CJHL0900-BK", "CJHL0230", "CJHL0400"] {
        assert_eq!(product_status(&apis, sku), "active", "SKU {sku}");
    }
}

#[tokio::test]
async fn rate_limited_page_is_retried() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    products.push(strap_product());
    let limited = Arc::new(Mutex::new(false));
    let envelope: Value =
        serde_json::from_slice(&fixture("supplier-error-envelope.json")).expect("fixture JSON");
    Listing::serve(&apis, products, move |page| {
        let mut limited = limited.lock().expect("flag lock");
        if page == 2 && !*limited {
            *limited = true;
            return Some(Answer::json(StatusCode::OK, envelope.clone()));
        }
        None
    });
    let server = start(&apis).await;

    let run = import(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let listing = run
        .steps
        .iter()
        .find(|step| step.path == "steps[0]")
        .expect("the listing step");
    assert_eq!(listing.attempts.len(), 2, "one retry after code 1600200");
    assert_eq!(apis.state().shopify_products.len(), 3);
}

#[tokio::test]
async fn short_listing_drafts_nothing_unless_allowed() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    products.push(strap_product());
    let listing = Listing::serve(&apis, products, |_| None);
    let server = start(&apis).await;
    let first = import(&server, json!({})).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");

    listing.set(Vec::new());
    let writes_before = shopify_writes(&apis);
    let empty = import(&server, json!({})).await;
    assert_eq!(empty.status, RunStatus::Failed, "{empty:?}");
    let error = empty.error.clone().unwrap_or_default();
    assert!(error.contains("CJ listed no products"), "{error}");
    assert_eq!(shopify_writes(&apis), writes_before);

    // Two of three products gone is more than the default share of 0.5.
    listing.set(vec![strap_product()]);
    let short = import(&server, json!({})).await;
    assert_eq!(short.status, RunStatus::Failed, "{short:?}");
    let error = short.error.clone().unwrap_or_default();
    assert!(error.contains("max_draft_share"), "{error}");
    assert_eq!(product_status(&apis, "CJHL0230"), "active");

    let allowed = import(&server, json!({ "allow_mass_draft": true })).await;
    assert_eq!(allowed.status, RunStatus::Succeeded, "{allowed:?}");
    assert_eq!(product_status(&apis, "CJHL0900-BK"), "draft");
    assert_eq!(product_status(&apis, "CJHL0230"), "draft");
    assert_eq!(product_status(&apis, "CJHL0400"), "active");
}

/// Counts the requests that change the Shopify store.
fn shopify_writes(apis: &ShopApis) -> usize {
    apis.received()
        .iter()
        .filter(|request| request.path.starts_with("/admin/") && request.method != "GET")
        .count()
}

#[tokio::test]
async fn duplicate_sku_is_imported_once() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    // A second CJ product reuses the COB lamp's SKU on a cheaper variant.
    let mut copy = products[1].clone();
    copy["pid"] = json!("1699000000000000009");
    copy["productSku"] = json!("CJHL9999");
    copy["variants"][0]["vid"] = json!("1699000000000000901");
    copy["variants"][0]["variantSellPrice"] = json!("1.00");
    products.push(copy);
    let listing = Listing::serve(&apis, products.clone(), |_| None);
    let server = start(&apis).await;

    let run = import(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(apis.state().shopify_products.len(), 2);
    let catalog = kv_values(&server, "catalog/CJHL0230").await;
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog["catalog/CJHL0230"]["vid"], "1699000000000000201");
    assert_eq!(catalog["catalog/CJHL0230"]["wholesale"], "3.10");
    assert_eq!(variant_field(&apis, "CJHL0230", "price"), "8.99");
    let output = run.output.clone().expect("a summary");
    let warnings: Vec<String> = output["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1699000000000000901") && w.contains("more than one CJ variant")),
        "{warnings:?}"
    );

    // Listed first on the next day, the copy still does not take the SKU
    // over from the variant catalog/CJHL0230 names.
    products.rotate_right(1);
    listing.set(products);
    let again = import(&server, json!({})).await;
    assert_eq!(again.status, RunStatus::Succeeded, "{again:?}");
    assert_eq!(apis.state().shopify_products.len(), 2);
    let catalog = kv_values(&server, "catalog/CJHL0230").await;
    assert_eq!(catalog["catalog/CJHL0230"]["vid"], "1699000000000000201");
    assert_eq!(catalog["catalog/CJHL0230"]["pid"], "1699000000000000002");
}

/// Responds to `POST products.json` with Shopify's 422 for a title over 255
/// characters or an image URL that does not start with https://.
fn reject_invalid_products(request: &Recorded) -> Option<Answer> {
    if request.method != "POST" || request.path != "/admin/api/2024-10/products.json" {
        return None;
    }
    let product = request.json()["product"].clone();
    let title = product["title"].as_str().unwrap_or_default();
    if title.chars().count() > 255 {
        return Some(Answer::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": { "title": ["is too long (maximum is 255 characters)"] } }),
        ));
    }
    let images = product["images"].as_array().cloned().unwrap_or_default();
    let invalid_image = images.iter().any(|image| {
        !image["src"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://")
    });
    invalid_image.then(|| {
        Answer::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": { "image": ["Image URL is invalid"] } }),
        )
    })
}

#[tokio::test]
async fn rejected_product_does_not_stop_import() {
    let (apis, server, mut products) = imported_catalog().await;

    // CJ drops the strap, renames the 900lm lamp, and adds two products:
    // one with a bad image URL, listed first, and one with a long title.
    let mut bad_image = strap_product();
    bad_image["pid"] = json!("1699000000000000005");
    bad_image["productNameEn"] = json!("Headlamp battery pack");
    bad_image["productImageSet"] = json!(["ftp://img.example.test/battery.jpg"]);
    bad_image["variants"][0]["vid"] = json!("1699000000000000501");
    bad_image["variants"][0]["variantSku"] = json!("CJHL0500");
    let long_name = format!("Headlamp {}", "extra bright ".repeat(30));
    let mut long_title = strap_product();
    long_title["pid"] = json!("1699000000000000006");
    long_title["productNameEn"] = json!(long_name);
    long_title["variants"][0]["vid"] = json!("1699000000000000601");
    long_title["variants"][0]["variantSku"] = json!("CJHL0600");
    products.pop();
    products[0]["productNameEn"] = json!("Rechargeable LED headlamp 900lm, USB-C");
    products.insert(0, bad_image);
    products.push(long_title);
    Listing::serve_with(&apis, products, |_| None, reject_invalid_products);

    let second = import(&server, json!({})).await;

    assert_eq!(second.status, RunStatus::Failed, "{second:?}");
    let error = second.error.clone().unwrap_or_default();
    assert!(error.contains("SKU CJHL0500:"), "{error}");
    assert!(error.contains("Image URL is invalid"), "{error}");
    assert!(!error.contains("CJHL0600"), "{error}");
    // The update and the draft after the rejected product still ran.
    assert_eq!(product_status(&apis, "CJHL0400"), "draft");
    assert_eq!(
        apis.state()
            .shopify_product_by_sku("CJHL0900-BK")
            .expect("lamp")["title"],
        "Rechargeable LED headlamp 900lm, USB-C"
    );
    // The long title was cut at a space before Shopify's limit.
    let title = apis
        .state()
        .shopify_product_by_sku("CJHL0600")
        .expect("the long-titled product")["title"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(title.chars().count() <= 255, "{title}");
    assert!(long_name.starts_with(&title), "{title}");
    assert!(long_name[title.len()..].starts_with(' '), "{title}");
    let catalog = kv_values(&server, "catalog/").await;
    assert!(!catalog.contains_key("catalog/CJHL0500"));
    assert!(catalog.contains_key("catalog/CJHL0600"));
}

#[tokio::test]
async fn failed_mpn_keeps_catalog_entry() {
    let apis = ShopApis::start().await;
    Listing::serve_with(
        &apis,
        fixture_products(),
        |_| None,
        |request| {
            let variant_put =
                request.method == "PUT" && request.path.starts_with("/admin/api/2024-10/variants/");
            variant_put.then(|| {
                Answer::json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "errors": { "metafields": ["is invalid"] } }),
                )
            })
        },
    );
    let server = start(&apis).await;

    let first = import(&server, json!({})).await;

    assert_eq!(first.status, RunStatus::Failed, "{first:?}");
    let error = first.error.clone().unwrap_or_default();
    assert!(error.contains("SKU CJHL0900-BK:"), "{error}");
    assert!(error.contains("MPN metafield"), "{error}");
    assert_eq!(kv_values(&server, "catalog/").await.len(), 3);
    assert_eq!(kv_values(&server, "price/").await.len(), 3);

    let second = import(&server, json!({})).await;
    assert_eq!(second.status, RunStatus::Failed, "{second:?}");
    assert_eq!(
        apis.calls("POST", "/admin/api/2024-10/products.json").len(),
        2,
        "no product is created twice"
    );
    assert_eq!(apis.state().shopify_products.len(), 2);
}

#[tokio::test]
async fn dropped_variant_is_retired() {
    let apis = ShopApis::start().await;
    let mut products = fixture_products();
    let listing = Listing::serve(&apis, products.clone(), |_| None);
    let server = start(&apis).await;
    let first = import(&server, json!({})).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");

    // CJ still lists the 900lm lamp, but without its orange variant.
    let orange = products[0]["variants"][1].clone();
    products[0]["variants"]
        .as_array_mut()
        .expect("variants")
        .truncate(1);
    listing.set(products.clone());
    let second = import(&server, json!({})).await;

    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let output = second.output.clone().expect("a summary");
    assert_eq!(output["drafted"], 0);
    assert_eq!(output["retired_variants"], 1);
    assert_eq!(product_status(&apis, "CJHL0900-BK"), "active");
    let catalog = kv_values(&server, "catalog/").await;
    assert_eq!(catalog["catalog/CJHL0900-OR"]["retired"], true);
    assert!(catalog["catalog/CJHL0900-BK"]["retired"].is_null());

    // Nothing more to retire on the next run, and a variant CJ lists
    // again is no longer retired.
    let third = import(&server, json!({})).await;
    assert_eq!(
        third.output.clone().expect("a summary")["retired_variants"],
        0
    );
    products[0]["variants"]
        .as_array_mut()
        .expect("variants")
        .push(orange);
    listing.set(products);
    let fourth = import(&server, json!({})).await;
    assert_eq!(fourth.status, RunStatus::Succeeded, "{fourth:?}");
    let catalog = kv_values(&server, "catalog/CJHL0900-OR").await;
    assert!(catalog["catalog/CJHL0900-OR"]["retired"].is_null());
}

#[tokio::test]
async fn gtin_separators_and_numbers() {
    let apis = ShopApis::start().await;
    let mut product = strap_product();
    let variant = |vid: &str, sku: &str, upc: Value| json!({ "vid": vid, "variantSku": sku, "variantKey": sku, "variantSellPrice": "1.25", "upc": upc });
    product["variants"] = json!([
        variant(
            "1699000000000000311",
            "UPC-SPACES",
            json!("0 36000 29145 2")
        ),
        variant(
            "1699000000000000312",
            "EAN-HYPHENS",
            json!("400-6381-33393-1")
        ),
        variant("1699000000000000313", "UPC-INTEGER", json!(36000291452u64)),
        variant(
            "1699000000000000314",
            "UPC-BAD-INTEGER",
            json!(36000291453u64)
        ),
        variant(
            "1699000000000000315",
            "EAN-FLOAT",
            json!(4006381333931.0f64)
        ),
    ]);
    Listing::serve(&apis, vec![product], |_| None);
    let server = start(&apis).await;

    let run = import(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let barcodes = [
        ("UPC-SPACES", json!("036000291452")),
        ("EAN-HYPHENS", json!("4006381333931")),
        ("UPC-INTEGER", json!("036000291452")),
        ("UPC-BAD-INTEGER", Value::Null),
        ("EAN-FLOAT", Value::Null),
    ];
    for (sku, barcode) in barcodes {
        assert_eq!(variant_field(&apis, sku, "barcode"), barcode, "SKU {sku}");
    }
    let output = run.output.clone().expect("a summary");
    let warnings: Vec<String> = output["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for sku in ["UPC-INTEGER", "UPC-BAD-INTEGER", "EAN-FLOAT"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(sku) && w.contains("not as a string")),
            "SKU {sku}: {warnings:?}"
        );
    }
}

#[tokio::test]
async fn bad_draft_share_is_named() {
    let apis = ShopApis::start().await;
    Listing::serve(&apis, fixture_products(), |_| None);
    let project = Project::bundled();
    let path = project.path().join("workflows/catalog-import.yaml");
    let text = std::fs::read_to_string(&path).expect("reading catalog-import.yaml");
    let changed = text.replace(r#"max_draft_share: "0.5""#, r#"max_draft_share: "0,5""#);
    assert_ne!(
        changed, text,
        "catalog-import.yaml has no max_draft_share line"
    );
    std::fs::write(&path, changed).expect("writing catalog-import.yaml");
    let server = TestServer::start(&project, apis.env()).await;

    let run = import(&server, json!({})).await;

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(
        run.error.as_deref().unwrap_or_default(),
        r#"vars.max_draft_share in catalog-import.yaml is "0,5", not a decimal; write it with a dot, such as "0.5""#
    );
    assert!(apis.state().shopify_products.is_empty());
}
