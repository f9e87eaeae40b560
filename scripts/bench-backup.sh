#!/usr/bin/env bash
# `pgvigil backup create` + `pgvigil backup verify` of the demo's data (2,000 documents with
# 3072-dimension embeddings) against plain `pg_dump -Fd -j` + `pg_restore -j` of the same
# database into a fresh database, in one run: medians of RUNS runs each and their ratio
# (goal: at most 1.5x). pgvigil's verify restores once on a dev server already running (a
# second cluster, as DEV_DATABASE_URL names in a maintenance window) and once on the private
# cluster it starts by default (that start is part of its time). pgvigil dumps at gzip level 1
# (its --compress default); plain pg_dump is timed at its own default (6) and at level 1, so
# both the ratio the issue asks for and the cost of the figures alone are printed.
# Release build. Usage: scripts/bench-backup.sh [runs] (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
JOBS="$(nproc)"
# shellcheck source=lib/two-clusters.sh
source scripts/lib/two-clusters.sh
psql -q -d bench -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION vector;
CREATE TYPE doc_type AS ENUM ('guide', 'reference', 'tutorial', 'api', 'changelog');
CREATE TABLE documents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_type doc_type NOT NULL,
  doc_path text NOT NULL, content text NOT NULL, metadata jsonb NOT NULL DEFAULT '{}',
  embedding vector(3072), created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX documents_created_at_idx ON documents (created_at);
INSERT INTO documents (doc_type, doc_path, content, metadata, embedding)
  SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'docs/' || i || '.md', 'Document ' || i,
         jsonb_build_object('lang', 'en'),
         (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072)
    FROM generate_series(0, 1999) i;
SQL
plain=(); plain1=(); ours=(); ours_private=()
for i in $(seq "$RUNS"); do
  for z in default 1; do
    rm -rf "$WORK/plain"; psql -q -d postgres -c 'DROP DATABASE IF EXISTS restored' -c 'CREATE DATABASE restored'
    if [ "$z" = default ]; then zarg=(); else zarg=(-Z "$z"); fi
    t0=$(now)
    "$BIN/pg_dump" -Fd -j "$JOBS" "${zarg[@]}" -f "$WORK/plain" -d bench
    "$BIN/pg_restore" -j "$JOBS" --no-owner --no-privileges -d restored "$WORK/plain"
    t=$(echo "$(now) - $t0" | bc)
    if [ "$z" = default ]; then plain+=("$t"); else plain1+=("$t"); fi
  done
  for dev in running private; do
    rm -rf "$WORK/ours"
    if [ "$dev" = running ]; then devarg=(--dev-url "$DEV_URL"); else devarg=(); fi
    t0=$(now)
    manifest=$(PGVIGIL_STATE_DIR="$WORK/state" "$PGVIGIL" backup create --output "$WORK/ours" --jobs "$JOBS" | tail -n 1)
    PGVIGIL_STATE_DIR="$WORK/state" "$PGVIGIL" "${devarg[@]}" backup verify "$manifest" --jobs "$JOBS" >/dev/null
    t=$(echo "$(now) - $t0" | bc)
    if [ "$dev" = running ]; then ours+=("$t"); else ours_private+=("$t"); fi
  done
done
p=$(printf '%s\n' "${plain[@]}" | median)
p1=$(printf '%s\n' "${plain1[@]}" | median)
o=$(printf '%s\n' "${ours[@]}" | median)
op=$(printf '%s\n' "${ours_private[@]}" | median)
printf 'pg_dump -Fd -j%s + pg_restore -j%s (gzip 6, its default): median %.2f s over %s runs\n' "$JOBS" "$JOBS" "$p" "$RUNS"
printf 'pg_dump -Fd -j%s -Z1 + pg_restore -j%s (gzip 1):          median %.2f s\n' "$JOBS" "$JOBS" "$p1"
printf 'pgvigil backup create + verify on a running dev server:     median %.2f s\n' "$o"
printf 'pgvigil backup create + verify on its private cluster:      median %.2f s\n' "$op"
printf 'ratio against plain (its default):  %.2fx running dev server, %.2fx private cluster (goal: at most 1.5x)\n' "$(echo "$o / $p" | bc -l)" "$(echo "$op / $p" | bc -l)"
printf 'ratio against plain at gzip 1:      %.2fx running dev server, %.2fx private cluster (the figures, checks and restore comparison alone)\n' "$(echo "$o / $p1" | bc -l)" "$(echo "$op / $p1" | bc -l)"
