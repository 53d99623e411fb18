//! The bundled `tracking-to-customer` workflow against the Shopify and CJ
//! stand-in and a real SMTP conversation: a CJ order that ships makes one
//! Shopify fulfillment and one customer email, and neither repeats on the
//! next poll, an operator retry or a replay.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

const WORKFLOW: &str = "tracking-to-customer";
const ORDER_LIST: &str = "/api2.0/v1/shopping/order/list";
const FULFILLMENTS: &str = "/admin/api/2024-10/fulfillments.json";
const ORDER_ID: u64 = 6_123_456_789_012_345;
const CJ_ORDER_ID: &str = "CJ2612040000000001";
const TRACKING_NUMBER: &str = "YT2412345678901234";
const CUSTOMER: &str = "mira.kovac@example.test";
/// Time any condition below gets before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

struct Shop {
    apis: ShopApis,
    smtp: SmtpServer,
    server: TestServer,
}

impl Shop {
    /// Starts the stand-in, an SMTP server and the engine, with the Shopify
    /// fixture order placed at CJ and not shipped yet. The bundled poll runs
    /// every 300 ms here instead of every 15 minutes.
    async fn start(smtp_rejections: usize) -> Self {
        let apis = ShopApis::start().await;
        let (smtp, port) =
            SmtpServer::start_rejecting(smtp_rejections, "550 mailbox unavailable").await;
        let project = Project::bundled();
        let file = project.path().join("workflows/tracking-to-customer.yaml");
        let text = std::fs::read_to_string(&file).expect("reading the bundled workflow");
        assert!(text.contains("every: 15m"), "the poll interval moved");
        std::fs::write(&file, text.replace("every: 15m", "every: 300ms"))
            .expect("writing the workflow");
        {
            let mut state = apis.state();
            let order: Value = serde_json::from_slice(&fixture("shopify-orders-create.json"))
                .expect("the fixture is JSON");
            state.add_shopify_order(order);
            state.cj_orders.push(json!({
                "orderId": CJ_ORDER_ID,
                "orderNum": ORDER_ID.to_string(),
                "cjOrderId": CJ_ORDER_ID,
                "orderStatus": "UNSHIPPED",
                "logisticName": "YunExpress",
                "trackNumber": null,
            }));
        }
        let server = TestServer::start(&project, with_smtp(apis.env(), port)).await;
        let shop = Shop { apis, smtp, server };
        // The first poll marks what is there as seen; shipping starts after
        // it so that the shipment is new to the poll.
        shop.wait_for_polls(2).await;
        shop
    }

    fn ship(&self) {
        let mut state = self.apis.state();
        let order = &mut state.cj_orders[0];
        order["orderStatus"] = json!("SHIPPED");
        order["trackNumber"] = json!(TRACKING_NUMBER);
    }

    fn polls(&self) -> usize {
        self.apis.calls("GET", ORDER_LIST).len()
    }

    /// Waits until `more` order list requests arrived after this call.
    async fn wait_for_polls(&self, more: usize) {
        let target = self.polls() + more;
        let deadline = Instant::now() + DEADLINE;
        while self.polls() < target {
            assert!(Instant::now() < deadline, "the poll stopped asking CJ");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn runs(&self) -> Vec<Value> {
        let page = self
            .server
            .get_json(&format!("/api/runs?workflow={WORKFLOW}"))
            .await;
        page["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the poll's first run and returns it finished.
    async fn first_run(&self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(run) = self.runs().await.first() {
                let id = run["id"].as_str().expect("a run id").to_string();
                return self.server.wait_for_run(&id).await;
            }
            assert!(Instant::now() < deadline, "the shipment started no run");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn retry(&self, run_id: &str, body: Value) -> Value {
        let response = self
            .server
            .client
            .post(self.server.url(&format!("/api/runs/{run_id}/retry")))
            .json(&body)
            .send()
            .await
            .expect("POST retry");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let answer: Value = response.json().await.expect("a JSON answer");
        let id = answer["run_id"].as_str().expect("a run id").to_string();
        // Both a retried and a replayed run are queued before the response.
        self.server.wait_for_run(&id).await
    }

    /// Accepted messages sent to the customer.
    fn customer_mail(&self) -> Vec<String> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|message| message.contains(&format!("To: {CUSTOMER}")))
            .collect()
    }
}

#[tokio::test]
async fn shipment_fulfils_and_emails_once() {
    let shop = Shop::start(0).await;
    shop.ship();

    let run = shop.first_run().await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["fulfillment"], "created");
    assert_eq!(run["output"]["email"], "sent");
    let fulfillments = shop.apis.state().shopify_fulfillments.clone();
    assert_eq!(fulfillments.len(), 1, "{fulfillments:?}");
    assert_eq!(fulfillments[0]["order_id"], json!(ORDER_ID));
    assert_eq!(fulfillments[0]["tracking_number"], TRACKING_NUMBER);
    assert_eq!(fulfillments[0]["tracking_company"], "YunExpress");
    assert_eq!(
        fulfillments[0]["tracking_url"],
        format!("https://www.yuntrack.com/parcelTracking?id={TRACKING_NUMBER}")
    );
    assert_eq!(fulfillments[0]["notify_customer"], false);
    let request = shop.apis.calls("POST", FULFILLMENTS)[0].json();
    assert_eq!(
        request["fulfillment"]["line_items_by_fulfillment_order"][0]["fulfillment_order_id"],
        json!(fulfillment_order_id(ORDER_ID))
    );

    let mail = shop.customer_mail();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].contains("Subject: Your order #1042 has shipped"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains(TRACKING_NUMBER), "{}", mail[0]);
    assert!(mail[0].contains("YunExpress"), "{}", mail[0]);

    // Later polls still list the shipped order, and start nothing new.
    shop.wait_for_polls(2).await;
    assert_eq!(shop.runs().await.len(), 1);
    assert_eq!(shop.apis.calls("POST", FULFILLMENTS).len(), 1);
    assert_eq!(shop.customer_mail().len(), 1);
}

#[tokio::test]
async fn retry_and_replay_send_nothing_twice() {
    // The SMTP server refuses the first message for good, so the run fails
    // after the fulfillment exists.
    let shop = Shop::start(1).await;
    shop.ship();

    let failed = shop.first_run().await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap_or("").contains("550"),
        "{failed}"
    );
    assert_eq!(shop.apis.state().shopify_fulfillments.len(), 1);
    assert!(shop.customer_mail().is_empty());
    let run_id = failed["id"].as_str().expect("a run id").to_string();

    let retried = shop.retry(&run_id, json!({})).await;
    assert_eq!(retried["status"], "succeeded", "{retried}");
    assert_eq!(retried["output"]["fulfillment"], "created");
    assert_eq!(retried["output"]["email"], "sent");
    assert_eq!(shop.customer_mail().len(), 1);
    assert_eq!(shop.apis.calls("POST", FULFILLMENTS).len(), 1);

    let replayed = shop.retry(&run_id, json!({ "from_start": true })).await;
    assert_eq!(replayed["status"], "succeeded", "{replayed}");
    assert_eq!(replayed["replay_of"], run_id.as_str());
    assert_eq!(replayed["output"]["fulfillment"], "existed");
    assert_eq!(replayed["output"]["email"], "sent before");
    assert_eq!(shop.customer_mail().len(), 1);
    assert_eq!(shop.apis.calls("POST", FULFILLMENTS).len(), 1);
    assert_eq!(shop.apis.state().shopify_fulfillments.len(), 1);
}

#[tokio::test]
async fn refused_repeat_fulfillment_counts_as_done() {
    let shop = Shop::start(0).await;
    // An earlier attempt fulfilled the order, but the first read still
    // shows the fulfillment order open, as it would after a lost response.
    let closed = fulfillment_order_id(ORDER_ID);
    shop.apis.state().closed_fulfillment_orders.push(closed);
    let stale = Arc::new(AtomicBool::new(true));
    shop.apis.set_fault(Some(Arc::new(move |request: &Recorded| {
        let listing = format!("/admin/api/2024-10/orders/{ORDER_ID}/fulfillment_orders.json");
        if request.path != listing || !stale.swap(false, Ordering::SeqCst) {
            return None;
        }
        Some(Answer::json(
            StatusCode::OK,
            json!({ "fulfillment_orders": [{ "id": closed, "order_id": ORDER_ID, "status": "open", "line_items": [] }] }),
        ))
    })));
    shop.ship();

    let run = shop.first_run().await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["fulfillment"], "existed");
    assert_eq!(run["output"]["email"], "sent");
    let attempts = shop.apis.calls("POST", FULFILLMENTS);
    assert_eq!(attempts.len(), 1, "a 422 is not worth a retry");
    assert!(shop.apis.state().shopify_fulfillments.is_empty());
    assert_eq!(shop.customer_mail().len(), 1);
}

#[tokio::test]
async fn unknown_carrier_links_universal_tracking() {
    let shop = Shop::start(0).await;
    shop.apis.state().cj_orders[0]["logisticName"] = json!("CJPacket Ordinary");
    shop.ship();

    let run = shop.first_run().await;

    assert_eq!(run["status"], "succeeded", "{run}");
    let fulfillments = shop.apis.state().shopify_fulfillments.clone();
    assert_eq!(fulfillments[0]["tracking_company"], "CJPacket Ordinary");
    assert_eq!(
        fulfillments[0]["tracking_url"],
        format!("https://t.17track.net/en#nums={TRACKING_NUMBER}")
    );
}

#[tokio::test]
async fn grouped_tracking_number_loses_spaces() {
    let shop = Shop::start(0).await;
    {
        let mut state = shop.apis.state();
        let order = &mut state.cj_orders[0];
        order["orderStatus"] = json!("SHIPPED");
        order["trackNumber"] = json!("YT24 1234 5678 9012 34");
    }

    let run = shop.first_run().await;

    assert_eq!(run["status"], "succeeded", "{run}");
    let fulfillments = shop.apis.state().shopify_fulfillments.clone();
    assert_eq!(fulfillments[0]["tracking_number"], TRACKING_NUMBER);
}

#[tokio::test]
async fn woocommerce_shipment_is_skipped() {
    let shop = Shop::start(0).await;
    {
        let mut state = shop.apis.state();
        let order = &mut state.cj_orders[0];
        order["orderNum"] = json!("wc-7315");
        order["orderStatus"] = json!("SHIPPED");
        order["trackNumber"] = json!(TRACKING_NUMBER);
    }

    let run = shop.first_run().await;

    assert_eq!(run["status"], "skipped", "{run}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("WooCommerce order wc-7315"), "{reason}");
    assert!(shop.apis.state().shopify_fulfillments.is_empty());
    assert!(shop.smtp.messages().is_empty(), "no email");
}
