//! A run parked in a `delay` step survives SIGKILL of the engine and
//! completes exactly once after a restart on the same data directory.

#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use common::process::Launcher;
use common::*;
use serde_json::{Value, json};
use tempfile::TempDir;

const DELAYED: &str = r#"name: delayed-order
trigger:
  webhook:
    path: /hooks/delayed
steps:
  - id: pause
    delay: 5s
  - id: place
    uses: supplier.create_order
    with:
      reference: "${{ trigger.body.id }}"
"#;

async fn run_status(client: &reqwest::Client, base_url: &str, run_id: &str) -> Value {
    let url = format!("{base_url}/api/runs/{run_id}");
    let response = client.get(url).send().await.expect("reading the run");
    response.json().await.expect("a JSON run")
}

#[tokio::test]
async fn delayed_run_completes_once_after_sigkill() {
    let supplier = Supplier::accepting().await;
    let project = Project::bundled();
    project.add_workflow("delayed.yaml", DELAYED);
    let data = TempDir::new().expect("data directory");
    let launcher = Launcher::for_shop(project.path(), data.path(), supplier.url());
    tether::app::install_tls_provider();
    let client = reqwest::Client::new();

    let mut first = launcher.start(1).await;
    let started = Instant::now();
    let response = client
        .post(format!("{}/hooks/delayed", first.base_url))
        .json(&json!({ "id": 9007199254740993_u64 }))
        .send()
        .await
        .expect("posting the webhook");
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.expect("JSON answer");
    let run_id = answer["run_id"].as_str().expect("run id").to_string();

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let run = run_status(&client, &first.base_url, &run_id).await;
        if run["status"] == "waiting" {
            break;
        }
        assert!(Instant::now() < deadline, "run never parked: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.sigkill();
    assert!(
        supplier.received().is_empty(),
        "no call before the delay ends"
    );

    let second = launcher.start(2).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let run = run_status(&client, &second.base_url, &run_id).await;
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "run did not finish after restart: {run}\n{}",
            launcher.log_tail(12)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(run["status"], "succeeded", "run: {run}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the delay was cut short"
    );
    let received = supplier.received();
    assert_eq!(received.len(), 1, "the supplier is called exactly once");
    let body = String::from_utf8(received[0].body.to_vec()).expect("UTF-8 body");
    assert!(body.contains("9007199254740993"), "{body}");
    let pause = &run["steps"][0];
    assert_eq!(pause["status"], "succeeded");
    assert_eq!(pause["attempts"].as_array().map(Vec::len), Some(1));
    second.stop();
}
