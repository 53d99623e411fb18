//! One HTTP server on 127.0.0.1 that serves the shop's two APIs from
//! shared state: the Shopify Admin REST API 2024-10 and CJ Dropshipping's
//! API 2.0. Tests seed the state (a catalog, stock levels, a store order),
//! run a workflow, and look at what changed and which requests arrived.
//!
//! The responses follow the public documentation: Shopify's JSON roots
//! (`{"product": …}`), ids as numbers, 201 on creation, 404 `{"errors": …}`,
//! 422 for a fulfillment order that is already closed, the call-limit
//! header; CJ's envelope `{code, result, message, data, requestId}` with
//! HTTP 200 even for errors, and the `CJ-Access-Token` header.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tether::workflow::Env;

use super::{Answer, Recorded, Supplier, shop_env};

/// The Shopify location whose inventory the shop workflows set.
pub const SHOP_LOCATION_ID: u64 = 655_441_491;

/// The access token the CJ stand-in issues.
pub const CJ_ACCESS_TOKEN: &str = "cj-access-3f9a";

const SHOPIFY_PREFIX: &str = "/admin/api/2024-10/";
const CJ_PREFIX: &str = "/api2.0/v1/";
const SUPPLIER_STOCK_PREFIX: &str = "/v1/stock/";

/// Picks the response to one request before the routes do. `None` leaves
/// the request to the routes.
pub type Fault = Arc<dyn Fn(&Recorded) -> Option<Answer> + Send + Sync>;

/// What both APIs hold. Tests read and change it through
/// [`ShopApis::state`].
#[derive(Default)]
pub struct ShopState {
    /// Items of CJ's product list, in the shape of
    /// `supplier-products-page1.json`.
    pub cj_products: Vec<Value>,
    /// Stock per CJ variant id.
    pub cj_stock: HashMap<String, i64>,
    /// Orders created through `createOrderV2`. Set `trackNumber`,
    /// `logisticName` and `orderStatus` on one to ship it.
    pub cj_orders: Vec<Value>,
    pub cj_tokens_issued: usize,
    /// Products by id, each with `variants` carrying `id`, `sku`, `price`,
    /// `barcode` and `inventory_item_id`.
    pub shopify_products: BTreeMap<u64, Value>,
    /// Available quantity per inventory item at [`SHOP_LOCATION_ID`].
    pub shopify_inventory: HashMap<u64, i64>,
    /// Orders by id. Each has one fulfillment order, with the id
    /// [`fulfillment_order_id`] gives, open until a fulfillment closes it.
    pub shopify_orders: BTreeMap<u64, Value>,
    pub shopify_fulfillments: Vec<Value>,
    /// Stock per SKU at the generic supplier (`connectors/supplier.yaml`),
    /// served at `GET /v1/stock/{sku}`.
    pub supplier_stock: HashMap<String, i64>,
    /// Fulfillment orders already fulfilled.
    pub closed_fulfillment_orders: Vec<u64>,
    next_id: u64,
}

impl ShopState {
    fn new_id(&mut self, base: u64) -> u64 {
        self.next_id += 1;
        base + self.next_id
    }

    /// Adds a store order, such as the body of the Shopify fixture.
    pub fn add_shopify_order(&mut self, order: Value) {
        let id = order["id"]
            .as_u64()
            .expect("a Shopify order has a numeric id");
        self.shopify_orders.insert(id, order);
    }

    /// Finds the product whose variant has `sku`.
    pub fn shopify_product_by_sku(&self, sku: &str) -> Option<&Value> {
        self.shopify_products.values().find(|product| {
            product["variants"]
                .as_array()
                .is_some_and(|variants| variants.iter().any(|v| v["sku"] == sku))
        })
    }

    /// Finds the variant with `sku` in any product.
    pub fn shopify_variant_by_sku(&self, sku: &str) -> Option<&Value> {
        self.shopify_products
            .values()
            .flat_map(|product| product["variants"].as_array().into_iter().flatten())
            .find(|variant| variant["sku"] == sku)
    }
}

/// Returns the id of the one fulfillment order of a store order.
pub fn fulfillment_order_id(order_id: u64) -> u64 {
    order_id + 1_000
}

/// The Shopify and CJ stand-in. Every request is recorded, faults first.
pub struct ShopApis {
    pub server: Supplier,
    state: Arc<Mutex<ShopState>>,
    fault: Arc<Mutex<Option<Fault>>>,
}

impl ShopApis {
    pub async fn start() -> Self {
        let state: Arc<Mutex<ShopState>> = Arc::default();
        let fault: Arc<Mutex<Option<Fault>>> = Arc::default();
        let (routes, faults) = (Arc::clone(&state), Arc::clone(&fault));
        let server = Supplier::start(Arc::new(move |request: &Recorded, _| {
            let fault = faults.lock().expect("fault lock").clone();
            if let Some(answer) = fault.and_then(|fault| fault(request)) {
                return answer;
            }
            let mut state = routes.lock().expect("shop state lock");
            answer(&mut state, request)
        }))
        .await;
        ShopApis {
            server,
            state,
            fault,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Builds the bundled workflows' environment with Shopify and CJ on
    /// this server.
    pub fn env(&self) -> Env {
        shop_env(&self.server)
            .with("SHOPIFY_BASE_URL", &self.url())
            .with("CJ_BASE_URL", &self.url())
            .with("SHOPIFY_LOCATION_ID", &SHOP_LOCATION_ID.to_string())
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.server.received()
    }

    /// Returns the requests with this method and path.
    pub fn calls(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.received()
            .into_iter()
            .filter(|request| request.method.as_str() == method && request.path == path)
            .collect()
    }

    pub fn state(&self) -> MutexGuard<'_, ShopState> {
        self.state.lock().expect("shop state lock")
    }

    /// Lets `fault` respond to the requests it picks. `None` clears it.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().expect("fault lock") = fault;
    }
}

/// Wraps `data` in CJ's success envelope.
pub fn cj_ok(data: Value) -> Answer {
    Answer::json(
        StatusCode::OK,
        json!({
            "code": 200, "result": true, "message": "Success",
            "data": data, "requestId": "7c1e9a52-4b1d-4d8e-9f3a-2b6c5d4e3f21",
        }),
    )
}

/// Builds CJ's error envelope, sent with HTTP 200 as CJ does.
pub fn cj_error(code: u64, message: &str) -> Answer {
    Answer::json(
        StatusCode::OK,
        json!({
            "code": code, "result": false, "message": message,
            "data": null, "requestId": "7c1e9a52-4b1d-4d8e-9f3a-2b6c5d4e3f22",
        }),
    )
}

fn answer(state: &mut ShopState, request: &Recorded) -> Answer {
    if let Some(rest) = request.path.strip_prefix(SHOPIFY_PREFIX) {
        if request.header("x-shopify-access-token") != Some("shpat_test_admin") {
            return Answer::json(
                StatusCode::UNAUTHORIZED,
                json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }),
            );
        }
        let segments: Vec<&str> = rest.split('/').collect();
        return shopify(state, &request.method, &segments, request)
            .header("x-shopify-shop-api-call-limit", "1/40");
    }
    if let Some(rest) = request.path.strip_prefix(CJ_PREFIX) {
        return cj(state, &request.method, rest, request);
    }
    if let Some(sku) = request.path.strip_prefix(SUPPLIER_STOCK_PREFIX) {
        return supplier_stock(state, &request.method, sku, request);
    }
    not_found()
}

fn not_found() -> Answer {
    Answer::json(StatusCode::NOT_FOUND, json!({ "errors": "Not Found" }))
}

fn body(request: &Recorded) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// Parses `123.json` or `123` into the id.
fn id_of(segment: &str) -> Option<u64> {
    segment.trim_end_matches(".json").parse().ok()
}

fn shopify(
    state: &mut ShopState,
    method: &Method,
    segments: &[&str],
    request: &Recorded,
) -> Answer {
    let ok = |body: Value| Answer::json(StatusCode::OK, body);
    match (method.as_str(), segments) {
        ("GET", ["orders", id]) => match id_of(id).and_then(|id| state.shopify_orders.get(&id)) {
            Some(order) => ok(json!({ "order": order })),
            None => not_found(),
        },
        ("PUT", ["orders", id]) => {
            let Some(order) = id_of(id).and_then(|id| state.shopify_orders.get_mut(&id)) else {
                return not_found();
            };
            merge(order, &body(request)["order"]);
            ok(json!({ "order": order }))
        }
        ("GET", ["orders", id, "fulfillment_orders.json"]) => {
            let Some(order) = id_of(id).and_then(|id| state.shopify_orders.get(&id)) else {
                return not_found();
            };
            let order_id = order["id"].as_u64().unwrap_or_default();
            let fulfillment_order = fulfillment_order_id(order_id);
            let status = if state.closed_fulfillment_orders.contains(&fulfillment_order) {
                "closed"
            } else {
                "open"
            };
            let line_items: Vec<Value> = order["line_items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| {
                    json!({
                        "id": item["id"].as_u64().unwrap_or_default() + 1,
                        "fulfillment_order_id": fulfillment_order,
                        "line_item_id": item["id"],
                        "quantity": item["quantity"],
                        "fulfillable_quantity": if status == "open" { item["quantity"].clone() } else { json!(0) },
                    })
                })
                .collect();
            ok(json!({ "fulfillment_orders": [{
                "id": fulfillment_order,
                "order_id": order_id,
                "status": status,
                "assigned_location_id": SHOP_LOCATION_ID,
                "line_items": line_items,
            }] }))
        }
        ("POST", ["fulfillments.json"]) => create_fulfillment(state, &body(request)),
        ("GET", ["products.json"]) => {
            let products: Vec<&Value> = state.shopify_products.values().collect();
            ok(json!({ "products": products }))
        }
        ("POST", ["products.json"]) => {
            let mut product = body(request)["product"].clone();
            if !product.is_object() || product["title"].as_str().is_none_or(str::is_empty) {
                return Answer::json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "errors": { "title": ["can't be blank"] } }),
                );
            }
            let id = state.new_id(8_000_000_000_000);
            product["id"] = json!(id);
            if product["status"].is_null() {
                product["status"] = json!("active");
            }
            let variants = product["variants"].as_array().cloned().unwrap_or_default();
            let variants: Vec<Value> = variants
                .into_iter()
                .map(|variant| new_variant(state, id, variant))
                .collect();
            product["variants"] = json!(variants);
            state.shopify_products.insert(id, product.clone());
            Answer::json(StatusCode::CREATED, json!({ "product": product }))
        }
        ("PUT", ["products", id]) => {
            let Some(id) = id_of(id).filter(|id| state.shopify_products.contains_key(id)) else {
                return not_found();
            };
            let update = body(request)["product"].clone();
            let mut product = state.shopify_products[&id].clone();
            if let Some(variants) = update["variants"].as_array() {
                let mut kept = Vec::new();
                for variant in variants {
                    let existing = product["variants"].as_array().and_then(|current| {
                        current
                            .iter()
                            .find(|v| {
                                (variant["id"].is_u64() && v["id"] == variant["id"])
                                    || v["sku"] == variant["sku"]
                            })
                            .cloned()
                    });
                    match existing {
                        Some(mut current) => {
                            merge(&mut current, variant);
                            kept.push(current);
                        }
                        None => kept.push(new_variant(state, id, variant.clone())),
                    }
                }
                product["variants"] = json!(kept);
            }
            for (field, value) in update.as_object().into_iter().flatten() {
                if field != "variants" && field != "id" {
                    product[field] = value.clone();
                }
            }
            state.shopify_products.insert(id, product.clone());
            ok(json!({ "product": product }))
        }
        ("POST", ["products", id, "variants.json"]) => {
            let Some(id) = id_of(id).filter(|id| state.shopify_products.contains_key(id)) else {
                return not_found();
            };
            let variant = body(request)["variant"].clone();
            if !variant.is_object() {
                return Answer::json(
                    StatusCode::BAD_REQUEST,
                    json!({ "errors": { "variant": "Required parameter missing or invalid" } }),
                );
            }
            let created = new_variant(state, id, variant);
            let product = state.shopify_products.get_mut(&id).expect("checked above");
            match product["variants"].as_array_mut() {
                Some(variants) => variants.push(created.clone()),
                None => product["variants"] = json!([created.clone()]),
            }
            Answer::json(StatusCode::CREATED, json!({ "variant": created }))
        }
        ("PUT", ["variants", id]) => {
            let Some(id) = id_of(id) else {
                return not_found();
            };
            let update = body(request)["variant"].clone();
            for product in state.shopify_products.values_mut() {
                let Some(variants) = product["variants"].as_array_mut() else {
                    continue;
                };
                if let Some(variant) = variants.iter_mut().find(|v| v["id"] == id) {
                    merge(variant, &update);
                    variant["id"] = json!(id);
                    return ok(json!({ "variant": variant }));
                }
            }
            not_found()
        }
        ("POST", ["inventory_levels", "set.json"]) => {
            let body = body(request);
            if body["location_id"].as_u64() != Some(SHOP_LOCATION_ID) {
                return Answer::json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "errors": ["Inventory item is not stocked at the location"] }),
                );
            }
            let (Some(item), Some(available)) = (
                body["inventory_item_id"].as_u64(),
                body["available"].as_i64(),
            ) else {
                return Answer::json(
                    StatusCode::BAD_REQUEST,
                    json!({ "errors": { "inventory_item_id": "Required parameter missing or invalid" } }),
                );
            };
            state.shopify_inventory.insert(item, available);
            ok(json!({ "inventory_level": {
                "inventory_item_id": item,
                "location_id": SHOP_LOCATION_ID,
                "available": available,
                "updated_at": "2026-12-04T10:00:00-05:00",
            } }))
        }
        _ => not_found(),
    }
}

fn new_variant(state: &mut ShopState, product_id: u64, mut variant: Value) -> Value {
    variant["id"] = json!(state.new_id(45_000_000_000_000));
    variant["product_id"] = json!(product_id);
    variant["inventory_item_id"] = json!(state.new_id(47_000_000_000_000));
    variant
}

fn create_fulfillment(state: &mut ShopState, body: &Value) -> Answer {
    let fulfillment = &body["fulfillment"];
    let Some(fulfillment_order) =
        fulfillment["line_items_by_fulfillment_order"][0]["fulfillment_order_id"].as_u64()
    else {
        return Answer::json(
            StatusCode::BAD_REQUEST,
            json!({ "errors": { "fulfillment": "Required parameter missing or invalid" } }),
        );
    };
    let order = state
        .shopify_orders
        .values()
        .find(|order| order["id"].as_u64().map(fulfillment_order_id) == Some(fulfillment_order));
    let Some(order_id) = order.and_then(|order| order["id"].as_u64()) else {
        return not_found();
    };
    if state.closed_fulfillment_orders.contains(&fulfillment_order) {
        return Answer::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": [format!("Fulfillment order {fulfillment_order} has an unfulfillable status= closed.")] }),
        );
    }
    state.closed_fulfillment_orders.push(fulfillment_order);
    let tracking = &fulfillment["tracking_info"];
    let created = json!({
        "id": state.new_id(5_000_000_000),
        "order_id": order_id,
        "status": "success",
        "tracking_company": tracking["company"],
        "tracking_number": tracking["number"],
        "tracking_numbers": [tracking["number"]],
        "tracking_url": tracking["url"],
        "tracking_urls": [tracking["url"]],
        "notify_customer": fulfillment["notify_customer"],
    });
    state.shopify_fulfillments.push(created.clone());
    Answer::json(StatusCode::CREATED, json!({ "fulfillment": created }))
}

/// Copies the fields of `update` onto `target`.
fn merge(target: &mut Value, update: &Value) {
    if let (Some(target), Some(update)) = (target.as_object_mut(), update.as_object()) {
        for (field, value) in update {
            target.insert(field.clone(), value.clone());
        }
    }
}

fn cj(state: &mut ShopState, method: &Method, path: &str, request: &Recorded) -> Answer {
    if path == "authentication/getAccessToken" {
        let body = body(request);
        if body["email"].as_str().is_none() || body["password"].as_str().is_none() {
            return cj_error(1600100, "Param error");
        }
        state.cj_tokens_issued += 1;
        return cj_ok(json!({
            "accessToken": CJ_ACCESS_TOKEN,
            "accessTokenExpiryDate": "2026-12-19T10:00:00+08:00",
            "refreshToken": "cj-refresh-8d21",
            "refreshTokenExpiryDate": "2027-06-02T10:00:00+08:00",
            "createDate": "2026-12-04T10:00:00+08:00",
        }));
    }
    if request.header("cj-access-token") != Some(CJ_ACCESS_TOKEN) {
        return cj_error(1600001, "Invalid API key or access token");
    }
    match (method.as_str(), path) {
        ("GET", "product/list") => {
            let page = page_param(request, "pageNum", 1);
            let size = page_param(request, "pageSize", 20);
            let items: Vec<&Value> = state
                .cj_products
                .iter()
                .skip((page - 1) * size)
                .take(size)
                .collect();
            cj_ok(json!({
                "pageNum": page, "pageSize": size,
                "total": state.cj_products.len(), "list": items,
            }))
        }
        ("GET", "product/stock/queryByVid") => {
            let vid = request.param("vid").unwrap_or_default();
            match state.cj_stock.get(&vid) {
                Some(stock) => cj_ok(json!([{
                    "vid": vid, "areaId": "2", "areaEn": "China Warehouse",
                    "countryCode": "CN", "storageNum": stock, "totalInventoryNum": stock,
                }])),
                None => cj_error(1600100, &format!("Variant {vid} not found")),
            }
        }
        ("POST", "shopping/order/createOrderV2") => create_cj_order(state, &body(request)),
        ("GET", "shopping/order/getOrderDetail") => {
            let id = request.param("orderId").unwrap_or_default();
            match state
                .cj_orders
                .iter()
                .find(|order| order["orderId"] == id.as_str())
            {
                Some(order) => cj_ok(order.clone()),
                None => cj_error(1600100, &format!("Order {id} not found")),
            }
        }
        ("GET", "shopping/order/list") => {
            let page = page_param(request, "pageNum", 1);
            let size = page_param(request, "pageSize", 20);
            let status = request.param("status");
            let orders: Vec<&Value> = state
                .cj_orders
                .iter()
                .filter(|order| status.as_deref().is_none_or(|s| order["orderStatus"] == s))
                .collect();
            let total = orders.len();
            let list: Vec<&Value> = orders
                .into_iter()
                .skip((page - 1) * size)
                .take(size)
                .collect();
            cj_ok(json!({ "pageNum": page, "pageSize": size, "total": total, "list": list }))
        }
        _ => cj_error(1600100, &format!("No such interface: {path}")),
    }
}

fn page_param(request: &Recorded, name: &str, default: usize) -> usize {
    request
        .param(name)
        .and_then(|value| value.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(default)
}

fn create_cj_order(state: &mut ShopState, body: &Value) -> Answer {
    let Some(number) = body["orderNumber"].as_str().filter(|n| !n.is_empty()) else {
        return cj_error(1600100, "orderNumber is required");
    };
    let Some(products) = body["products"].as_array().filter(|p| !p.is_empty()) else {
        return cj_error(1600100, "products is required");
    };
    if state
        .cj_orders
        .iter()
        .any(|order| order["orderNumber"] == number)
    {
        return cj_error(1600100, &format!("orderNumber {number} already exists"));
    }
    for product in products {
        let vid = product["vid"].as_str().unwrap_or_default();
        if !state.cj_stock.contains_key(vid) && !state.cj_products.is_empty() {
            let listed = state.cj_products.iter().any(|p| {
                p["variants"]
                    .as_array()
                    .is_some_and(|variants| variants.iter().any(|v| v["vid"] == vid))
            });
            if !listed {
                return cj_error(1600100, &format!("Variant {vid} not found"));
            }
        }
    }
    let id = format!(
        "CJ{}",
        2612040000000000u64 + state.cj_orders.len() as u64 + 1
    );
    let mut order = body.clone();
    merge(
        &mut order,
        &json!({
            "orderId": id,
            "orderNum": number,
            "cjOrderId": id,
            "orderStatus": "CREATED",
            "trackNumber": null,
            "productList": products,
        }),
    );
    state.cj_orders.push(order);
    cj_ok(json!({
        "orderId": id,
        "orderNumber": number,
        "orderStatus": "CREATED",
        "productAmount": null,
        "postageAmount": null,
        "orderAmount": null,
    }))
}

/// Returns the generic supplier's stock of one SKU, in its `{code, result,
/// message, data}` envelope with HTTP 200 even for errors.
fn supplier_stock(state: &ShopState, method: &Method, sku: &str, request: &Recorded) -> Answer {
    let envelope = |code: u64, message: &str, data: Value| {
        let result = code == 200;
        Answer::json(
            StatusCode::OK,
            json!({ "code": code, "result": result, "message": message, "data": data }),
        )
    };
    let expected = format!("Bearer {}", super::SUPPLIER_TOKEN);
    if request.header("authorization") != Some(expected.as_str()) {
        return Answer::json(
            StatusCode::UNAUTHORIZED,
            json!({ "code": 401, "result": false, "message": "invalid token", "data": null }),
        );
    }
    if method != Method::GET {
        return not_found();
    }
    match state.supplier_stock.get(sku) {
        Some(quantity) => envelope(200, "Success", json!({ "sku": sku, "quantity": quantity })),
        None => envelope(1600404, &format!("SKU {sku} not found"), Value::Null),
    }
}

/// A manual workflow that writes the `set` entries (`{key, value}`) of its
/// input to kv, deletes its `delete` keys, and lists the keys under
/// `prefix`, so tests can seed and read the shop workflows' kv state.
pub const KV_TOOL: &str = r#"name: kv-tool
trigger: manual
steps:
  - id: set
    foreach: "${{ trigger.body.set }}"
    steps:
      - id: one
        uses: kv.set
        with: { key: "${{ item.key }}", value: "${{ item.value }}" }
  - id: delete
    foreach: "${{ trigger.body.delete }}"
    steps:
      - id: one
        uses: kv.delete
        with: { key: "${{ item }}" }
  - id: list
    uses: kv.list
    with: { prefix: "${{ trigger.body.prefix }}" }
"#;

/// Runs [`KV_TOOL`], which the project must hold as `kv-tool.yaml`.
pub async fn kv_tool(server: &super::TestServer, set: Value, delete: Value, prefix: &str) -> Value {
    let input = json!({ "set": set, "delete": delete, "prefix": prefix });
    let run = server
        .engine
        .run_now("kv-tool", tether::engine::run::TriggerEvent::manual(input))
        .await
        .expect("running kv-tool");
    assert_eq!(
        run.status,
        tether::engine::run::RunStatus::Succeeded,
        "kv-tool: {run:?}"
    );
    run.output.expect("kv-tool lists keys")
}

/// Returns the kv values under `prefix`, by key.
pub async fn kv_values(server: &super::TestServer, prefix: &str) -> BTreeMap<String, Value> {
    let listed = kv_tool(server, json!([]), json!([]), prefix).await;
    listed["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let key = entry["key"].as_str().unwrap_or_default().to_string();
            (key, entry["value"].clone())
        })
        .collect()
}

/// Writes `value` to kv `key`.
pub async fn kv_put(server: &super::TestServer, key: &str, value: Value) {
    kv_tool(
        server,
        json!([{ "key": key, "value": value }]),
        json!([]),
        key,
    )
    .await;
}
