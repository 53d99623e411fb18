//! Reloading workflow files while serving: a broken edit leaves the last
//! good version serving, a good edit takes over new runs, and a run keeps
//! the version it started with.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn greet(server: &TestServer, name: &str) -> Value {
    let response = server
        .client
        .post(server.url("/hooks/hello"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.expect("JSON");
    server
        .wait_for_run(answer["run_id"].as_str().expect("run id"))
        .await
}

fn write_hello(project: &Project, text: &str) {
    std::fs::write(project.path().join("workflows/hello.yaml"), text).expect("writing hello.yaml");
}

const HI: &str = "name: hello\ntrigger:\n  webhook:\n    path: /hooks/hello\nsteps:\n  - id: greet\n    script: '#{ greeting: `hi, ${trigger.body.name}` }'\n";

#[tokio::test]
async fn broken_edit_keeps_previous_version() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    let env = shop_env(&supplier);
    let server = TestServer::start(&project, env.clone()).await;
    let before = greet(&server, "Mira").await;
    assert_eq!(before["output"]["greeting"], "hello, Mira");

    write_hello(&project, &HI.replace("script:", "scrpt:"));
    let problems = server.engine.reload(project.path(), &env);
    assert!(problems > 0, "the broken edit is reported");
    let still = greet(&server, "Mira").await;
    assert_eq!(
        still["output"]["greeting"], "hello, Mira",
        "the previous version keeps serving"
    );
    let workflows = server.get_json("/api/workflows").await;
    let listed = workflows["problems"].to_string();
    assert!(listed.contains("unknown field `scrpt`"), "{listed}");

    write_hello(&project, HI);
    assert_eq!(server.engine.reload(project.path(), &env), 0);
    let after = greet(&server, "Mira").await;
    assert_eq!(after["output"]["greeting"], "hi, Mira");
    assert_ne!(after["workflow_version"], before["workflow_version"]);
}

const PAUSED: &str = "name: paused\ntrigger: manual\nsteps:\n  - id: wait\n    delay: 400ms\n  - id: say\n    script: '\"v1\"'\n";

#[tokio::test]
async fn run_keeps_version_it_started_with() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("paused.yaml", PAUSED);
    let env = shop_env(&supplier);
    let server = TestServer::start(&project, env.clone()).await;

    let started = server
        .client
        .post(server.url("/api/workflows/paused/runs"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let first: Value = started.json().await.expect("JSON");
    tokio::time::sleep(Duration::from_millis(100)).await;

    project.add_workflow("paused.yaml", &PAUSED.replace("v1", "v2"));
    assert_eq!(server.engine.reload(project.path(), &env), 0);
    let old = server
        .wait_for_run(first["run_id"].as_str().expect("run id"))
        .await;
    assert_eq!(
        old["output"], "v1",
        "the waiting run finished on its own version"
    );

    let started = server
        .client
        .post(server.url("/api/workflows/paused/runs"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    let second: Value = started.json().await.expect("JSON");
    let new = server
        .wait_for_run(second["run_id"].as_str().expect("run id"))
        .await;
    assert_eq!(new["output"], "v2");
}

#[cfg(unix)]
#[tokio::test]
async fn served_files_reload_when_changed() {
    tether::app::install_tls_provider();
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    let data = tempfile::TempDir::new().expect("data directory");
    let launcher = common::process::Launcher::for_shop(project.path(), data.path(), supplier.url());
    let engine = launcher.start(1).await;
    let client = reqwest::Client::new();
    write_hello(&project, HI);

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = client
            .post(format!("{}/hooks/hello", engine.base_url))
            .json(&json!({ "name": "Dale" }))
            .send()
            .await
            .expect("POST");
        let answer: Value = response.json().await.expect("JSON");
        let run_id = answer["run_id"].as_str().expect("run id").to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let run: Value = client
            .get(format!("{}/api/runs/{run_id}", engine.base_url))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        if run["output"]["greeting"] == "hi, Dale" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edit was never picked up:\n{}",
            launcher.log_tail(12)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    engine.stop();
}
