//! Poll triggers against a paged order list served on 127.0.0.1: the first
//! poll marks present items seen, `backfill` starts runs for them, and a
//! SIGKILL in the middle of a page neither loses nor doubles an item.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::process::{LOG_EXCERPT_LINES, Launcher};
use common::*;
use serde_json::{Value, json};

/// Orders on one page of the stand-in's list.
const PAGE_SIZE: usize = 30;
/// Time any condition below gets before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

const CONNECTOR: &str = r#"name: catalog
config:
  base_url: { env: CATALOG_BASE_URL, default: "http://127.0.0.1:9401" }
response:
  output: "${{ response.body }}"
operations:
  list_orders:
    method: GET
    path: "/v1/orders/page/${{ input.page }}"
"#;

fn workflow(backfill: bool) -> String {
    format!(
        r#"name: new-orders
trigger:
  poll:
    uses: catalog.list_orders
    with: {{ page: 1 }}
    every: 100ms
    items: "${{{{ response.orders }}}}"
    key: "${{{{ item.id }}}}"
    next: "${{{{ response.next }}}}"
    backfill: {backfill}
steps:
  - id: record
    script: trigger.item.id
"#
    )
}

/// A paged order list: `GET /v1/orders/page/N` returns orders
/// `(N-1)*PAGE_SIZE..N*PAGE_SIZE` and `next: {"page": N+1}` until the last.
struct OrderList {
    orders: Arc<Mutex<Vec<Value>>>,
    server: Supplier,
}

impl OrderList {
    async fn start(count: usize) -> Self {
        let orders: Arc<Mutex<Vec<Value>>> = Arc::default();
        let list = OrderList {
            server: Supplier::start(Arc::new({
                let orders = Arc::clone(&orders);
                move |request, _| page_answer(&orders.lock().expect("orders lock"), &request.path)
            }))
            .await,
            orders,
        };
        list.add(count);
        list
    }

    /// Appends `count` orders with the next ids, as strings such as `1007`.
    fn add(&self, count: usize) {
        let mut orders = self.orders.lock().expect("orders lock");
        let first = orders.len();
        for index in first..first + count {
            orders.push(json!({ "id": format!("{}", 1000 + index), "total": "24.94" }));
        }
    }

    fn requests(&self) -> usize {
        self.server.received().len()
    }

    /// Waits until `count` more requests arrive than now, so at least one
    /// whole poll ran in between.
    async fn wait_for_requests(&self, count: usize) {
        let target = self.requests() + count;
        let start = Instant::now();
        while self.requests() < target {
            assert!(start.elapsed() < DEADLINE, "the poll stopped calling");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn page_answer(orders: &[Value], path: &str) -> Answer {
    let Some(page) = path
        .strip_prefix("/v1/orders/page/")
        .and_then(|page| page.parse::<usize>().ok())
        .filter(|page| *page >= 1)
    else {
        return Answer::json(StatusCode::NOT_FOUND, json!({ "error": path }));
    };
    let start = ((page - 1) * PAGE_SIZE).min(orders.len());
    let end = (page * PAGE_SIZE).min(orders.len());
    let next = if end < orders.len() {
        json!({ "page": page + 1 })
    } else {
        Value::Null
    };
    Answer::json(
        StatusCode::OK,
        json!({ "orders": orders[start..end], "next": next }),
    )
}

fn project(backfill: bool) -> Project {
    let project = Project::bundled();
    project.add_workflow("new-orders.yaml", &workflow(backfill));
    let connector = project.path().join("connectors/catalog.yaml");
    std::fs::write(connector, CONNECTOR).expect("writing the connector");
    project
}

/// Ids of every run of `new-orders`, following `next_before` pages.
async fn run_ids(client: &reqwest::Client, base_url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before = String::new();
    loop {
        let url = format!("{base_url}/api/runs?workflow=new-orders&limit=100{before}");
        let page: Value = client
            .get(url)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        for run in page["runs"].as_array().expect("runs list") {
            ids.push(run["id"].as_str().expect("run id").to_string());
        }
        match page["next_before"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => return ids,
        }
    }
}

async fn wait_for_run_count(client: &reqwest::Client, base_url: &str, count: usize) -> usize {
    let start = Instant::now();
    loop {
        let found = run_ids(client, base_url).await.len();
        if found >= count || start.elapsed() > DEADLINE {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Collects the order id each run carries as `trigger.item.id`.
async fn item_keys(client: &reqwest::Client, base_url: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for id in run_ids(client, base_url).await {
        let url = format!("{base_url}/api/runs/{id}");
        let run: Value = client
            .get(url)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        let key = run["trigger"]["item"]["id"]
            .as_str()
            .expect("trigger.item.id");
        keys.push(key.to_string());
    }
    keys
}

async fn start_server(list: &OrderList, project: &Project) -> TestServer {
    let supplier = Supplier::accepting().await;
    let env = shop_env(&supplier).with("CATALOG_BASE_URL", &list.server.url());
    TestServer::start(project, env).await
}

#[tokio::test]
async fn first_poll_marks_items_seen() {
    let list = OrderList::start(5).await;
    let project = project(false);
    let server = start_server(&list, &project).await;
    let base_url = server.url("");
    // Two requests mean the first poll ended and the second began.
    list.wait_for_requests(2).await;

    list.add(2);
    let found = wait_for_run_count(&server.client, &base_url, 2).await;
    assert_eq!(found, 2);
    list.wait_for_requests(2).await;

    let keys = item_keys(&server.client, &base_url).await;
    assert_eq!(keys.len(), 2, "keys: {keys:?}");
    let keys: BTreeSet<String> = keys.into_iter().collect();
    let expected: BTreeSet<String> = ["1005", "1006"].map(String::from).into();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn backfill_starts_runs_for_present_items() {
    let list = OrderList::start(45).await;
    let project = project(true);
    let server = start_server(&list, &project).await;
    let base_url = server.url("");

    let found = wait_for_run_count(&server.client, &base_url, 45).await;
    assert_eq!(found, 45);
    list.wait_for_requests(4).await;

    let keys = item_keys(&server.client, &base_url).await;
    assert_eq!(keys.len(), 45);
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 45);
}

/// Orders in the crash test: ten pages.
const CRASH_ORDERS: usize = 300;

#[tokio::test]
async fn sigkill_mid_page_keeps_one_run_per_item() {
    tether::app::install_tls_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building the HTTP client");
    let list = OrderList::start(CRASH_ORDERS).await;
    let project = project(true);
    let data = tempfile::TempDir::new().expect("creating the data directory");
    let launcher = launcher(project.path(), data.path(), &list);

    let mut engine = launcher.start(0).await;
    // Pages hold 30 orders, so 75 runs is halfway through the third page.
    let before_kill = wait_for_run_count(&client, &engine.base_url, 75).await;
    engine.sigkill();
    println!("killed with {before_kill} runs stored");
    assert!(
        before_kill >= 75,
        "log:\n{}",
        launcher.log_tail(LOG_EXCERPT_LINES)
    );

    let engine = launcher.start(1).await;
    let found = wait_for_run_count(&client, &engine.base_url, CRASH_ORDERS).await;
    assert_eq!(
        found,
        CRASH_ORDERS,
        "log:\n{}",
        launcher.log_tail(LOG_EXCERPT_LINES)
    );
    list.wait_for_requests(2 * CRASH_ORDERS / PAGE_SIZE).await;

    let keys = item_keys(&client, &engine.base_url).await;
    assert_eq!(keys.len(), CRASH_ORDERS, "a run was doubled or lost");
    let keys: BTreeSet<String> = keys.into_iter().collect();
    let expected: BTreeSet<String> = (0..CRASH_ORDERS).map(|i| format!("{}", 1000 + i)).collect();
    assert_eq!(keys, expected);
    engine.stop();
}

fn launcher(project: &Path, data: &Path, list: &OrderList) -> Launcher {
    Launcher {
        project: project.to_path_buf(),
        data: data.to_path_buf(),
        env: vec![
            ("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET.to_string()),
            ("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN.to_string()),
            ("SUPPLIER_BASE_URL", "http://127.0.0.1:9".to_string()),
            ("CATALOG_BASE_URL", list.server.url()),
        ],
        logs: Arc::default(),
    }
}
