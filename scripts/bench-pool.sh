#!/usr/bin/env bash
# Instrumentation overhead of InstrumentedPool against the raw sqlx pool (see
# examples/bench_pool.rs). Usage: scripts/bench-pool.sh [rounds] [seconds-per-round]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example bench_pool --locked
exec target/release/examples/bench_pool "${1:-15}" "${2:-2}"
