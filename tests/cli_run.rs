//! `tether run` as a real process: in the foreground on a free data
//! directory, and through the API of a server that holds it.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn tether(project: &Project) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .arg("--dir")
        .arg(project.path())
        .env("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET)
        .env("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN)
        .envs(CONNECTOR_SECRETS)
        .env_remove("RUST_LOG");
    command
}

#[test]
fn run_in_foreground_prints_run() {
    let project = Project::bundled();
    let data = tempfile::TempDir::new().expect("data directory");
    let input = project.path().join("input.json");
    std::fs::write(&input, r#"{"name": "Mira"}"#).expect("writing the input");

    let output = tether(&project)
        .arg("--data")
        .arg(data.path())
        .args(["run", "hello", "--input"])
        .arg(&input)
        .output()
        .expect("running tether run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).expect("the run as JSON");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["output"]["greeting"], "hello, Mira");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_goes_through_running_server() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    let server = TestServer::start(&project, shop_env(&supplier)).await;
    let input = project.path().join("input.json");
    std::fs::write(&input, r#"{"name": "Dale"}"#).expect("writing the input");

    let mut command = tether(&project);
    command
        .arg("--data")
        .arg(server.data_path())
        .args(["run", "hello", "--server"])
        .arg(server.url(""))
        .arg("--input")
        .arg(&input);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("running tether run");

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).expect("the run as JSON");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["output"]["greeting"], "hello, Dale");
    let listed = server.get_json("/api/runs?workflow=hello").await;
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(1));
}
