//! `tether retry` and `tether cancel`. With the data directory free, they
//! act on the store directly and a retried run executes in the foreground.
//! While a server holds the directory, they call its API.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tether::engine::run::{Run, RunStatus};
use tether::workflow::Env;

pub enum RetryTarget {
    Run { run_id: String, from_start: bool },
    Matching { workflow: String, status: RunStatus },
}

pub async fn retry(
    dir: &Path,
    data: &Path,
    server: &str,
    target: RetryTarget,
) -> anyhow::Result<ExitCode> {
    if !data_dir_free(data) {
        let (path, body) = match &target {
            RetryTarget::Run { run_id, from_start } => (
                format!("/api/runs/{run_id}/retry"),
                serde_json::json!({ "from_start": from_start }),
            ),
            RetryTarget::Matching { workflow, status } => (
                format!("/api/runs/retry?workflow={workflow}&status={status}"),
                Value::Null,
            ),
        };
        let answer = post(server, &path, &body).await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }

    let engine = tether::app::open(dir, data, &Env::from_process())?;
    let run_ids = match target {
        RetryTarget::Run { run_id, from_start } => {
            let run = if from_start {
                engine.replay(&run_id).await?
            } else {
                engine.retry(&run_id).await?
            };
            vec![run.id]
        }
        RetryTarget::Matching { workflow, status } => {
            engine.retry_matching(&workflow, status).await?
        }
    };
    let mut all_ok = true;
    for run_id in run_ids {
        let run = engine.execute(&run_id).await?;
        all_ok &= matches!(
            run.status,
            RunStatus::Succeeded | RunStatus::Skipped | RunStatus::Waiting
        );
        println!("{}", serde_json::to_string_pretty(&run)?);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn cancel(
    dir: &Path,
    data: &Path,
    server: &str,
    run_id: &str,
) -> anyhow::Result<ExitCode> {
    if !data_dir_free(data) {
        let answer = post(server, &format!("/api/runs/{run_id}/cancel"), &Value::Null).await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let engine = tether::app::open(dir, data, &Env::from_process())?;
    let run: Run = engine.cancel(run_id).await?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(ExitCode::SUCCESS)
}

/// Whether this process can open the data directory, that is, no server
/// holds it.
pub(super) fn data_dir_free(data: &Path) -> bool {
    !data.exists() || tether::store::SledStore::open(data).is_ok()
}

pub(super) async fn post(server: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    tether::app::install_tls_provider();
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut request = reqwest::Client::new().post(&url);
    if let Ok(token) = std::env::var(tether::web::auth::TOKEN_ENV) {
        request = request.bearer_auth(token);
    }
    if !body.is_null() {
        request = request.json(body);
    }
    let response = request.send().await.with_context(|| {
        format!("the data directory is in use, and the server at {url} could not be reached")
    })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["error"].as_str().unwrap_or("no error message");
        bail!("the server returned {status}: {message}");
    }
    Ok(answer)
}
