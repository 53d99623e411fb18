//! Engine overhead per `foreach` item: one run over 10,000 items whose
//! single nested step is a trivial script, against the same run over 10
//! items. Each item journals its step and is passed through the `steps`
//! scope, so this is the cost a large catalog loop pays per item.
//!
//! `cargo bench --bench foreach_overhead -- [ITEMS]`

mod support;

use std::time::Instant;

use tether::engine::run::{RunStatus, TriggerEvent};
use tether::store::CommitMode;
use tether::workflow::Env;

const LOOP: &str = "name: loop\ntrigger: manual\nsteps:\n  - id: each\n    foreach: \"${{ trigger.body.items }}\"\n    concurrency: 8\n    steps:\n      - id: touch\n        script: 'item + 1'\n";

fn main() {
    let items = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000usize);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!("foreach_overhead on {}: {items} items", support::machine());
    runtime.block_on(async {
        let bench = support::serve(
            &[],
            &[("loop.yaml", LOOP)],
            Env::default(),
            CommitMode::Group,
        )
        .await;
        let mut per_run = Vec::new();
        for count in [10, items] {
            let body = serde_json::json!({ "items": (0..count).collect::<Vec<usize>>() });
            let started = Instant::now();
            let run = bench
                .engine
                .run_now("loop", TriggerEvent::manual(body))
                .await
                .expect("run");
            let elapsed = started.elapsed();
            assert_eq!(run.status, RunStatus::Succeeded);
            println!(
                "  {count:>6} items: {:>8.1} ms",
                elapsed.as_secs_f64() * 1e3
            );
            per_run.push((count, elapsed.as_secs_f64()));
        }
        let (small, large) = (per_run[0], per_run[1]);
        let per_item = (large.1 - small.1) / (large.0 - small.0) as f64 * 1e6;
        println!("  overhead per item: {per_item:.1} µs");
    });
}
