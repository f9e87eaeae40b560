#!/usr/bin/env bash
# `pgvigil backup create` + `pgvigil backup verify` of the demo's data (2,000 documents with
# 3072-dimension embeddings) against plain `pg_dump -Fd -j` + `pg_restore -j` of the same
# database into a fresh database, in one run: medians of RUNS runs each and their ratio
# (goal: at most 1.5x). Release build. Usage: scripts/bench-backup.sh [runs] (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
JOBS="$(nproc)"
BIN=/usr/lib/postgresql/15/bin
flock /tmp/cargo.lock cargo build --release --locked --bin pgvigil
PGVIGIL="$PWD/target/release/pgvigil"

WORK="$(mktemp -d)"
chmod 700 "$WORK"
cleanup() { "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); chown postgres "$WORK"; else RUN=(); fi
"${RUN[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
"${RUN[@]}" "$BIN/pg_ctl" -D "$WORK/data" -o "-p $PORT -k $WORK -c listen_addresses=''" -l "$WORK/log" -w start >/dev/null
export PGHOST="$WORK" PGPORT="$PORT" PGUSER=postgres
psql -q -d postgres -c 'CREATE DATABASE bench'
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
export DATABASE_URL="postgres://postgres@localhost/bench?host=$WORK&port=$PORT"
# verify restores into a private cluster it starts (its default): that start is part of its time.
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
plain=(); ours=()
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/plain"; psql -q -d postgres -c 'DROP DATABASE IF EXISTS restored' -c 'CREATE DATABASE restored'
  t0=$(now)
  "$BIN/pg_dump" -Fd -j "$JOBS" -f "$WORK/plain" -d bench
  "$BIN/pg_restore" -j "$JOBS" --no-owner --no-privileges -d restored "$WORK/plain"
  plain+=("$(echo "$(now) - $t0" | bc)")
  rm -rf "$WORK/ours"
  t0=$(now)
  manifest=$(PGVIGIL_STATE_DIR="$WORK/state" "$PGVIGIL" backup create --output "$WORK/ours" --jobs "$JOBS" | tail -n 1)
  PGVIGIL_STATE_DIR="$WORK/state" "$PGVIGIL" backup verify "$manifest" --jobs "$JOBS" >/dev/null
  ours+=("$(echo "$(now) - $t0" | bc)")
done
p=$(printf '%s\n' "${plain[@]}" | median)
o=$(printf '%s\n' "${ours[@]}" | median)
printf 'pg_dump -Fd -j%s + pg_restore -j%s: median %.2f s over %s runs\n' "$JOBS" "$JOBS" "$p" "$RUNS"
printf 'pgvigil backup create + verify:     median %.2f s over %s runs\n' "$o" "$RUNS"
printf 'ratio: %.2fx (goal: at most 1.5x)\n' "$(echo "$o / $p" | bc -l)"
