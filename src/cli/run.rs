//! `tether run`: one run in the foreground. With the data directory free,
//! the run executes in this process; while a server holds it, the run is
//! started through the server's API and this command waits for its end.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tether::engine::run::{RunStatus, TriggerEvent};
use tether::workflow::Env;

use super::recovery::{data_dir_free, post};

/// Time between two reads of a run started through the API.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

pub async fn run_once(
    dir: &Path,
    data: &Path,
    server: &str,
    workflow: &str,
    input: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let body = match input {
        None => Value::Null,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", file.display()))?
        }
    };
    if !data_dir_free(data) {
        return run_on_server(server, workflow, &body).await;
    }

    let engine = tether::app::open(dir, data, &Env::from_process())?;
    if engine.registry().workflow(workflow).is_none() {
        let known: Vec<String> = engine.registry().workflows.keys().cloned().collect();
        bail!(
            "workflow `{workflow}` is not loaded from {}; loaded: {}",
            dir.display(),
            known.join(", ")
        );
    }
    let run = engine.run_now(workflow, TriggerEvent::manual(body)).await?;
    engine.store().sync().await?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(exit_code(run.status))
}

async fn run_on_server(server: &str, workflow: &str, body: &Value) -> anyhow::Result<ExitCode> {
    let started = post(server, &format!("/api/workflows/{workflow}/runs"), body).await?;
    let Some(run_id) = started["run_id"].as_str() else {
        bail!("the server response has no run id: {started}");
    };
    let url = format!("{}/api/runs/{run_id}", server.trim_end_matches('/'));
    let client = reqwest::Client::new();
    loop {
        let run: Value = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("reading run {run_id} from {url}"))?
            .json()
            .await?;
        let status: Option<RunStatus> = run["status"].as_str().and_then(|s| s.parse().ok());
        if let Some(status) = status.filter(|s| s.is_terminal() || *s == RunStatus::Waiting) {
            println!("{}", serde_json::to_string_pretty(&run)?);
            return Ok(exit_code(status));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn exit_code(status: RunStatus) -> ExitCode {
    match status {
        RunStatus::Succeeded | RunStatus::Skipped | RunStatus::Waiting => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
