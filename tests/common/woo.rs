//! A WooCommerce store on 127.0.0.1 serving the REST API v3 paths the
//! `woocommerce` connector uses, the way WooCommerce documents them: basic
//! auth with the consumer key and secret, JSON arrays for listings with the
//! `X-WP-Total` and `X-WP-TotalPages` headers, `page` and `per_page`
//! parameters, order notes, and product batches of at most 100 objects.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Recorded, Supplier};

/// Consumer key and secret the store accepts; `shop_env` sets the same.
pub const WOO_CONSUMER_KEY: &str = "ck_test";
pub const WOO_CONSUMER_SECRET: &str = "cs_test";
/// Maximum objects WooCommerce accepts in one batch request.
const BATCH_LIMIT: usize = 100;

#[derive(Debug, Default)]
pub struct WooState {
    /// Orders in the shape of `GET /orders/<id>`, oldest first.
    pub orders: Vec<Value>,
    /// Notes by order id, in the order they were added.
    pub notes: Vec<(u64, Value)>,
    pub products: Vec<Value>,
    next_id: u64,
}

impl WooState {
    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        9000 + self.next_id
    }

    /// Returns the notes of one order.
    pub fn notes_of(&self, order_id: u64) -> Vec<Value> {
        self.notes
            .iter()
            .filter(|(id, _)| *id == order_id)
            .map(|(_, note)| note.clone())
            .collect()
    }

    pub fn order(&self, id: u64) -> Option<&Value> {
        self.orders.iter().find(|order| order["id"] == id)
    }
}

/// The store server; every request is recorded.
pub struct WooStore {
    server: Supplier,
    state: Arc<Mutex<WooState>>,
}

impl WooStore {
    pub async fn start() -> Self {
        let state: Arc<Mutex<WooState>> = Arc::default();
        let shared = Arc::clone(&state);
        let server = Supplier::start(Arc::new(move |request, _| {
            answer(&mut shared.lock().expect("store lock"), request)
        }))
        .await;
        WooStore { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn state(&self) -> MutexGuard<'_, WooState> {
        self.state.lock().expect("store lock")
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.server.received()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    let body = json!({ "code": code, "message": message, "data": { "status": status.as_u16() } });
    Answer::json(status, body)
}

fn ok(body: Value) -> Answer {
    Answer::json(StatusCode::OK, body)
}

fn authorized(request: &Recorded) -> bool {
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{WOO_CONSUMER_KEY}:{WOO_CONSUMER_SECRET}"));
    request.header("authorization") == Some(format!("Basic {expected}").as_str())
}

fn answer(state: &mut WooState, request: &Recorded) -> Answer {
    if !authorized(request) {
        return error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        );
    }
    let Some(path) = request.path.strip_prefix("/wp-json/wc/v3/") else {
        return error(
            StatusCode::NOT_FOUND,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        );
    };
    let parts: Vec<&str> = path.split('/').collect();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["orders"]) => list_orders(state, request),
        ("GET", ["orders", id]) => match find_order(state, id) {
            Some(index) => ok(state.orders[index].clone()),
            None => invalid_order(),
        },
        ("PUT", ["orders", id]) => match find_order(state, id) {
            Some(index) => {
                merge(&mut state.orders[index], &body);
                ok(state.orders[index].clone())
            }
            None => invalid_order(),
        },
        ("POST", ["orders", id, "notes"]) => {
            let Some(index) = find_order(state, id) else {
                return invalid_order();
            };
            let Some(text) = body["note"].as_str().filter(|text| !text.is_empty()) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "rest_missing_callback_param",
                    "Missing parameter(s): note",
                );
            };
            let order_id = state.orders[index]["id"]
                .as_u64()
                .expect("order ids are numbers");
            let note = json!({
                "id": state.new_id(),
                "author": "WooCommerce",
                "date_created": "2026-11-01T01:31:00",
                "note": text,
                "customer_note": body["customer_note"].as_bool().unwrap_or(false),
            });
            state.notes.push((order_id, note.clone()));
            Answer::json(StatusCode::CREATED, note)
        }
        ("POST", ["products"]) => {
            let product = create_product(state, &body);
            Answer::json(StatusCode::CREATED, product)
        }
        ("PUT", ["products", id]) => match update_product(state, id, &body) {
            Some(product) => ok(product),
            None => invalid_product(),
        },
        ("POST", ["products", "batch"]) => batch_products(state, &body),
        _ => error(
            StatusCode::NOT_FOUND,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        ),
    }
}

/// `GET /orders`: `after` (ISO 8601, compared with `date_created`),
/// `status`, `page` (from 1) and `per_page` (1 to 100, default 10).
fn list_orders(state: &WooState, request: &Recorded) -> Answer {
    let per_page: usize = request
        .param("per_page")
        .map_or(Ok(10), |value| value.parse())
        .unwrap_or(0);
    if !(1..=100).contains(&per_page) {
        return error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): per_page",
        );
    }
    let page: usize = request
        .param("page")
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
        .max(1);
    let after = request.param("after");
    let status = request.param("status");
    let matching: Vec<&Value> = state
        .orders
        .iter()
        .filter(|order| {
            after.as_deref().is_none_or(|after| {
                order["date_created"]
                    .as_str()
                    .is_some_and(|created| created > after)
            })
        })
        .filter(|order| {
            status
                .as_deref()
                .is_none_or(|status| order["status"] == status)
        })
        .collect();
    let total = matching.len();
    let pages = total.div_ceil(per_page);
    let items: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    ok(Value::Array(items))
        .header("X-WP-Total", &total.to_string())
        .header("X-WP-TotalPages", &pages.to_string())
}

fn find_order(state: &WooState, id: &str) -> Option<usize> {
    let id: u64 = id.parse().ok()?;
    state.orders.iter().position(|order| order["id"] == id)
}

fn invalid_order() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_shop_order_invalid_id",
        "Invalid ID.",
    )
}

fn invalid_product() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_product_invalid_id",
        "Invalid ID.",
    )
}

fn create_product(state: &mut WooState, fields: &Value) -> Value {
    let mut product = json!({ "id": state.new_id(), "status": "publish" });
    merge(&mut product, fields);
    state.products.push(product.clone());
    product
}

fn update_product(state: &mut WooState, id: &str, fields: &Value) -> Option<Value> {
    let id: u64 = id.parse().ok()?;
    let product = state
        .products
        .iter_mut()
        .find(|product| product["id"] == id)?;
    merge(product, fields);
    Some(product.clone())
}

/// `POST /products/batch` with `create`, `update` and `delete` lists. An
/// update for an unknown id gets an `error` object in its place, as
/// WooCommerce does.
fn batch_products(state: &mut WooState, body: &Value) -> Answer {
    let list = |name: &str| body[name].as_array().cloned().unwrap_or_default();
    let (creates, updates, deletes) = (list("create"), list("update"), list("delete"));
    if creates.len() + updates.len() + deletes.len() > BATCH_LIMIT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "woocommerce_rest_request_entity_too_large",
            "Unable to accept more than 100 items for this request.",
        );
    }
    let created: Vec<Value> = creates
        .iter()
        .map(|fields| create_product(state, fields))
        .collect();
    let updated: Vec<Value> = updates
        .iter()
        .map(|fields| {
            let id = fields["id"].to_string();
            update_product(state, &id, fields).unwrap_or_else(|| {
                json!({ "id": fields["id"], "error": {
                    "code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.",
                    "data": { "status": 400 } } })
            })
        })
        .collect();
    let deleted: Vec<Value> = deletes
        .iter()
        .filter_map(|id| {
            let position = state
                .products
                .iter()
                .position(|product| &product["id"] == id)?;
            Some(state.products.remove(position))
        })
        .collect();
    ok(json!({ "create": created, "update": updated, "delete": deleted }))
}

/// Copies the fields of `update` onto `target`.
fn merge(target: &mut Value, update: &Value) {
    if let (Some(target), Some(update)) = (target.as_object_mut(), update.as_object()) {
        for (field, value) in update {
            target.insert(field.clone(), value.clone());
        }
    }
}
