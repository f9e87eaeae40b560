#!/usr/bin/env bash
# Wall time and statement count of `pgvigil check` on the reference schema (see
# examples/bench_check.rs). Usage: scripts/bench-check.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example bench_check --locked
exec target/release/examples/bench_check "${1:-11}"
