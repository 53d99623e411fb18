//! Checks that signed order webhooks survive SIGKILL of the `tether serve`
//! process while orders arrive. Every acknowledged order must run exactly
//! once, and the supplier must create exactly one order for it.
//!
//! The test starts the real binary over one sled data directory, kills it
//! several times while senders deliver orders, and restarts it on a new port
//! each time. A supplier stand-in inside the test records every call.
//!
//! The engine serves the test-owned `forward-order` workflow from
//! `tests/workflows/`, which sends each order straight to the generic
//! `supplier` connector. The bundled `order-to-supplier` also looks up the
//! catalog and CJ stock, and CJ's connector allows 1 request per second, so
//! 300 orders through it would take minutes instead of seconds.

#![cfg(unix)]

mod common;

use common::process::{LOG_EXCERPT_LINES, Launcher};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

const ORDERS: usize = 300;
const SENDERS: usize = 8;
const KILLS: usize = 10;
/// Id of the first order. It is above 2^53, so an id that passes through an
/// f64 anywhere reaches the supplier with other digits.
const FIRST_ORDER_ID: u64 = (1 << 53) + 1;
const HOOK_PATH: &str = "/hooks/test/forward-order";
const SHOPIFY_SECRET: &str = "shpss_crash_8d41b2";
const SUPPLIER_TOKEN: &str = "sup_tok_crash_5e07";
/// Environment variable that sets the random seed. It repeats the kill
/// thresholds and random delays of an earlier run, but thread and process
/// timing still differ between runs.
const SEED_VARIABLE: &str = "TETHER_CRASH_SEED";

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
const REDELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Odds (1 in N) that a sender delivers an acknowledged order once more, as
/// a webhook source does when a response got lost.
const REDELIVERY_ODDS: u64 = 8;
/// Maximum delay in ms of the supplier stand-in before it responds.
const SUPPLIER_MAX_DELAY_MS: u64 = 20;
/// Maximum engine log lines quoted in one failure message.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_repeated_sigkill() {
    let started = Instant::now();
    let seed = choose_seed();
    println!(
        "crash test seed {seed}; set {SEED_VARIABLE}={seed} to repeat its kill thresholds and delays"
    );
    let mut rng = XorShift::new(seed);

    tether::app::install_tls_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("building the test's HTTP client");

    let supplier = Supplier::start(rng.next()).await;
    let root = TempDir::new().expect("creating a temporary directory");
    let project = build_project(root.path());
    let data = root.path().join("data");
    let launcher = Launcher {
        project,
        data,
        env: vec![
            ("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET.to_string()),
            ("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN.to_string()),
            ("SUPPLIER_BASE_URL", format!("http://{}", supplier.addr)),
        ],
        logs: Arc::default(),
    };
    let orders = Arc::new(build_orders());

    let mut generation = 0;
    let mut engine = launcher.start(generation).await;
    let base_url = Arc::new(RwLock::new(engine.base_url.clone()));
    let deliveries = Arc::new(Mutex::new(Deliveries::new(ORDERS)));

    // In the sending phase, the senders deliver every order while this task
    // kills the engine and restarts it each time the number of acknowledged
    // orders passes a threshold.
    let senders = spawn_senders(
        &client,
        &orders,
        &deliveries,
        &base_url,
        &mut rng,
        Instant::now() + DELIVERY_TIMEOUT,
        REDELIVERY_ODDS,
    );
    let mut kills = 0;
    for threshold in kill_thresholds(&mut rng) {
        let reached = wait_for_acknowledged(&deliveries, threshold, DELIVERY_TIMEOUT).await;
        assert!(
            reached,
            "timed out after {DELIVERY_TIMEOUT:?} waiting for {threshold} acknowledged \
             orders before kill {}, with {} of {ORDERS} acknowledged (seed {seed}); \
             engine log:\n{}",
            kills + 1,
            deliveries.lock().expect("deliveries lock").acknowledged,
            launcher.log_tail(LOG_EXCERPT_LINES),
        );
        tokio::time::sleep(Duration::from_millis(rng.below(15))).await;

        let acknowledged = deliveries.lock().expect("deliveries lock").acknowledged;
        let calls = supplier.total_calls();
        engine.sigkill();
        kills += 1;
        println!("kill {kills}: {acknowledged} orders acknowledged, {calls} supplier calls");

        generation += 1;
        engine = launcher.start(generation).await;
        *base_url.write().expect("base URL lock") = engine.base_url.clone();
    }
    for sender in senders {
        sender.await.expect("a sender task panicked");
    }

    // After the last restart every order is delivered once more, and the
    // engine must respond to each with the run id of its first delivery.
    {
        let mut state = deliveries.lock().expect("deliveries lock");
        state.queue.extend(0..ORDERS);
    }
    let redelivery = spawn_senders(
        &client,
        &orders,
        &deliveries,
        &base_url,
        &mut rng,
        Instant::now() + REDELIVERY_TIMEOUT,
        0,
    );
    for sender in redelivery {
        sender.await.expect("a sender task panicked");
    }

    let (runs, unfinished) = wait_until_settled(&client, &engine.base_url).await;
    let mut details: HashMap<String, Value> = HashMap::new();
    for summary in &runs {
        let id = summary["id"].as_str().unwrap_or_default().to_string();
        let run = get_json(&client, &format!("{}/api/runs/{id}", engine.base_url)).await;
        details.insert(id, run);
    }
    engine.stop();

    let deliveries = deliveries.lock().expect("deliveries lock");
    let supplier_log = supplier.log();
    let total_calls: usize = supplier_log.calls.values().sum();
    let repeated_calls = total_calls - supplier_log.calls.len();
    println!(
        "orders {ORDERS}, kills {kills}, supplier calls {total_calls}, repeated calls \
         {repeated_calls}, failed deliveries {}, {:.1} s, seed {seed}",
        deliveries.failures,
        started.elapsed().as_secs_f64(),
    );
    if !deliveries.http_errors.is_empty() {
        println!(
            "error responses to deliveries: {:?}",
            deliveries.http_errors
        );
    }

    // Every order was acknowledged, and always with one run id.
    let unacknowledged: Vec<String> = (0..ORDERS)
        .filter(|&index| deliveries.acks[index].is_empty())
        .map(|index| {
            let failure = deliveries.last_failure[index].as_deref().unwrap_or("none");
            format!("order {} (last failure: {failure})", orders[index].id)
        })
        .collect();
    assert!(
        unacknowledged.is_empty(),
        "{} of {ORDERS} orders were never acknowledged (seed {seed}): {}",
        unacknowledged.len(),
        excerpt(&unacknowledged),
    );

    let mut run_of_order: Vec<Option<String>> = vec![None; ORDERS];
    let mut split_orders = Vec::new();
    let mut accepted_twice = Vec::new();
    for (index, acks) in deliveries.acks.iter().enumerate() {
        let run_ids: BTreeSet<&str> = acks.iter().map(|ack| ack.run_id.as_str()).collect();
        if run_ids.len() > 1 {
            split_orders.push(format!("order {}: runs {run_ids:?}", orders[index].id));
        }
        let accepted = acks.iter().filter(|ack| ack.status == 202).count();
        if accepted > 1 {
            accepted_twice.push(format!("order {}: {acks:?}", orders[index].id));
        }
        run_of_order[index] = acks.first().map(|ack| ack.run_id.clone());
    }
    assert!(
        split_orders.is_empty(),
        "deliveries of one order were acknowledged with different run ids (seed {seed}): {}",
        excerpt(&split_orders),
    );
    assert!(
        accepted_twice.is_empty(),
        "an order was accepted as new (202) more than once, so its deduplication \
         claim was lost (seed {seed}): {}",
        excerpt(&accepted_twice),
    );

    // Every run finished, succeeded, and there is one run per order.
    let unfinished_lines: Vec<String> = unfinished
        .iter()
        .map(|(run_id, status)| format!("run {run_id}: {status}"))
        .collect();
    assert!(
        unfinished.is_empty(),
        "{} runs were still unfinished {SETTLE_TIMEOUT:?} after the last delivery \
         (seed {seed}): {}\nengine log for the first one:\n{}",
        unfinished.len(),
        excerpt(&unfinished_lines),
        launcher.lines_mentioning(unfinished.first().map(|(run_id, _)| run_id.as_str())),
    );
    let mut not_succeeded = Vec::new();
    let mut first_not_succeeded = None;
    for (index, run_id) in run_of_order.iter().enumerate() {
        let Some(run_id) = run_id else { continue };
        let status = details
            .get(run_id)
            .and_then(|run| run["status"].as_str())
            .unwrap_or("missing from the API");
        if status != "succeeded" {
            let error = details
                .get(run_id)
                .map_or(Value::Null, |run| run["error"].clone());
            not_succeeded.push(format!(
                "order {} run {run_id}: {status}, error {error}",
                orders[index].id
            ));
            first_not_succeeded.get_or_insert(run_id.as_str());
        }
    }
    assert!(
        not_succeeded.is_empty(),
        "{} order runs did not succeed (seed {seed}): {}\nengine log for the first one:\n{}",
        not_succeeded.len(),
        excerpt(&not_succeeded),
        launcher.lines_mentioning(first_not_succeeded),
    );

    let order_runs: BTreeSet<&str> = run_of_order.iter().flatten().map(String::as_str).collect();
    let extra_runs: Vec<String> = details
        .iter()
        .filter(|(id, _)| !order_runs.contains(id.as_str()))
        .map(|(id, run)| {
            format!(
                "run {id} ({}) for webhook id {}",
                run["status"], run["trigger"]["dedup_key"]
            )
        })
        .collect();
    assert_eq!(
        runs.len(),
        ORDERS,
        "the API lists {} runs for {ORDERS} orders (seed {seed}); runs that no \
         acknowledgement named: {}",
        runs.len(),
        excerpt(&extra_runs),
    );

    // The supplier saw one idempotency key per order, the key of its run.
    let mut wrong_keys = Vec::new();
    for (index, order) in orders.iter().enumerate() {
        let Some(run_id) = &run_of_order[index] else {
            continue;
        };
        let expected = format!("{run_id}:place");
        let seen = supplier_log
            .keys_by_reference
            .get(&order.id.to_string())
            .cloned()
            .unwrap_or_default();
        if seen.len() != 1 || !seen.contains(&expected) {
            wrong_keys.push(format!(
                "order {}: expected key {expected}, the supplier saw {seen:?}",
                order.id
            ));
        }
    }
    let known_references: BTreeSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    let unknown_references: Vec<&String> = supplier_log
        .keys_by_reference
        .keys()
        .filter(|reference| !known_references.contains(*reference))
        .collect();
    assert!(
        wrong_keys.is_empty(),
        "{} orders did not reach the supplier under exactly the key `<run id>:place` \
         (seed {seed}): {}\nreferences the supplier saw that match no order: {unknown_references:?}",
        wrong_keys.len(),
        excerpt(&wrong_keys),
    );
    assert_eq!(
        supplier_log.responses.len(),
        ORDERS,
        "the supplier created {} supplier orders for {ORDERS} orders (seed {seed})",
        supplier_log.responses.len(),
    );

    // An attempt is journaled before each call, so calls never outnumber
    // the attempts recorded on the `place` step.
    let mut unjournaled_calls = Vec::new();
    let mut first_unjournaled = None;
    for (key, &calls) in &supplier_log.calls {
        let run_id = key.strip_suffix(":place").unwrap_or(key);
        let attempts = details
            .get(run_id)
            .and_then(|run| run["steps"].as_array())
            .and_then(|steps| steps.iter().find(|step| step["id"] == "place"))
            .and_then(|step| step["attempts"].as_array())
            .map_or(0, Vec::len);
        if calls > attempts {
            unjournaled_calls.push(format!("key {key}: {calls} calls, {attempts} attempts"));
            first_unjournaled.get_or_insert(run_id);
        }
    }
    assert!(
        unjournaled_calls.is_empty(),
        "the supplier got more calls than the journal has attempts (seed {seed}): {}\n\
         engine log for the first one:\n{}",
        excerpt(&unjournaled_calls),
        launcher.lines_mentioning(first_unjournaled),
    );
    assert!(
        supplier_log.malformed.is_empty(),
        "the supplier got requests the connector should never send (seed {seed}): {}",
        excerpt(&supplier_log.malformed),
    );
}

/// An xorshift64 random generator, good enough for delays and kill moments
/// and repeatable from a printed seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // A zero state would only ever produce zeros.
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Returns a number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn choose_seed() -> u64 {
    if let Ok(text) = std::env::var(SEED_VARIABLE) {
        return text
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VARIABLE}={text} is not a valid u64 seed"));
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
}

/// Picks one acknowledged-order count per kill, each in its own slot of
/// 5 % to 85 % of the orders, so kills are spread over the sending phase.
fn kill_thresholds(rng: &mut XorShift) -> Vec<usize> {
    let first = ORDERS * 5 / 100;
    let last = ORDERS * 85 / 100;
    let width = (last - first) / KILLS;
    (0..KILLS)
        .map(|slot| first + slot * width + rng.below(width as u64) as usize)
        .collect()
}

/// Copies the test-owned order workflow and the supplier connector into
/// `root/project` and returns that directory.
fn build_project(root: &Path) -> PathBuf {
    let project = root.join("project");
    for (source_folder, folder, file) in [
        ("tests/workflows", "workflows", "forward-order.yaml"),
        ("connectors", "connectors", "supplier.yaml"),
    ] {
        let target = project.join(folder);
        std::fs::create_dir_all(&target).expect("creating a project folder");
        let source = common::repo_root().join(source_folder).join(file);
        std::fs::copy(&source, target.join(file))
            .unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
    }
    project
}

/// One order webhook, ready to send byte for byte.
struct Order {
    id: u64,
    webhook_id: String,
    body: Vec<u8>,
    signature: String,
}

/// Builds `ORDERS` signed copies of the fixture order, each with its own
/// order id, name and webhook id.
fn build_orders() -> Vec<Order> {
    let fixture: Value = serde_json::from_slice(&common::fixture("shopify-orders-create.json"))
        .expect("the order fixture is JSON");
    (0..ORDERS)
        .map(|index| {
            let id = FIRST_ORDER_ID + index as u64;
            let number = 5000 + index;
            let mut order = fixture.clone();
            order["id"] = json!(id);
            order["admin_graphql_api_id"] = json!(format!("gid://shopify/Order/{id}"));
            order["name"] = json!(format!("#{number}"));
            order["order_number"] = json!(number);
            let body = serde_json::to_vec(&order).expect("encoding an order");
            let signature = sign(&body);
            Order {
                id,
                webhook_id: format!("crash-delivery-{index:04}"),
                body,
                signature,
            }
        })
        .collect()
}

/// Returns the base64 HMAC-SHA256 of `body`, as Shopify signs webhooks.
fn sign(body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SHOPIFY_SECRET.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What the supplier stand-in received.
#[derive(Default)]
struct SupplierLog {
    /// Calls per `Idempotency-Key`.
    calls: HashMap<String, usize>,
    /// First response body per key. A repeated key gets the same body again,
    /// so the number of entries is the number of supplier orders created.
    responses: HashMap<String, Value>,
    /// Keys received per order reference, the reference as JSON text.
    keys_by_reference: BTreeMap<String, BTreeSet<String>>,
    /// Requests with a wrong bearer token, no key or a body that is not JSON.
    malformed: Vec<String>,
}

struct SupplierState {
    log: Mutex<SupplierLog>,
    rng: Mutex<XorShift>,
}

/// An HTTP server on 127.0.0.1 with the supplier's `POST /v1/orders`.
struct Supplier {
    addr: SocketAddr,
    state: Arc<SupplierState>,
}

impl Supplier {
    async fn start(seed: u64) -> Self {
        let state = Arc::new(SupplierState {
            log: Mutex::default(),
            rng: Mutex::new(XorShift::new(seed)),
        });
        let app = axum::Router::new()
            .route("/v1/orders", axum::routing::post(create_supplier_order))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the supplier stand-in to 127.0.0.1:0");
        let addr = listener.local_addr().expect("supplier address");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serving the supplier stand-in");
        });
        Supplier { addr, state }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, SupplierLog> {
        self.state.log.lock().expect("supplier log lock")
    }

    fn total_calls(&self) -> usize {
        self.log().calls.values().sum()
    }
}

/// Records the call, then responds after a random delay of up to
/// `SUPPLIER_MAX_DELAY_MS`, so kills sometimes land while the engine waits.
async fn create_supplier_order(
    State(state): State<Arc<SupplierState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("idempotency-key").map(str::to_owned);
    let authorized = header("authorization") == Some(&format!("Bearer {SUPPLIER_TOKEN}"));
    let order: Option<Value> = serde_json::from_slice(&body).ok();

    let response = {
        let mut log = state.log.lock().expect("supplier log lock");
        let (Some(key), Some(order), true) = (key, order, authorized) else {
            let text = String::from_utf8_lossy(&body).into_owned();
            log.malformed.push(format!(
                "authorized {authorized}, headers {headers:?}, body {text}"
            ));
            let error = json!({"code": 400, "result": false, "message": "invalid request"});
            return (StatusCode::BAD_REQUEST, axum::Json(error));
        };
        *log.calls.entry(key.clone()).or_default() += 1;
        log.keys_by_reference
            .entry(order["reference"].to_string())
            .or_default()
            .insert(key.clone());
        let number = log.responses.len() + 1;
        log.responses
            .entry(key)
            .or_insert_with(|| {
                json!({
                    "code": 200, "result": true, "message": "Success",
                    "data": { "orderId": format!("SO-{number}"), "status": "CREATED" }
                })
            })
            .clone()
    };
    let delay = state
        .rng
        .lock()
        .expect("supplier random lock")
        .below(SUPPLIER_MAX_DELAY_MS + 1);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    (StatusCode::OK, axum::Json(response))
}

/// Status (202 or 200) and run id of an acknowledged delivery.
#[derive(Debug, Clone)]
struct Ack {
    status: u16,
    run_id: String,
}

/// Delivery state that the senders share.
struct Deliveries {
    /// Indexes of orders waiting to be sent.
    queue: VecDeque<usize>,
    /// Orders taken from the queue whose request has not ended.
    in_flight: usize,
    /// Acknowledgements per order, in the order they arrived.
    acks: Vec<Vec<Ack>>,
    /// Number of orders with at least one acknowledgement.
    acknowledged: usize,
    /// Whether an order was already queued again after its acknowledgement.
    redelivered: Vec<bool>,
    /// The last failure per order, for failure messages.
    last_failure: Vec<Option<String>>,
    /// Deliveries that ended without an acknowledgement.
    failures: usize,
    /// Error responses (status and body) with their counts.
    http_errors: BTreeMap<String, usize>,
}

impl Deliveries {
    fn new(orders: usize) -> Self {
        Deliveries {
            queue: (0..orders).collect(),
            in_flight: 0,
            acks: vec![Vec::new(); orders],
            acknowledged: 0,
            redelivered: vec![false; orders],
            last_failure: vec![None; orders],
            failures: 0,
            http_errors: BTreeMap::new(),
        }
    }
}

/// Why a delivery was not acknowledged.
enum DeliveryError {
    /// No HTTP response arrived, for example because the engine was down.
    Transport(String),
    /// A response other than 202 or 200 with a run id.
    Response(String),
}

/// Spawns `SENDERS` tasks that deliver queued orders until the queue is
/// empty and no request is in flight, or until `deadline`.
fn spawn_senders(
    client: &reqwest::Client,
    orders: &Arc<Vec<Order>>,
    deliveries: &Arc<Mutex<Deliveries>>,
    base_url: &Arc<RwLock<String>>,
    rng: &mut XorShift,
    deadline: Instant,
    redelivery_odds: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..SENDERS)
        .map(|_| {
            let sender = Sender {
                client: client.clone(),
                orders: Arc::clone(orders),
                deliveries: Arc::clone(deliveries),
                base_url: Arc::clone(base_url),
                rng: XorShift::new(rng.next()),
                deadline,
                redelivery_odds,
            };
            tokio::spawn(sender.run())
        })
        .collect()
}

struct Sender {
    client: reqwest::Client,
    orders: Arc<Vec<Order>>,
    deliveries: Arc<Mutex<Deliveries>>,
    base_url: Arc<RwLock<String>>,
    rng: XorShift,
    deadline: Instant,
    /// After an acknowledgement, the order is queued once more with odds 1
    /// in this number. Zero turns redelivery off.
    redelivery_odds: u64,
}

impl Sender {
    async fn run(mut self) {
        while Instant::now() < self.deadline {
            let next = {
                let mut state = self.deliveries.lock().expect("deliveries lock");
                match state.queue.pop_front() {
                    Some(index) => {
                        state.in_flight += 1;
                        Some(index)
                    }
                    None if state.in_flight == 0 => return,
                    None => None,
                }
            };
            let Some(index) = next else {
                // Another sender may put a failed order back.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };

            let base_url = self.base_url.read().expect("base URL lock").clone();
            let outcome = deliver(&self.client, &base_url, &self.orders[index]).await;
            let failed = {
                let mut state = self.deliveries.lock().expect("deliveries lock");
                state.in_flight -= 1;
                match outcome {
                    Ok(ack) => {
                        if state.acks[index].is_empty() {
                            state.acknowledged += 1;
                        }
                        state.acks[index].push(ack);
                        if self.redelivery_odds > 0
                            && !state.redelivered[index]
                            && self.rng.below(self.redelivery_odds) == 0
                        {
                            state.redelivered[index] = true;
                            state.queue.push_back(index);
                        }
                        false
                    }
                    Err(error) => {
                        let message = match error {
                            DeliveryError::Transport(message) => message,
                            DeliveryError::Response(message) => {
                                *state.http_errors.entry(message.clone()).or_default() += 1;
                                message
                            }
                        };
                        state.failures += 1;
                        state.last_failure[index] = Some(message);
                        // A webhook source re-sends a failed delivery with
                        // the same webhook id, so the order goes back in the
                        // queue.
                        state.queue.push_back(index);
                        true
                    }
                }
            };
            if failed {
                // The engine is probably down, so wait for the restart.
                let pause = 20 + self.rng.below(30);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

/// Sends one order webhook and returns its acknowledgement.
async fn deliver(
    client: &reqwest::Client,
    base_url: &str,
    order: &Order,
) -> Result<Ack, DeliveryError> {
    let response = client
        .post(format!("{base_url}{HOOK_PATH}"))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", "orders/create")
        .header("X-Shopify-Shop-Domain", "lumen-trail.myshopify.com")
        .header("X-Shopify-Webhook-Id", &order.webhook_id)
        .header("X-Shopify-Hmac-Sha256", &order.signature)
        .body(order.body.clone())
        .send()
        .await
        .map_err(|error| DeliveryError::Transport(format!("request failed: {error}")))?;
    let status = response.status();
    let text = response.text().await.map_err(|error| {
        DeliveryError::Transport(format!("reading the {status} response failed: {error}"))
    })?;
    if status != StatusCode::ACCEPTED && status != StatusCode::OK {
        return Err(DeliveryError::Response(format!("{status}: {text}")));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let Some(run_id) = body["run_id"].as_str() else {
        return Err(DeliveryError::Response(format!(
            "{status} without a run_id: {text}"
        )));
    };
    Ok(Ack {
        status: status.as_u16(),
        run_id: run_id.to_owned(),
    })
}

/// Waits until `threshold` orders are acknowledged. Returns false on timeout.
async fn wait_for_acknowledged(
    deliveries: &Mutex<Deliveries>,
    threshold: usize,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if deliveries.lock().expect("deliveries lock").acknowledged >= threshold {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Polls the run list until no run is queued, running or waiting. Returns
/// all run summaries and, on timeout, the unfinished ones as
/// `(run id, status)`.
async fn wait_until_settled(
    client: &reqwest::Client,
    base_url: &str,
) -> (Vec<Value>, Vec<(String, String)>) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let runs = list_all_runs(client, base_url).await;
        let unfinished: Vec<(String, String)> = runs
            .iter()
            .filter(|run| {
                matches!(
                    run["status"].as_str(),
                    Some("queued" | "running" | "waiting")
                )
            })
            .map(|run| {
                let id = run["id"].as_str().unwrap_or_default().to_owned();
                (id, run["status"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        if unfinished.is_empty() || Instant::now() >= deadline {
            return (runs, unfinished);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every page of `GET /api/runs`.
async fn list_all_runs(client: &reqwest::Client, base_url: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("{base_url}/api/runs?limit=500");
        if let Some(before) = &before {
            url.push_str(&format!("&before={before}"));
        }
        let page = get_json(client, &url).await;
        let entries = page["runs"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {url} returned no `runs` list: {page}"));
        runs.extend(entries.iter().cloned());
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return runs,
        }
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    let status = response.status();
    assert_eq!(status, StatusCode::OK, "GET {url} returned {status}");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url} returned invalid JSON: {e}"))
}

/// Joins the first lines of a list of problems for a failure message.
fn excerpt(lines: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = lines
        .iter()
        .take(SHOWN)
        .map(|line| format!("\n  {line}"))
        .collect::<String>();
    if lines.len() > SHOWN {
        text.push_str(&format!("\n  and {} more", lines.len() - SHOWN));
    }
    text
}
