//! Listing runs filtered by status or workflow from a large store: fills a
//! fresh sled directory with finished runs, then times pages of 50
//! newest-first runs, printing the first repetition apart because it reads
//! a cold cache. Prints figures and asserts nothing.
//!
//! `cargo bench --bench list_runs` stores 1,000,000 runs; set
//! `TETHER_BENCH_RUNS` to use another count.

use std::time::{Duration, Instant};

use tempfile::TempDir;
use tether::engine::run::{Run, RunStatus, TriggerEvent};
use tether::store::{RunQuery, SledStore, Store};

const WORKFLOWS: [&str; 5] = [
    "order-to-supplier",
    "inventory",
    "prices",
    "tracking",
    "catalog",
];
/// One run in this many fails and the rest succeed. Prime, so failures
/// spread over every workflow.
const FAILED_EVERY: usize = 97;
const PAGE: usize = 50;
/// Runs stored together, sharing one flush.
const FILL_CHUNK: usize = 1_000;
const REPEATS: usize = 200;

fn main() {
    let count: usize = std::env::var("TETHER_BENCH_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let dir = TempDir::new().expect("creating a temporary directory");
    let store = SledStore::open(dir.path()).expect("opening the store");

    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut cursor_target = None;
    // Each run is stored as the engine stores a new one (header, event and
    // index keys), a chunk at a time so that a chunk shares one flush, and
    // then ends.
    for chunk in (0..count).collect::<Vec<_>>().chunks(FILL_CHUNK) {
        let mut runs: Vec<Run> = chunk
            .iter()
            .map(|&n| Run::new(WORKFLOWS[n % WORKFLOWS.len()], TriggerEvent::default()))
            .collect();
        runtime
            .block_on(futures::future::try_join_all(
                runs.iter().map(|run| store.insert_run(run, None)),
            ))
            .expect("storing runs");
        for (&n, run) in chunk.iter().zip(&mut runs) {
            run.status = if n % FAILED_EVERY == 0 {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            };
            store.save_run(run).expect("ending a run");
            if n == count / 2 {
                cursor_target = Some(run.id.clone());
            }
        }
    }
    store.flush_now().expect("flushing");
    println!(
        "stored {count} runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cases = [
        ("status=failed", None, Some(RunStatus::Failed), None),
        ("status=succeeded", None, Some(RunStatus::Succeeded), None),
        (
            "workflow=prices, status=failed",
            Some("prices"),
            Some(RunStatus::Failed),
            None,
        ),
        (
            "status=failed, before=middle",
            None,
            Some(RunStatus::Failed),
            cursor_target,
        ),
        ("workflow=prices", Some("prices"), None, None),
        ("no filter", None, None, None),
    ];
    for (name, workflow, status, before) in cases {
        let query = RunQuery {
            workflow: workflow.map(str::to_string),
            status,
            before,
            limit: PAGE,
            ..RunQuery::default()
        };
        let mut times = Vec::with_capacity(REPEATS);
        let mut listed = 0;
        for _ in 0..REPEATS {
            let started = Instant::now();
            listed = store.list_runs(&query).expect("listing runs").len();
            times.push(started.elapsed());
        }
        let first = times[0];
        times.sort();
        println!(
            "list {PAGE} ({name}): {listed} runs, first {}, median {}, p99 {}, max {}",
            millis(first),
            millis(times[REPEATS / 2]),
            millis(times[REPEATS * 99 / 100]),
            millis(times[REPEATS - 1]),
        );
    }
}

fn millis(time: Duration) -> String {
    format!("{:.3} ms", time.as_secs_f64() * 1000.0)
}
