//! Engine overhead per journaled step: runs of a workflow with 20 trivial
//! script steps against runs of one with 1, executed one after another in
//! the foreground. The difference divided by 19 is the cost of one more
//! step: journal writes, context building and the script call.
//!
//! `cargo bench --bench step_overhead -- [RUNS]`

mod support;

use std::time::Instant;

use tether::engine::run::TriggerEvent;
use tether::store::CommitMode;
use tether::workflow::Env;

fn workflow(name: &str, steps: usize) -> String {
    let mut text = format!("name: {name}\ntrigger: manual\nsteps:\n");
    for n in 0..steps {
        text.push_str(&format!("  - id: s{n}\n    script: '{n}'\n"));
    }
    text
}

fn main() {
    let runs = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000usize);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!("step_overhead on {}: {runs} runs each", support::machine());
    runtime.block_on(async {
        let one = workflow("one-step", 1);
        let twenty = workflow("twenty-steps", 20);
        let extra = [("one.yaml", one.as_str()), ("twenty.yaml", twenty.as_str())];
        let bench = support::serve(&[], &extra, Env::default(), CommitMode::Group).await;
        let body = serde_json::json!({ "order": 1042, "sku": "00123" });

        let mut per_run = Vec::new();
        for name in ["one-step", "twenty-steps"] {
            let started = Instant::now();
            for _ in 0..runs {
                let run = bench
                    .engine
                    .run_now(name, TriggerEvent::manual(body.clone()))
                    .await
                    .expect("run");
                assert_eq!(run.status, tether::engine::run::RunStatus::Succeeded);
            }
            let micros = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
            println!("  {name:<14} {micros:>9.1} µs per run");
            per_run.push(micros);
        }
        println!(
            "  overhead per journaled step: {:.1} µs",
            (per_run[1] - per_run[0]) / 19.0
        );
    });
}
