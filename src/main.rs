//! The `tether` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tether::engine::run::{Run, RunStatus};
use tether::expr::{Limits, ScriptEngine};
use tether::store::{RunQuery, SledStore, Store};
use tether::web::WebOptions;
use tether::web::auth::TOKEN_ENV;
use tether::workflow::{Env, load_paths};

mod cli;
use cli::recovery::{self, RetryTarget};

/// Stack size of runtime threads, which also run scripts.
const SCRIPT_STACK_SIZE: usize = 64 * 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "tether",
    version,
    about = "Run YAML workflows durably: webhooks, scripts and connector calls."
)]
struct Cli {
    /// Directory holding `workflows/` and `connectors/`.
    #[arg(long, global = true, default_value = ".", env = "TETHER_DIR")]
    dir: PathBuf,
    /// Directory of the embedded store (created when missing).
    #[arg(long, global = true, default_value = "./data", env = "TETHER_DATA")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks and the API, and run workflows until stopped.
    Serve {
        /// Address and port to listen on. An address other than loopback
        /// needs TETHER_API_TOKEN, which the API, pages and metrics then require.
        #[arg(long, default_value = "127.0.0.1:8080", env = "TETHER_LISTEN")]
        listen: SocketAddr,
        /// On SIGTERM or SIGINT, time steps in flight get to finish, such as `30s`.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Finished runs older than this are deleted in the background, such
        /// as `30d` or `12h`; `0s` keeps every run.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        retain: std::time::Duration,
    },
    /// Validate workflow and connector files; exit 1 on any problem.
    Check {
        /// Files or directories to check (default: the `--dir` directory).
        paths: Vec<PathBuf>,
    },
    /// Run a workflow once in the foreground and print the run as JSON; exit 1 unless it succeeds or is skipped.
    Run {
        workflow: String,
        /// JSON file given to the run as `trigger.body`.
        #[arg(long)]
        input: Option<PathBuf>,
        /// API of a running server, used when another process holds the data directory.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TETHER_SERVER")]
        server: String,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        workflow: Option<String>,
        /// queued, running, waiting, succeeded, failed, skipped or cancelled.
        #[arg(long)]
        status: Option<RunStatus>,
        /// Number of runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// API of a running server, used when another process holds the data directory.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TETHER_SERVER")]
        server: String,
    },
    /// Retry a failed or cancelled run from its failed step, or replay it from the start as a new run.
    Retry {
        /// The run to retry; omit it to retry every run matching --workflow and --status.
        run_id: Option<String>,
        /// Start a new run with the same trigger event instead.
        #[arg(long)]
        from_start: bool,
        /// With --status: retry every matching run of this workflow.
        #[arg(long, requires = "status")]
        workflow: Option<String>,
        /// failed or cancelled, with --workflow.
        #[arg(long, requires = "workflow")]
        status: Option<RunStatus>,
        /// API of a running server, used when another process holds the data directory.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TETHER_SERVER")]
        server: String,
    },
    /// Cancel a queued, running or waiting run; a call in flight is left to finish.
    Cancel {
        run_id: String,
        /// API of a running server, used when another process holds the data directory.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TETHER_SERVER")]
        server: String,
    },
    /// Print the next fire times of a schedule workflow, in UTC and in its time zone.
    Next {
        workflow: String,
        /// Time to count from, in RFC 3339 such as 2025-03-08T06:00:00Z (default: now).
        #[arg(long, value_parser = cli::schedule::parse_from)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Number of fire times to print.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
        count: u16,
    },
    /// Print one run with its steps as JSON.
    Show {
        run_id: String,
        /// API of a running server, used when another process holds the data directory.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TETHER_SERVER")]
        server: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Check { .. } | Command::Runs { .. } | Command::Show { .. } | Command::Next { .. }
    );
    init_logging(if quiet { "warn" } else { "info" });

    // Rhai walks nested values recursively, so scripts run on threads with
    // a large stack; deeply nested data then hits the sandbox's size limits
    // before it can overflow the stack.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(SCRIPT_STACK_SIZE)
        .build()
        .expect("the tokio runtime starts on any supported OS");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            grace,
            retain,
        } => serve(&cli.dir, &cli.data, listen, grace, retain).await,
        Command::Retry {
            run_id,
            from_start,
            workflow,
            status,
            server,
        } => {
            let target = match (run_id, workflow, status) {
                (Some(run_id), None, None) => RetryTarget::Run { run_id, from_start },
                (None, Some(workflow), Some(status)) => RetryTarget::Matching { workflow, status },
                _ => bail!("give a RUN_ID, or --workflow NAME --status failed, not both"),
            };
            recovery::retry(&cli.dir, &cli.data, &server, target).await
        }
        Command::Cancel { run_id, server } => {
            recovery::cancel(&cli.dir, &cli.data, &server, &run_id).await
        }
        Command::Check { paths } => Ok(check(&cli.dir, paths)),
        Command::Run {
            workflow,
            input,
            server,
        } => cli::run::run_once(&cli.dir, &cli.data, &server, &workflow, input.as_deref()).await,
        Command::Runs {
            workflow,
            status,
            limit,
            json,
            server,
        } => {
            let query = RunQuery {
                workflow,
                status,
                before: None,
                limit,
                ..RunQuery::default()
            };
            list_runs(&cli.data, &server, &query, json).await
        }
        Command::Show { run_id, server } => show_run(&cli.data, &server, &run_id).await,
        Command::Next {
            workflow,
            from,
            count,
        } => {
            let from = from.unwrap_or_else(chrono::Utc::now);
            cli::schedule::next(&cli.dir, &workflow, from, usize::from(count))
        }
    }
}

async fn serve(
    dir: &Path,
    data: &Path,
    listen: SocketAddr,
    grace: std::time::Duration,
    retain: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let options = web_options(listen, std::env::var(TOKEN_ENV).ok())?;
    let engine = tether::app::open(dir, data, &Env::from_process())?;
    engine.start()?;
    if !retain.is_zero() {
        tether::engine::retention::start(&engine, retain);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("could not listen on {listen}; is the port in use? pick another with --listen")
        })?;

    // The listener stays open during the grace period, so new webhooks get
    // 503 instead of a refused connection while steps in flight finish.
    let (stop_listening, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Arc::clone(&engine);
    let server = tokio::spawn(async move {
        let stop = async {
            let _ = stopped.await;
        };
        tether::web::server::serve_with(listener, serving, &options, stop).await
    });
    tokio::spawn(tether::app::watch(engine.clone(), dir.to_path_buf()));
    shutdown_signal().await;
    engine.shutdown(grace).await;
    let _ = stop_listening.send(());
    server.await??;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Decides access control: off on a loopback address, and on elsewhere,
/// where a missing token is an error.
fn web_options(listen: SocketAddr, token: Option<String>) -> anyhow::Result<WebOptions> {
    let token = token.filter(|token| !token.trim().is_empty());
    if listen.ip().is_loopback() {
        if token.is_some() {
            tracing::info!(%listen, "{TOKEN_ENV} is set but unused: a loopback listener needs no token");
        }
        return Ok(WebOptions::default());
    }
    match token {
        Some(token) => Ok(WebOptions {
            api_token: Some(token),
        }),
        None => anyhow::bail!(
            "listening on {listen}, which is not a loopback address, requires a token: set {TOKEN_ENV} to a long random value, or listen on 127.0.0.1"
        ),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler succeeds on unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}

fn check(dir: &Path, paths: Vec<PathBuf>) -> ExitCode {
    tether::app::install_tls_provider();
    let paths = if paths.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        paths
    };
    let scripts = ScriptEngine::new(Limits::default());
    let registry = load_paths(&paths, dir, &scripts, &Env::from_process());
    for problem in &registry.problems {
        println!("{problem}");
    }
    if registry.problems.is_empty() {
        println!(
            "ok: {} workflows, {} connectors",
            registry.workflows.len(),
            registry.connectors.len()
        );
        cli::schedule::print_upcoming(&registry, chrono::Utc::now());
        ExitCode::SUCCESS
    } else {
        println!("{} problems", registry.problems.len());
        ExitCode::FAILURE
    }
}

/// Opens the store read-write, or `None` when another process holds it.
fn open_store(data: &Path) -> Option<SledStore> {
    if !data.exists() {
        return None;
    }
    SledStore::open(data).ok()
}

async fn list_runs(
    data: &Path,
    server: &str,
    query: &RunQuery,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runs: Vec<serde_json::Value> = match open_store(data) {
        Some(store) => store
            .list_runs(query)?
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?,
        None => {
            let mut url = reqwest::Url::parse(server)
                .with_context(|| format!("invalid --server `{server}`"))?;
            url.set_path("/api/runs");
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("limit", &query.limit.to_string());
                if let Some(workflow) = &query.workflow {
                    pairs.append_pair("workflow", workflow);
                }
                if let Some(status) = query.status {
                    pairs.append_pair("status", status.as_str());
                }
            }
            let page = fetch_json(url.as_str(), data).await?;
            page["runs"].as_array().cloned().unwrap_or_default()
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<24}  {:<9}  {:<25}  error",
        "id", "workflow", "status", "created"
    );
    for run in &runs {
        let text = |key: &str| run[key].as_str().unwrap_or("").to_string();
        println!(
            "{:<36}  {:<24}  {:<9}  {:<25}  {}",
            text("id"),
            text("workflow"),
            text("status"),
            text("created_at"),
            text("error").lines().next().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_run(data: &Path, server: &str, run_id: &str) -> anyhow::Result<ExitCode> {
    let run: Option<Run> = match open_store(data) {
        Some(store) => store.load_run(run_id)?,
        None => {
            let url = format!("{}/api/runs/{run_id}", server.trim_end_matches('/'));
            let value = fetch_json(&url, data).await?;
            if value.get("error").is_some() {
                None
            } else {
                Some(serde_json::from_value(value)?)
            }
        }
    };
    match run {
        Some(run) => {
            println!("{}", serde_json::to_string_pretty(&run)?);
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("run `{run_id}` not found"),
    }
}

async fn fetch_json(url: &str, data: &Path) -> anyhow::Result<serde_json::Value> {
    tether::app::install_tls_provider();
    let mut request = reqwest::Client::new().get(url);
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!(
            "could not open {} (missing, or held by a running server) and could not reach the server at {url}",
            data.display()
        )
    })?;
    Ok(response.json().await?)
}
