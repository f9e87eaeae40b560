#!/usr/bin/env bash
# Load on `pgvigil serve` with wrk: requests/s, p50/p99 latency and the readiness statements the
# server saw, for /health/live (baseline), /health/ready and /metrics; then the HTTP bounds under
# hostile clients (RSS with 600 clients sending 380 KB heads, liveness with 1,100 idle sockets,
# SIGTERM with half-sent requests), medians printed (see examples/bench_serve.rs). Usage: scripts/bench-serve.sh [seconds-per-endpoint] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench-serve: wrk missing: run scripts/setup-postgres.sh as root" >&2; exit 1; }
cargo build --release --locked --bin pgvigil --example bench_serve
exec target/release/examples/bench_serve "${1:-10}" "${2:-50}"
