# Sourced by the window-step benchmarks (bench-backup.sh, bench-rehearse.sh): a release build
# of pgvigil, and two throwaway PostgreSQL 15 clusters on Unix sockets in a private directory,
# "production" (PGHOST/PGPORT point at it, database `bench` created) and a running dev server
# (DEV_URL), both stopped and removed on exit.
BIN=/usr/lib/postgresql/15/bin
flock /tmp/cargo.lock cargo build --release --locked --bin pgvigil
PGVIGIL="$PWD/target/release/pgvigil"

WORK="$(mktemp -d)"
chmod 700 "$WORK"
cleanup() {
  "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  "$BIN/pg_ctl" -D "$WORK/dev" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); chown postgres "$WORK"; else RUN=(); fi
"${RUN[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
"${RUN[@]}" "$BIN/pg_ctl" -D "$WORK/data" -o "-p $PORT -k $WORK -c listen_addresses=''" -l "$WORK/log" -w start >/dev/null
DEV_PORT=$((PORT + 1))
"${RUN[@]}" "$BIN/initdb" -D "$WORK/dev" -U postgres --auth=trust >/dev/null
"${RUN[@]}" "$BIN/pg_ctl" -D "$WORK/dev" -o "-p $DEV_PORT -k $WORK -c listen_addresses=''" -l "$WORK/dev.log" -w start >/dev/null
DEV_URL="postgres://postgres@localhost/postgres?host=$WORK&port=$DEV_PORT"
export PGHOST="$WORK" PGPORT="$PORT" PGUSER=postgres
psql -q -d postgres -c 'CREATE DATABASE bench'
export DATABASE_URL="postgres://postgres@localhost/bench?host=$WORK&port=$PORT"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
