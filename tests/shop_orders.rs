//! The bundled order workflows end to end: `order-to-supplier` (Shopify)
//! and `order-to-supplier-woocommerce`, both through `place-cj-order`,
//! against the Shopify and CJ stand-in, a WooCommerce store and an SMTP
//! server, all on 127.0.0.1. CJ's connector allows 1 request per second,
//! so a forwarded order takes about three seconds here.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::store::KvWrite;

const SHOPIFY_ORDER_ID: u64 = 6123456789012345;
const WOO_ORDER_ID: u64 = 7315;
const VID_HEADLAMP: &str = "2611041436451600200";
const VID_BATTERY: &str = "2611041436451600311";
const VID_COB: &str = "2611041436451600422";

/// The engine with every bundled workflow, the APIs it calls and the SMTP
/// server the operator's email goes to.
struct Shop {
    apis: ShopApis,
    woo: WooStore,
    smtp: SmtpServer,
    server: TestServer,
}

impl Shop {
    async fn start() -> Self {
        let apis = ShopApis::start().await;
        let woo = WooStore::start().await;
        let (smtp, port) = SmtpServer::start(0).await;
        let env = with_smtp(apis.env(), port).with("WOOCOMMERCE_BASE_URL", &woo.url());
        let server = TestServer::start(&Project::bundled(), env).await;
        Shop {
            apis,
            woo,
            smtp,
            server,
        }
    }

    /// Maps `sku` to the CJ variant `vid` in the catalog, as catalog-import
    /// writes it, and gives CJ `stock` of it.
    fn stock(&self, sku: &str, vid: &str, stock: i64) {
        let entry = json!({
            "sku": sku, "product_sku": format!("CJ-{sku}"), "pid": format!("P-{vid}"),
            "vid": vid, "wholesale": "8.42", "title": format!("Product {sku}"),
            "sources": [{ "supplier": "cj", "vid": vid }],
        });
        self.server
            .engine
            .store()
            .kv_write(
                &format!("catalog/{sku}"),
                KvWrite::Set { value: entry },
                &format!("test:catalog/{sku}"),
            )
            .expect("writing a catalog entry");
        self.apis.state().cj_stock.insert(vid.to_string(), stock);
    }

    fn stock_fixture_order(&self) {
        self.stock("HL-900-RC", VID_HEADLAMP, 40);
        self.stock("00123", VID_BATTERY, 40);
    }

    async fn post_shopify_order(&self, body: &[u8], webhook_id: &str) -> Value {
        let response = self
            .server
            .client
            .post(self.server.url("/hooks/shopify/orders-create"))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", "orders/create")
            .header("X-Shopify-Webhook-Id", webhook_id)
            .header("X-Shopify-Hmac-Sha256", sign(SHOPIFY_SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("sending the Shopify webhook");
        assert!(response.status().is_success(), "{}", response.status());
        let answer: Value = response.json().await.expect("a JSON answer");
        let run_id = answer["run_id"].as_str().expect("a run id");
        self.server.wait_for_run(run_id).await
    }

    /// Posts the Shopify fixture order as Shopify delivers it.
    async fn post_fixture_order(&self) -> Value {
        self.post_shopify_order(&fixture("shopify-orders-create.json"), SHOPIFY_WEBHOOK_ID)
            .await
    }

    fn cj_orders(&self) -> Vec<Value> {
        self.apis.state().cj_orders.clone()
    }

    fn create_calls(&self) -> Vec<Recorded> {
        self.apis
            .calls("POST", "/api2.0/v1/shopping/order/createOrderV2")
    }
}

fn shopify_fixture() -> Value {
    serde_json::from_slice(&fixture("shopify-orders-create.json")).expect("fixture JSON")
}

fn sign(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Returns the text of an SMTP message with its body decoded from
/// quoted-printable or base64, which lettre picks for long or non-ASCII
/// lines.
fn message_text(message: &str) -> String {
    let (headers, body) = message.split_once("\n\n").unwrap_or((message, ""));
    let encoding = headers
        .lines()
        .find_map(|line| line.strip_prefix("Content-Transfer-Encoding: "))
        .unwrap_or("7bit");
    let decoded = match encoding.trim() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            use base64::Engine as _;
            let joined: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .expect("a base64 body");
            String::from_utf8(bytes).expect("a UTF-8 body")
        }
        _ => body.to_string(),
    };
    format!("{headers}\n\n{decoded}")
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let mut bytes = Vec::new();
    let mut rest = joined.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'=' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).expect("ASCII");
            bytes.push(u8::from_str_radix(hex, 16).expect("a hex escape"));
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).expect("a UTF-8 body")
}

/// Returns the one email the operator got, decoded.
fn operator_email(shop: &Shop) -> String {
    let messages = shop.smtp.messages();
    assert_eq!(messages.len(), 1, "one email to the operator: {messages:?}");
    let text = message_text(&messages[0]);
    assert!(text.contains(&format!("To: {OPERATOR_EMAIL}")), "{text}");
    text
}

#[tokio::test]
async fn shopify_order_creates_one_cj_order() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    shop.apis.state().add_shopify_order(shopify_fixture());

    let run = shop.post_fixture_order().await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    let orders = shop.cj_orders();
    assert_eq!(orders.len(), 1, "exactly one CJ order");
    let order = &orders[0];
    assert_eq!(order["orderNumber"], SHOPIFY_ORDER_ID.to_string());
    assert_eq!(
        order["products"],
        json!([
            { "vid": VID_HEADLAMP, "quantity": 2 },
            { "vid": VID_BATTERY, "quantity": 1 },
        ])
    );
    assert_eq!(order["shippingCustomerName"], "Mira Kovač");
    assert_eq!(order["shippingAddress"], "Lindenstraße 12");
    assert_eq!(order["shippingAddress2"], "Hinterhaus, 3. OG");
    assert_eq!(order["shippingCity"], "Köln");
    assert_eq!(order["shippingZip"], "05069");
    assert_eq!(order["shippingCountry"], "Germany");
    assert_eq!(order["shippingCountryCode"], "DE");
    assert_eq!(order["shippingPhone"], "+49 221 5550 1234");
    assert_eq!(order["logisticName"], "CJPacket Ordinary");
    assert_eq!(order["fromCountryCode"], "CN");

    let forward = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["id"] == "forward"))
        .expect("a forward step");
    let child_run = forward["input"]["child_run_id"]
        .as_str()
        .expect("the forward step names its child run");
    let calls = shop.create_calls();
    assert_eq!(calls.len(), 1);
    let expected_key = format!("{child_run}:create");
    assert_eq!(
        calls[0].header("idempotency-key"),
        Some(expected_key.as_str())
    );

    let cj_order_id = order["orderId"].as_str().expect("a CJ order id");
    assert_eq!(run["output"]["cj_order_id"], cj_order_id);
    let state = shop.apis.state();
    let stored = &state.shopify_orders[&SHOPIFY_ORDER_ID];
    let tag = format!("cj-order-{cj_order_id}");
    assert_eq!(stored["tags"], tag.as_str());
    let note = stored["note"].as_str().expect("a note");
    assert!(note.starts_with("Bitte klingeln – Hinterhaus\n"), "{note}");
    assert!(
        note.ends_with(&format!("CJ Dropshipping order {cj_order_id}")),
        "{note}"
    );
    assert!(shop.smtp.messages().is_empty(), "no email on success");
}

#[tokio::test]
async fn redelivery_creates_no_second_cj_order() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    shop.apis.state().add_shopify_order(shopify_fixture());
    let body = fixture("shopify-orders-create.json");
    let first = shop.post_shopify_order(&body, SHOPIFY_WEBHOOK_ID).await;
    assert_eq!(first["status"], "succeeded", "run: {first}");

    let same = shop.post_shopify_order(&body, SHOPIFY_WEBHOOK_ID).await;
    let other = shop.post_shopify_order(&body, "second-delivery-id").await;

    assert_eq!(same["id"], first["id"], "the same delivery is the same run");
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["status"], "succeeded", "run: {other}");
    assert_eq!(other["output"]["already_sent"], true);
    assert_eq!(
        other["output"]["cj_order_id"],
        first["output"]["cj_order_id"]
    );
    assert_eq!(shop.create_calls().len(), 1, "one createOrderV2 call");
    assert_eq!(shop.cj_orders().len(), 1);
    let state = shop.apis.state();
    let tags = state.shopify_orders[&SHOPIFY_ORDER_ID]["tags"].clone();
    let expected = format!(
        "cj-order-{}",
        first["output"]["cj_order_id"].as_str().unwrap_or("")
    );
    assert_eq!(tags, expected.as_str(), "the tag is not added twice");
}

#[tokio::test]
async fn unmapped_sku_fails_and_emails_operator() {
    let shop = Shop::start().await;
    shop.stock("HL-900-RC", VID_HEADLAMP, 40);
    shop.apis.state().add_shopify_order(shopify_fixture());

    let run = shop.post_fixture_order().await;

    assert_eq!(run["status"], "failed", "run: {run}");
    let error = run["error"].as_str().expect("an error");
    assert!(error.contains("no CJ variant for SKU \"00123\""), "{error}");
    assert!(
        !error.contains("HL-900-RC"),
        "only the unmapped SKU: {error}"
    );
    assert!(shop.create_calls().is_empty(), "no CJ order");
    assert!(shop.cj_orders().is_empty());
    let email = operator_email(&shop);
    assert!(email.contains("Shopify order #1042"), "{email}");
    assert!(email.contains("no CJ variant for SKU \"00123\""), "{email}");
}

#[tokio::test]
async fn short_stock_fails_and_emails_operator() {
    let shop = Shop::start().await;
    shop.stock("HL-900-RC", VID_HEADLAMP, 1);
    shop.stock("00123", VID_BATTERY, 40);
    shop.apis.state().add_shopify_order(shopify_fixture());

    let run = shop.post_fixture_order().await;

    assert_eq!(run["status"], "failed", "run: {run}");
    let error = run["error"].as_str().expect("an error");
    let reason = "SKU \"HL-900-RC\" needs 2, 1 available in CN";
    assert!(error.contains(reason), "{error}");
    assert!(!error.contains("00123"), "only the short SKU: {error}");
    assert!(shop.create_calls().is_empty(), "no CJ order");
    let email = operator_email(&shop);
    assert!(email.contains("#1042"), "{email}");
    assert!(email.contains(reason), "{email}");
}

#[tokio::test]
async fn cj_error_envelope_emails_operator() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    shop.apis.state().add_shopify_order(shopify_fixture());
    shop.apis
        .set_fault(Some(std::sync::Arc::new(|request: &Recorded| {
            request
                .path
                .ends_with("/createOrderV2")
                .then(|| cj_error(1603000, "Order create fail, Please contact CJ admin"))
        })));

    let run = shop.post_fixture_order().await;

    assert_eq!(run["status"], "failed", "run: {run}");
    assert_eq!(
        shop.create_calls().len(),
        1,
        "a CJ error code is not retried"
    );
    assert!(shop.cj_orders().is_empty());
    let email = operator_email(&shop);
    assert!(email.contains("Shopify order #1042"), "{email}");
    assert!(
        email.contains("Order create fail, Please contact CJ admin"),
        "{email}"
    );
    let state = shop.apis.state();
    let stored = &state.shopify_orders[&SHOPIFY_ORDER_ID];
    assert_eq!(stored["tags"], "", "nothing is written back");
}

#[tokio::test]
async fn unpaid_order_skipped_without_email() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    let mut order = shopify_fixture();
    order["financial_status"] = json!("pending");
    shop.apis.state().add_shopify_order(order.clone());
    let body = serde_json::to_vec(&order).expect("encoding the order");

    let run = shop.post_shopify_order(&body, "unpaid-delivery").await;

    assert_eq!(run["status"], "skipped", "run: {run}");
    assert!(
        run["reason"].as_str().unwrap_or("").contains("not paid"),
        "{run}"
    );
    let order_calls: Vec<String> = shop
        .apis
        .received()
        .iter()
        .map(|request| request.path.clone())
        .filter(|path| path.contains("/orders/") || path.contains("queryByVid"))
        .collect();
    // The order is read once, to see whether it is paid now; nothing else.
    assert_eq!(
        order_calls,
        ["/admin/api/2024-10/orders/6123456789012345.json"],
        "only the order read: {order_calls:?}"
    );
    assert!(shop.create_calls().is_empty(), "no CJ order");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(shop.smtp.messages().is_empty(), "no email");
}

async fn post_woo_order(shop: &Shop, body: &[u8]) -> Value {
    let response = shop
        .server
        .client
        .post(shop.server.url("/hooks/woocommerce/order-created"))
        .header("Content-Type", "application/json")
        .header("X-WC-Webhook-Topic", "order.created")
        .header("X-WC-Webhook-Resource", "order")
        .header("X-WC-Webhook-Event", "created")
        .header("X-WC-Webhook-Delivery-ID", "5521")
        .header(
            "X-WC-Webhook-Signature",
            sign(WOOCOMMERCE_WEBHOOK_SECRET, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .expect("sending the WooCommerce webhook");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.expect("a JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id");
    shop.server.wait_for_run(run_id).await
}

fn woo_fixture() -> Value {
    serde_json::from_slice(&fixture("woocommerce-order-created.json")).expect("fixture JSON")
}

#[tokio::test]
async fn woocommerce_order_creates_cj_order_and_note() {
    let shop = Shop::start().await;
    shop.stock("HL-COB-230", VID_COB, 5);
    shop.woo.state().orders.push(woo_fixture());

    let run = post_woo_order(&shop, &fixture("woocommerce-order-created.json")).await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    let orders = shop.cj_orders();
    assert_eq!(orders.len(), 1, "exactly one CJ order");
    let order = &orders[0];
    assert_eq!(order["orderNumber"], format!("wc-{WOO_ORDER_ID}"));
    assert_eq!(
        order["products"],
        json!([{ "vid": VID_COB, "quantity": 1 }])
    );
    assert_eq!(order["shippingCustomerName"], "Dale O'Brien");
    assert_eq!(order["shippingAddress"], "44 Birch Hollow Rd");
    assert_eq!(order["shippingCity"], "Burlington");
    assert_eq!(order["shippingProvince"], "VT");
    assert_eq!(order["shippingZip"], "05401");
    assert_eq!(order["shippingCountryCode"], "US");
    assert_eq!(order["shippingPhone"], "802-555-0147", "the billing phone");
    assert_eq!(order["email"], "dale.obrien@example.test");

    let cj_order_id = order["orderId"].as_str().expect("a CJ order id");
    let state = shop.woo.state();
    let notes = state.notes_of(WOO_ORDER_ID);
    assert_eq!(notes.len(), 1, "one note: {notes:?}");
    assert_eq!(
        notes[0]["note"],
        format!("Sent to CJ Dropshipping as order {cj_order_id}.")
    );
    assert_eq!(notes[0]["customer_note"], false);
    let stored = state.order(WOO_ORDER_ID).expect("the order");
    assert_eq!(stored["status"], "processing");
    assert!(shop.smtp.messages().is_empty(), "no email on success");
}

#[tokio::test]
async fn woocommerce_failure_holds_order() {
    let shop = Shop::start().await;
    shop.woo.state().orders.push(woo_fixture());

    let run = post_woo_order(&shop, &fixture("woocommerce-order-created.json")).await;

    assert_eq!(run["status"], "failed", "run: {run}");
    assert!(shop.cj_orders().is_empty());
    let state = shop.woo.state();
    let stored = state.order(WOO_ORDER_ID).expect("the order");
    assert_eq!(stored["status"], "on-hold");
    let notes = state.notes_of(WOO_ORDER_ID);
    assert_eq!(notes.len(), 1, "one note: {notes:?}");
    let note = notes[0]["note"].as_str().expect("note text");
    assert!(
        note.contains("no CJ variant for SKU \"HL-COB-230\""),
        "{note}"
    );
    let email = operator_email(&shop);
    assert!(email.contains("WooCommerce order #7315"), "{email}");
    assert!(
        email.contains("no CJ variant for SKU \"HL-COB-230\""),
        "{email}"
    );
}

#[tokio::test]
async fn order_cj_already_has_is_taken_over() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    shop.apis.state().add_shopify_order(shopify_fixture());
    // CJ created the order on an attempt whose response was lost, so the
    // next create is refused for its orderNumber.
    shop.apis.state().cj_orders.push(json!({
        "orderId": "CJ2612049999999999",
        "orderNum": SHOPIFY_ORDER_ID.to_string(),
        "orderNumber": SHOPIFY_ORDER_ID.to_string(),
        "orderStatus": "CREATED",
    }));

    let run = shop.post_fixture_order().await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    assert_eq!(run["output"]["cj_order_id"], "CJ2612049999999999");
    assert_eq!(shop.cj_orders().len(), 1, "no second CJ order");
    let state = shop.apis.state();
    let tags = state.shopify_orders[&SHOPIFY_ORDER_ID]["tags"].clone();
    assert_eq!(tags, "cj-order-CJ2612049999999999");
    drop(state);
    assert!(shop.smtp.messages().is_empty(), "no operator email");
}

#[tokio::test]
async fn unshipped_line_and_no_postcode_pass() {
    let shop = Shop::start().await;
    shop.stock_fixture_order();
    let mut order = shopify_fixture();
    let tip = json!({
        "id": 15001234567890125_u64, "sku": null, "title": "Tip",
        "quantity": 1, "price": "2.00", "requires_shipping": false,
    });
    order["line_items"]
        .as_array_mut()
        .expect("line items")
        .push(tip);
    let address = &mut order["shipping_address"];
    address["city"] = json!("Hong Kong");
    address["country"] = json!("Hong Kong");
    address["country_code"] = json!("HK");
    address["zip"] = Value::Null;
    shop.apis.state().add_shopify_order(order.clone());
    let body = serde_json::to_vec(&order).expect("encoding the order");

    let run = shop.post_shopify_order(&body, "hong-kong-delivery").await;

    assert_eq!(run["status"], "succeeded", "run: {run}");
    let created = shop.cj_orders();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["shippingCountryCode"], "HK");
    let products = created[0]["products"].as_array().expect("products");
    assert_eq!(products.len(), 2, "the tip is not sent: {products:?}");
}

#[tokio::test]
async fn replay_after_mapping_the_sku_forwards_once() {
    let shop = Shop::start().await;
    shop.stock("HL-900-RC", VID_HEADLAMP, 40);
    shop.apis.state().add_shopify_order(shopify_fixture());
    let failed = shop.post_fixture_order().await;
    assert_eq!(failed["status"], "failed", "run: {failed}");

    shop.stock("00123", VID_BATTERY, 40);
    let failed_id = failed["id"].as_str().expect("run id");
    let response = shop
        .server
        .client
        .post(shop.server.url(&format!("/api/runs/{failed_id}/retry")))
        .json(&json!({ "from_start": true }))
        .send()
        .await
        .expect("replaying");
    assert!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await.expect("a JSON answer");
    let replay_id = answer["run_id"].as_str().expect("the replay's run id");
    let replay = shop.server.wait_for_run(replay_id).await;

    assert_eq!(replay["status"], "succeeded", "run: {replay}");
    assert_eq!(shop.cj_orders().len(), 1);
}
