//! The OpenAPI document served at /api/openapi.json describes the routes
//! the server really answers.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn openapi_lists_served_routes() {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let document = server.get_json("/api/openapi.json").await;
    assert_eq!(document["openapi"], "3.0.3");

    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/retry",
        "/api/runs/{id}/cancel",
        "/api/workflows",
        "/api/workflows/{name}/runs",
        "/hooks/{path}",
        "/healthz",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "no-such-run")
            .replace("{name}", "hello")
            .replace("{path}", "hello");
        for method in operations.as_object().expect("operations").keys() {
            let request = match method.as_str() {
                "get" => server.client.get(server.url(&concrete)),
                "post" => server.client.post(server.url(&concrete)).json(&Value::Null),
                other => panic!("unexpected method {other} for {path}"),
            };
            let status = request.send().await.expect("request").status().as_u16();
            assert_ne!(
                status, 405,
                "{method} {path} is described but has no such method"
            );
            if !path.contains("{id}") {
                assert_ne!(status, 404, "{method} {path} is described but not served");
            }
        }
    }
}
