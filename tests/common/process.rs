//! Real `tether serve` processes for crash tests: started on a free port of
//! 127.0.0.1, their log kept, and killed with SIGKILL.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time a child gets to log its `listening` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried before giving up on a child that exits at once.
const START_ATTEMPTS: u32 = 5;
/// Log lines quoted in a failure message.
pub const LOG_EXCERPT_LINES: usize = 12;

/// Starts `tether serve` processes on one project and data directory, and
/// keeps the stderr lines of all of them.
pub struct Launcher {
    pub project: PathBuf,
    pub data: PathBuf,
    pub env: Vec<(&'static str, String)>,
    /// Engine log lines, each prefixed with `[engine N]`.
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// A running `tether serve` child. Dropping it kills the child.
pub struct EngineProcess {
    child: Child,
    pub generation: usize,
    pub base_url: String,
}

impl Launcher {
    /// Creates a launcher whose engines get the bundled workflows'
    /// secrets and use `supplier_url` as the supplier.
    pub fn for_shop(
        project: &std::path::Path,
        data: &std::path::Path,
        supplier_url: String,
    ) -> Self {
        let mut env = vec![
            ("SHOPIFY_WEBHOOK_SECRET", super::SHOPIFY_SECRET.to_string()),
            ("SUPPLIER_API_TOKEN", super::SUPPLIER_TOKEN.to_string()),
            ("SUPPLIER_BASE_URL", supplier_url),
        ];
        env.extend(
            super::CONNECTOR_SECRETS
                .iter()
                .map(|(name, value)| (*name, value.to_string())),
        );
        Launcher {
            project: project.to_path_buf(),
            data: data.to_path_buf(),
            env,
            logs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Starts an engine on a free port and waits for its `listening` line.
    /// A child that exits before that is started again, up to
    /// `START_ATTEMPTS` times, because opening the sled directory fails while
    /// another process still has it locked.
    pub async fn start(&self, generation: usize) -> EngineProcess {
        for attempt in 1..=START_ATTEMPTS {
            let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
                .arg("serve")
                .arg("--dir")
                .arg(&self.project)
                .arg("--data")
                .arg(&self.data)
                .args(["--listen", "127.0.0.1:0"])
                .envs(self.env.iter().map(|(name, value)| (name, value)))
                .env("RUST_LOG", "info")
                // Supplier calls must go straight to 127.0.0.1, and reqwest
                // would send them through a proxy set in the environment.
                .env_remove("HTTP_PROXY")
                .env_remove("http_proxy")
                .env_remove("ALL_PROXY")
                .env_remove("all_proxy")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting `tether serve`");
            let stderr = child.stderr.take().expect("stderr is piped");
            let (address_sender, mut address_receiver) = tokio::sync::mpsc::unbounded_channel();
            let logs = Arc::clone(&self.logs);
            // The thread drains stderr until the child dies, so the pipe
            // never fills. It drops the sender at EOF.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = listening_address(&line) {
                        let _ = address_sender.send(address);
                    }
                    logs.lock()
                        .expect("engine log lock")
                        .push(format!("[engine {generation}] {line}"));
                }
            });

            match tokio::time::timeout(START_TIMEOUT, address_receiver.recv()).await {
                Ok(Some(address)) => {
                    return EngineProcess {
                        child,
                        generation,
                        base_url: format!("http://{address}"),
                    };
                }
                Ok(None) => {
                    let status = child.wait().expect("waiting for the engine");
                    println!(
                        "engine {generation} exited with {status} before listening \
                         (start attempt {attempt} of {START_ATTEMPTS})"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "timed out after {START_TIMEOUT:?} waiting for engine {generation} to \
                         log its `listening` line; log:\n{}",
                        self.log_tail(LOG_EXCERPT_LINES)
                    );
                }
            }
        }
        panic!(
            "engine {generation} exited before listening on each of {START_ATTEMPTS} starts; \
             log:\n{}",
            self.log_tail(LOG_EXCERPT_LINES)
        );
    }

    pub fn log_tail(&self, count: usize) -> String {
        let logs = self.logs.lock().expect("engine log lock");
        let first = logs.len().saturating_sub(count);
        logs[first..].join("\n")
    }

    /// Returns the first engine log lines that contain `needle`.
    pub fn lines_mentioning(&self, needle: Option<&str>) -> String {
        let Some(needle) = needle else {
            return String::new();
        };
        let logs = self.logs.lock().expect("engine log lock");
        let lines: Vec<&str> = logs
            .iter()
            .filter(|line| line.contains(needle))
            .take(LOG_EXCERPT_LINES)
            .map(String::as_str)
            .collect();
        lines.join("\n")
    }
}

/// Reads the address from the line the server logs when it binds, such as
/// `INFO tether::web::server: listening address=127.0.0.1:41234`.
fn listening_address(line: &str) -> Option<String> {
    if line.contains("stopped listening") {
        return None;
    }
    let (_, rest) = line.split_once("listening address=")?;
    rest.split_whitespace().next().map(str::to_owned)
}

impl EngineProcess {
    /// Kills the engine with SIGKILL and waits for it to exit, so the next
    /// engine can lock the data directory and no zombie process is left.
    pub fn sigkill(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "engine {} exited by itself with {status} before it was killed",
                self.generation
            );
        }
        self.child.kill().expect("sending SIGKILL to the engine");
        let status = self.child.wait().expect("waiting for the killed engine");
        assert_eq!(
            status.signal(),
            Some(9),
            "engine {} ended with {status} instead of SIGKILL",
            self.generation
        );
    }

    pub fn stop(mut self) {
        self.sigkill();
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
