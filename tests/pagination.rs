//! Paginated connector operations and per-connector limits, against a
//! server on 127.0.0.1 that pages like the real APIs do.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use tether::engine::run::{Run, RunStatus, TriggerEvent};

const CATALOG: &str = r#"name: catalog
config:
  base_url: { env: SUPPLIER_BASE_URL }
operations:
  by_page:
    method: GET
    path: /products
    query: { pageSize: 2 }
    paginate:
      page: { param: pageNum }
      items: "${{ response.body.data.list }}"
  by_cursor:
    method: GET
    path: /cursor
    paginate:
      cursor: { param: cursor, next: "${{ response.body.next }}" }
      items: "${{ response.body.items }}"
  by_link:
    method: GET
    path: /linked
    paginate:
      link: true
      items: "${{ response.body.products }}"
      max_pages: 3
"#;

fn listing(operation: &str) -> String {
    let name = operation.replace('_', "-");
    format!(
        "name: list-{name}\ntrigger: manual\nsteps:\n  - id: list\n    uses: catalog.{operation}\n"
    )
}

async fn run_listing(supplier: &Supplier, operation: &str) -> Run {
    let project = Project::bundled();
    std::fs::write(project.path().join("connectors/catalog.yaml"), CATALOG)
        .expect("writing the connector");
    project.add_workflow("list.yaml", &listing(operation));
    let server = TestServer::start(&project, shop_env(supplier)).await;
    let name = format!("list-{}", operation.replace('_', "-"));
    server
        .engine
        .run_now(&name, TriggerEvent::manual(json!({})))
        .await
        .expect("running")
}

#[tokio::test]
async fn page_numbers_until_empty_page() {
    let supplier = Supplier::start(Arc::new(|request: &Recorded, _| {
        let page: usize = request
            .param("pageNum")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let list: Vec<Value> = if page <= 3 {
            (0..2)
                .map(|n| json!({ "sku": format!("P{page}-{n}") }))
                .collect()
        } else {
            Vec::new()
        };
        Answer::json(
            StatusCode::OK,
            json!({ "code": 200, "result": true, "data": { "pageNum": page, "list": list } }),
        )
    }))
    .await;
    let run = run_listing(&supplier, "by_page").await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let skus: Vec<String> = run
        .output
        .clone()
        .unwrap_or_default()
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["sku"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(skus, ["P1-0", "P1-1", "P2-0", "P2-1", "P3-0", "P3-1"]);
    let pages: Vec<Option<String>> = supplier
        .received()
        .iter()
        .map(|r| r.param("pageNum"))
        .collect();
    assert_eq!(
        pages,
        [
            Some("1".into()),
            Some("2".into()),
            Some("3".into()),
            Some("4".into())
        ]
    );
    assert!(
        supplier
            .received()
            .iter()
            .all(|r| r.param("pageSize").as_deref() == Some("2"))
    );
}

#[tokio::test]
async fn cursor_followed_and_repeat_rejected() {
    let supplier = Supplier::start(Arc::new(|request: &Recorded, _| {
        let body = match request.param("cursor").as_deref() {
            None => json!({ "items": [1, 2], "next": "c2" }),
            Some("c2") => json!({ "items": [3], "next": "c3" }),
            Some(_) => json!({ "items": [4], "next": null }),
        };
        Answer::json(StatusCode::OK, body)
    }))
    .await;
    let run = run_listing(&supplier, "by_cursor").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output, Some(json!([1, 2, 3, 4])));

    let looping = Supplier::start(Arc::new(|_: &Recorded, _| {
        Answer::json(StatusCode::OK, json!({ "items": [1], "next": "same" }))
    }))
    .await;
    let run = run_listing(&looping, "by_cursor").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.clone().unwrap_or_default();
    assert!(error.contains("cursor `same` came back twice"), "{error}");
}

#[tokio::test]
async fn link_header_followed_up_to_cap() {
    let supplier = Supplier::start(Arc::new(|request: &Recorded, n| {
        let page = request.param("page_info").unwrap_or_else(|| "first".into());
        let answer = Answer::json(StatusCode::OK, json!({ "products": [{ "page": page }] }));
        if n < 1 {
            answer.header(
                "link",
                &format!(
                    "<http://{}/linked?page_info=p{}&limit=1>; rel=\"next\"",
                    request.header("host").unwrap_or(""),
                    n + 2
                ),
            )
        } else {
            answer
        }
    }))
    .await;
    let run = run_listing(&supplier, "by_link").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.output,
        Some(json!([{ "page": "first" }, { "page": "p2" }]))
    );
    assert_eq!(supplier.received()[1].param("limit").as_deref(), Some("1"));

    let endless = Supplier::start(Arc::new(|request: &Recorded, n| {
        Answer::json(StatusCode::OK, json!({ "products": [n] })).header(
            "link",
            &format!(
                "<http://{}/linked?page_info=x{n}>; rel=\"next\"",
                request.header("host").unwrap_or("")
            ),
        )
    }))
    .await;
    let run = run_listing(&endless, "by_link").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .clone()
            .unwrap_or_default()
            .contains("more than 3 pages"),
        "{:?}",
        run.error
    );
    assert_eq!(endless.received().len(), 3);
}

const LIMITED: &str = r#"name: limited
config:
  base_url: { env: SUPPLIER_BASE_URL }
rate_limit: { requests: 2, per: 1s }
concurrency: 1
operations:
  ping: { method: POST, path: /ping }
"#;

#[tokio::test]
async fn rate_and_concurrency_limits_shared_by_runs() {
    let held = Duration::from_millis(100);
    let supplier = Supplier::start(Arc::new(move |_: &Recorded, _| {
        Answer::order_created("x").after(held)
    }))
    .await;
    let project = Project::bundled();
    std::fs::write(project.path().join("connectors/limited.yaml"), LIMITED)
        .expect("writing the connector");
    project.add_workflow(
        "ping.yaml",
        "name: ping\ntrigger: manual\nsteps:\n  - id: ping\n    uses: limited.ping\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let mut run_ids = Vec::new();
    for _ in 0..4 {
        let response = server
            .client
            .post(server.url("/api/workflows/ping/runs"))
            .json(&json!({}))
            .send()
            .await
            .expect("POST");
        let answer: Value = response.json().await.expect("JSON");
        run_ids.push(answer["run_id"].as_str().expect("run id").to_string());
    }
    for run_id in &run_ids {
        assert_eq!(server.wait_for_run(run_id).await["status"], "succeeded");
    }

    let mut times: Vec<_> = supplier.received().iter().map(|r| r.received_at).collect();
    times.sort();
    assert_eq!(times.len(), 4);
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= held,
            "two calls were in flight at once"
        );
    }
    // Two requests per second with a burst of two: the fourth waits about
    // a second for its token.
    assert!(
        times[3] - times[0] >= Duration::from_millis(900),
        "rate limit not applied: {:?}",
        times[3] - times[0]
    );
}

const REPORTING: &str = r#"name: reporting
config:
  base_url: { env: SUPPLIER_BASE_URL }
rate_limit: { requests: 10, per: 10s, usage_header: X-Call-Limit }
operations:
  ping: { method: POST, path: /ping }
"#;

#[tokio::test]
async fn usage_header_drains_the_bucket() {
    // The API reports its bucket nearly full, as Shopify does when other
    // clients of the shop use it too.
    let supplier = Supplier::start(Arc::new(|_: &Recorded, _| {
        Answer::order_created("x").header("x-call-limit", "39/40")
    }))
    .await;
    let project = Project::bundled();
    std::fs::write(project.path().join("connectors/reporting.yaml"), REPORTING)
        .expect("writing the connector");
    project.add_workflow(
        "twice.yaml",
        "name: twice\ntrigger: manual\nsteps:\n  - id: first\n    uses: reporting.ping\n  - id: second\n    uses: reporting.ping\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;

    let run = server
        .engine
        .run_now("twice", TriggerEvent::manual(json!({})))
        .await
        .expect("running");

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let times: Vec<_> = supplier.received().iter().map(|r| r.received_at).collect();
    assert_eq!(times.len(), 2);
    // 39 of 40 used leaves a quarter of a token in the 10-token bucket,
    // which refills at one per second: the second call waits about 0.75 s.
    assert!(
        times[1] - times[0] >= Duration::from_millis(600),
        "the usage header was ignored: {:?}",
        times[1] - times[0]
    );
}
