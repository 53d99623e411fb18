#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md in release mode and prints their
# figures. The load generator is inside each bench binary: keep-alive HTTP
# clients on 127.0.0.1 against an engine in the same process. Run it on an
# otherwise idle machine; figures vary by tens of percent between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench --bench webhook_ingest -- 40000 32
cargo bench --bench webhook_ingest -- 40000 128
cargo bench --bench webhook_ingest -- 40000 128 --body=tests/fixtures/shopify-orders-create.json
cargo bench --bench step_overhead -- 2000
cargo bench --bench end_to_end -- 10000 32
TETHER_BENCH_WORKFLOW_CONCURRENCY=4 cargo bench --bench end_to_end -- 10000 32
cargo bench --bench foreach_overhead -- 10000
cargo bench --bench list_runs
