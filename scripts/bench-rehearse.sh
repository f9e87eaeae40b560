#!/usr/bin/env bash
# `pgvigil migrate rehearse` with its sampler (a reading of the migration's backend every
# 100 ms: locks, index build phases, wait events) against the same rehearsal without readings
# (--sample-every 0), in one run: production has the reference migrations 1-3 applied (their
# files, their SHA-384 in the ledger) and the demo's 2,000 documents with 3072-dimension
# embeddings; its backup is taken and verified once; each rehearsal restores it on a running
# dev server and applies the pending set: the reference HNSW migration plus a fixture that
# holds ACCESS EXCLUSIVE on documents for 2 s. Printed: medians of the migrations' total
# duration with and without readings and their ratio (goal: within 5 %), and the measured
# hold of the 2 s fixture against the truth (goal: within 200 ms).
# Release build. Usage: scripts/bench-rehearse.sh [runs] (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
# shellcheck source=lib/two-clusters.sh
source scripts/lib/two-clusters.sh
{
  echo "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);"
  for f in $(ls migrations/*.sql | sort | head -n 3); do
    cat "$f"; echo ";"
    base=$(basename "$f" .sql); version=${base%%_*}; desc=${base#*_}; desc=${desc//_/ }
    sum=$(sha384sum "$f" | cut -d' ' -f1)
    echo "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($version, '$desc', true, '\\x$sum', 1);"
  done
  echo "INSERT INTO document_sources (doc_type, source_name)
      SELECT t, 'source-' || s FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s;
    INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
      SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'source-' || (i % 8), 'docs/' || i || '.md',
             'Document ' || i,
             (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072)
        FROM generate_series(0, 1999) i;"
} | psql -q -d bench -v ON_ERROR_STOP=1
psql -q -d bench -c ANALYZE
export PGVIGIL_STATE_DIR="$WORK/state"
manifest=$("$PGVIGIL" backup create --output "$WORK/backup" | tail -n 1)
"$PGVIGIL" --dev-url "$DEV_URL" backup verify "$manifest" >/dev/null

mkdir "$WORK/migrations"
cp migrations/*.sql "$WORK/migrations/"
printf -- '-- Holds ACCESS EXCLUSIVE on documents for 2 s.\nLOCK TABLE documents IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(2);\n' \
  > "$WORK/migrations/20261201000001_hold_documents.sql"

# The migrations' total duration and the fixture's hold, from the JSON report.
figures() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["verdict"] != "failed", r
total = sum(m["duration_ms"] for m in r["migrations"])
hold = [l["held_ms"] for m in r["migrations"] if m["version"] == 20261201000001
        for l in m["locks"] if l["relation"] == "documents"]
print(total, hold[0] if hold else "none")'
}
with=(); without=(); holds=()
for i in $(seq "$RUNS"); do
  for mode in with without; do
    if [ "$mode" = with ]; then s=100ms; else s=0; fi
    read -r total hold < <("$PGVIGIL" --dev-url "$DEV_URL" migrate rehearse --from "$manifest" \
      --migrations "$WORK/migrations" --busy-interval 1s --sample-every "$s" --json | figures)
    if [ "$mode" = with ]; then with+=("$total"); holds+=("$hold"); else without+=("$total"); fi
  done
done
w=$(printf '%s\n' "${with[@]}" | median)
wo=$(printf '%s\n' "${without[@]}" | median)
h=$(printf '%s\n' "${holds[@]}" | median)
printf 'rehearsal of the reference HNSW migration + a 2 s ACCESS EXCLUSIVE fixture on 2,000 documents, %s runs each\n' "$RUNS"
printf 'migrations applied with the sampler (every 100 ms):  median %.0f ms\n' "$w"
printf 'migrations applied without it (--sample-every 0):   median %.0f ms\n' "$wo"
printf 'ratio: %.3f (goal: within 5 %%, at most 1.05)\n' "$(echo "$w / $wo" | bc -l)"
printf 'measured hold of the 2 s fixture: median %s ms, %s ms from the truth (goal: within 200 ms); every run: %s\n' \
  "$h" "$(echo "$h - 2000" | bc | tr -d -)" "${holds[*]}"
