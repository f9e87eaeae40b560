#!/usr/bin/env bash
# The dashboard's cost next to pg_top and pg_activity (see examples/bench_dashboard.rs).
# Usage: scripts/bench-dashboard.sh [seconds-per-tool]   (as root on Debian, installs the peers)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v pg_top >/dev/null || need+=(pgtop)
command -v pg_activity >/dev/null || need+=(pg-activity)
command -v tmux >/dev/null || need+=(tmux)
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench-dashboard: missing ${need[*]}; run as root to install them" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null
fi
cargo build --release --locked --bin pgvigil --example bench_dashboard
PGVIGIL_BIN="$PWD/target/release/pgvigil" exec target/release/examples/bench_dashboard "${1:-60}"
