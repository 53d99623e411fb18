//! Dashboard pages served by a real engine on 127.0.0.1: filters, escaping,
//! exact JSON, redaction and the operator buttons.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

const SCRIPT: &str = "<script>alert(1)</script>";
/// minijinja's HTML escaping also writes `/` as `&#x2f;`.
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;";

/// Undoes the HTML escaping of the few characters these tests look for.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// A manual workflow that fails with the trigger's `note` as its error when
/// `fail` is true, and succeeds otherwise.
const CHECKOUT: &str = r#"name: checkout
trigger: manual
steps:
  - id: inspect
    script: |
      if trigger.body.fail == true { fail(trigger.body.note) }
      #{ id: trigger.body.id }
"#;

async fn checkout_server() -> (TestServer, Supplier) {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("checkout.yaml", CHECKOUT);
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    (server, supplier)
}

async fn start_checkout(server: &TestServer, input: serde_json::Value) -> String {
    let response = server
        .client
        .post(server.url("/api/workflows/checkout/runs"))
        .json(&input)
        .send()
        .await
        .expect("starting a run");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id").to_string();
    server.wait_for_run(&run_id).await;
    run_id
}

#[tokio::test]
async fn payload_script_shows_as_text() {
    let (server, _supplier) = checkout_server().await;
    let input = json!({ "fail": true, "note": SCRIPT });
    let run_id = start_checkout(&server, input).await;

    for path in [
        "/",
        "/?status=failed",
        &format!("/runs/{run_id}"),
        "/workflows",
    ] {
        let (status, html) = server.get_page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains(SCRIPT), "{path} contains the raw script");
    }
    let (_, list) = server.get_page("/").await;
    assert!(list.contains(ESCAPED), "runs list shows the escaped error");
    let (_, detail) = server.get_page(&format!("/runs/{run_id}")).await;
    assert!(
        detail.contains(ESCAPED),
        "run page shows the escaped payload"
    );
}

#[tokio::test]
async fn status_filter_lists_only_failed() {
    let (server, _supplier) = checkout_server().await;
    let failed = start_checkout(&server, json!({ "fail": true, "note": "no stock" })).await;
    let succeeded = start_checkout(&server, json!({ "id": 1 })).await;

    let (_, html) = server.get_page("/?status=failed").await;

    assert!(html.contains(&failed));
    assert!(!html.contains(&succeeded));
}

#[tokio::test]
async fn text_search_finds_order_number() {
    let (server, _supplier) = checkout_server().await;
    let wanted = start_checkout(
        &server,
        json!({ "name": "#1042", "email": "Mira@Example.com" }),
    )
    .await;
    let other = start_checkout(&server, json!({ "name": "#1043" })).await;

    let (_, by_order) = server.get_page("/?q=%231042").await;
    let (_, by_email) = server.get_page("/?q=mira%40example.com").await;

    assert!(by_order.contains(&wanted));
    assert!(!by_order.contains(&other));
    assert!(by_email.contains(&wanted), "search ignores ASCII case");
    assert!(!by_email.contains(&other));
}

#[tokio::test]
async fn cursor_pages_through_runs() {
    let (server, _supplier) = checkout_server().await;
    let mut ids = Vec::new();
    for n in 0..51 {
        ids.push(start_checkout(&server, json!({ "id": n })).await);
    }

    let (_, first) = server.get_page("/?workflow=checkout").await;
    let link_start = first
        .find("id=\"next-page\" href=\"")
        .expect("a next-page link");
    let rest = &first[link_start + "id=\"next-page\" href=\"".len()..];
    let link = unescape(&rest[..rest.find('"').expect("link end")]);
    let (_, second) = server.get_page(&link).await;

    assert!(first.contains(&ids[50]), "newest run on page one");
    assert!(!first.contains(&ids[0]), "oldest run not on page one");
    assert!(second.contains(&ids[0]), "oldest run on page two");
    assert!(!second.contains(&ids[50]), "newest run not on page two");
}

#[tokio::test]
async fn time_range_excludes_older_runs() {
    let (server, _supplier) = checkout_server().await;
    let run_id = start_checkout(&server, json!({ "id": 7 })).await;

    let (_, future) = server.get_page("/?since=2999-01-01T00:00").await;
    let (_, past) = server.get_page("/?until=2000-01-01T00:00").await;
    let (_, around) = server
        .get_page("/?since=2000-01-01T00:00&until=2999-01-01T00:00")
        .await;
    let (status, _) = server.get_page("/?since=yesterday").await;

    assert!(!future.contains(&run_id));
    assert!(!past.contains(&run_id));
    assert!(around.contains(&run_id));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn run_page_keeps_big_integers() {
    let (server, _supplier) = checkout_server().await;
    let body = r#"{"id": 9007199254740993}"#;
    let response = server
        .client
        .post(server.url("/api/workflows/checkout/runs"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("starting a run");
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id");
    server.wait_for_run(run_id).await;

    let (_, html) = server.get_page(&format!("/runs/{run_id}")).await;

    assert_eq!(
        html.matches("9007199254740993").count(),
        3,
        "body, input and output"
    );
}

#[tokio::test]
async fn run_page_redacts_authorization() {
    let (server, _supplier) = checkout_server().await;
    let response = server
        .client
        .post(server.url("/hooks/hello"))
        .header("Authorization", "Bearer tok_live_4411")
        .json(&json!({ "name": "Mira" }))
        .send()
        .await
        .expect("sending the webhook");
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id");
    server.wait_for_run(run_id).await;

    let (_, html) = server.get_page(&format!("/runs/{run_id}")).await;

    assert!(!html.contains("tok_live_4411"));
    assert!(html.contains("[redacted]"));
    assert!(html.contains("hello, Mira"));
}

#[tokio::test]
async fn retry_button_reruns_failed_step() {
    let supplier = Supplier::sequence(vec![
        Answer::json(StatusCode::BAD_REQUEST, json!({ "error": "invalid sku" })),
        Answer::order_created("SO-77"),
    ])
    .await;
    let project = Project::bundled();
    project.add_workflow(
        "place.yaml",
        "name: place\ntrigger: manual\nsteps:\n  - id: place\n    uses: supplier.create_order\n    with: { reference: \"R-1\" }\n",
    );
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    let response = server
        .client
        .post(server.url("/api/workflows/place/runs"))
        .json(&json!({}))
        .send()
        .await
        .expect("starting a run");
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("a run id").to_string();
    server.wait_for_run(&run_id).await;
    let (_, failed_page) = server.get_page(&format!("/runs/{run_id}")).await;

    let retried = server
        .client
        .post(server.url(&format!("/runs/{run_id}/retry")))
        .send()
        .await
        .expect("pressing retry");
    let run = server.wait_for_run(&run_id).await;

    assert!(failed_page.contains("400"), "error shows the remote status");
    assert!(failed_page.contains("invalid sku"), "error shows the body");
    assert!(failed_page.contains("id=\"retry\""));
    assert_eq!(
        retried.status(),
        StatusCode::OK,
        "redirect followed to the run"
    );
    assert_eq!(run["status"], "succeeded");
}

#[tokio::test]
async fn cancel_of_finished_run_is_conflict() {
    let (server, _supplier) = checkout_server().await;
    let run_id = start_checkout(&server, json!({ "id": 1 })).await;

    let response = server
        .client
        .post(server.url(&format!("/runs/{run_id}/cancel")))
        .send()
        .await
        .expect("pressing cancel");

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let html = response.text().await.expect("an error page");
    assert!(html.contains("can be cancelled"), "{html}");
}

#[tokio::test]
async fn workflows_page_shows_problems() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("broken.yaml", "name: broken\ntrigger: manual\nstepz: []\n");
    let server = TestServer::start_with_problems(&project, shop_env(&supplier)).await;

    let (status, html) = server.get_page("/workflows").await;

    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("broken.yaml"), "{html}");
    assert!(html.contains("heartbeat"));
    assert!(html.contains("30 2 * * *") || html.contains("schedule `"));
    assert!(unescape(&html).contains("/hooks/hello"));
}

#[tokio::test]
async fn unknown_run_page_is_not_found() {
    let (server, _supplier) = checkout_server().await;

    let (status, html) = server.get_page("/runs/0000-missing").await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("run `0000-missing` not found"));
}
