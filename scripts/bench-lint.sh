#!/usr/bin/env bash
# Median time of `pgvigil migrate lint` on the reference migrations, with and without the
# catalog reads, in one run (see examples/bench_lint.rs). Usage: scripts/bench-lint.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example bench_lint --locked
exec target/release/examples/bench_lint "${1:-21}"
