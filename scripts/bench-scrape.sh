#!/bin/sh
# Median cost of reading hostile /metrics bodies (see examples/bench_scrape.rs). Release build.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --example bench_scrape
exec target/release/examples/bench_scrape "${1:-21}"
