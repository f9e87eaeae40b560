#!/usr/bin/env bash
# setup-postgres.sh - prepare a Debian 12 (bookworm) machine to run private
# PostgreSQL 15 test clusters with the pgvector extension.
#
# What it does (idempotent; each step is skipped when already satisfied):
#   1. Installs PostgreSQL 15 server binaries + server dev headers (needed to
#      build extensions) and a few tools the test suite needs (tmux for the
#      end-to-end tests, openssl for the TLS tests' certificates). The same
#      binaries are pgvigil's private dev database, and pg_dump 15 (package
#      postgresql-client-15) copies production's schema into it. See
#      REQUIRED_PACKAGES below.
#   2. Builds and installs pgvector for PostgreSQL 15. Debian 12 has no
#      pgvector binary package, so we fetch the *source* package from Debian
#      trixie (0.8.x) via a private, source-only apt configuration that never
#      touches the machine's own apt sources or package lists, and build the
#      upstream tarball with PGXS.
#   3. Always verifies the result: initdb's a throwaway cluster in a temp dir,
#      starts it on a unix socket only (no TCP), runs CREATE EXTENSION vector
#      plus a distance query, prints the pgvector version, then tears the
#      cluster down again. When everything is already installed, the whole
#      script is a fast no-op apart from this check (a couple of seconds).
#
# Installing requires root (or sudo). As a non-root user the script only
# checks and verifies, and fails with a clear message if something is missing.
#
# Usage: scripts/setup-postgres.sh        (as root, or: sudo scripts/setup-postgres.sh)
#
# Environment (optional):
#   DEBIAN_MIRROR  archive URI used for the trixie source package, overriding
#                  the one read from the machine's apt sources.

set -euo pipefail

readonly PG_MAJOR=15
readonly PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
readonly PG_CONFIG="${PG_BIN}/pg_config"
# Debian suite we take the pgvector source package from (bookworm has none).
readonly PGVECTOR_SUITE=trixie
readonly ARCHIVE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Packages the test environment needs. Add more here; each one is installed
# if dpkg does not report it as installed. make/gcc are needed to build
# pgvector (postgresql-server-dev-15 pulls in clang/llvm for JIT bitcode but
# not the C toolchain itself).
# prometheus (with promtool) scrapes `pgvigil serve` in the tests and checks the alert rules;
# pgbouncer is the pooler the dashboard reads; wrk is the HTTP load generator of
# scripts/bench-serve.sh; groff-base renders `pgvigil man` in tests/completions.rs. Their
# packages start system services on install: the tests run their own private instances, so
# install them with services held back (policy-rc.d).
REQUIRED_PACKAGES="postgresql-${PG_MAJOR} postgresql-client-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} make gcc tmux openssl prometheus pgbouncer wrk groff-base"

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

log() { printf 'setup-postgres: %s\n' "$*"; }
warn() { printf 'setup-postgres: WARNING: %s\n' "$*" >&2; }
die() { printf 'setup-postgres: ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# --- temp dirs / cleanup ------------------------------------------------------

CLEANUP_DIRS=()
VERIFY_DATA_DIR=""   # set while the throwaway cluster may be running

cleanup() {
    local rc=$?
    if [[ -n $VERIFY_DATA_DIR && -f $VERIFY_DATA_DIR/postmaster.pid ]]; then
        as_pg_user "$PG_BIN/pg_ctl" -D "$VERIFY_DATA_DIR" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    local d
    for d in "${CLEANUP_DIRS[@]}"; do
        [[ -n $d && -d $d ]] && rm -rf -- "$d"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# make_temp_dir VAR: create a temp dir (removed on exit) and store its path in
# VAR. (Not used via $(...) so the cleanup list is updated in this shell.)
make_temp_dir() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/setup-postgres.XXXXXXXX")
    CLEANUP_DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

# Run a PostgreSQL server-side command. As root the server refuses to run, so
# use the 'postgres' system user; cd to / first so that user is not left in a
# cwd it cannot read (initdb/pg_ctl complain otherwise).
as_pg_user() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# --- step 1: packages ----------------------------------------------------------

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

server_headers_present() {
    [[ -x $PG_CONFIG ]] || return 1
    local inc
    inc=$("$PG_CONFIG" --includedir-server 2>/dev/null) || return 1
    [[ -f $inc/postgres.h ]]
}

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "running apt-get update"
        apt-get -q update
        APT_UPDATED=1
    fi
}

missing_packages() {
    local p missing=()
    for p in $REQUIRED_PACKAGES; do
        pkg_installed "$p" || missing+=("$p")
    done
    # Also trust the files over dpkg's view: if the binaries/headers are gone
    # the packages need (re)installing even if dpkg thinks they are there.
    if [[ ! -x $PG_BIN/initdb ]] && [[ " ${missing[*]} " != *" postgresql-${PG_MAJOR} "* ]]; then
        missing+=("postgresql-${PG_MAJOR}")
    fi
    if ! server_headers_present && [[ " ${missing[*]} " != *" postgresql-server-dev-${PG_MAJOR} "* ]]; then
        missing+=("postgresql-server-dev-${PG_MAJOR}")
    fi
    printf '%s\n' "${missing[*]}"
}

# --- step 2: pgvector ------------------------------------------------------------

pg_pkglibdir() {
    if [[ -x $PG_CONFIG ]]; then
        "$PG_CONFIG" --pkglibdir
    else
        printf '%s\n' "/usr/lib/postgresql/${PG_MAJOR}/lib"
    fi
}

pgvector_installed() {
    [[ -f /usr/share/postgresql/${PG_MAJOR}/extension/vector.control ]] &&
        [[ -f $(pg_pkglibdir)/vector.so ]]
}

# Print the archive URI(s) of the machine's main (non-security) Debian entry,
# so we use the same mirror/proxy the machine is configured for.
debian_archive_uris() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$DEBIAN_MIRROR"
        return
    fi
    local uris=""
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        # deb822: paragraph mode, first enabled stanza that is not security.
        uris=$(awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[[:space:]]*#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[[:space:]]*/, "", val); sub(/[[:space:]]+$/, "", val)
                    if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                if (uris != "" && enabled != "no" && suites !~ /-security/ && uris !~ /security/) {
                    print uris; exit
                }
            }' /etc/apt/sources.list.d/debian.sources)
    elif [[ -f /etc/apt/sources.list ]]; then
        # one-line format: deb [options] URI suite components...
        uris=$(awk '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                uri = $i; suite = $(i + 1)
                if (uri != "" && uri !~ /security/ && suite !~ /-security/) { print uri; exit }
            }' /etc/apt/sources.list)
    fi
    [[ -n $uris ]] || die "could not find a Debian archive URI in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; set DEBIAN_MIRROR=http://<mirror>/debian"
    printf '%s\n' "$uris"
}

# apt-get restricted to our private, source-only configuration: our own
# sources file, no sources.list.d, private lists + cache dirs. The machine's
# /var/lib/apt/lists and /var/cache/apt are not touched.
APT_PRIVATE_DIR=""
apt_private() {
    apt-get -q \
        -o Dir::Etc::SourceList="$APT_PRIVATE_DIR/pgvector-src.sources" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$APT_PRIVATE_DIR/lists" \
        -o Dir::Cache="$APT_PRIVATE_DIR/cache" \
        -o Dir::Cache::pkgcache= \
        -o Dir::Cache::srcpkgcache= \
        "$@"
}

# $1 = signed | trusted
write_private_sources() {
    local uris=$1 mode=$2
    # NB: the file name must end in .sources for apt to parse it as deb822.
    {
        printf 'Types: deb-src\n'
        printf 'URIs: %s\n' "$uris"
        printf 'Suites: %s\n' "$PGVECTOR_SUITE"
        printf 'Components: main\n'
        if [[ $mode == signed ]]; then
            printf 'Signed-By: %s\n' "$ARCHIVE_KEYRING"
        else
            printf 'Trusted: yes\n'
        fi
    } >"$APT_PRIVATE_DIR/pgvector-src.sources"
}

# Run the private 'apt-get update'; returns 0 on success, 2 on a signature
# problem, 1 on any other failure.
private_update() {
    local out=$APT_PRIVATE_DIR/update.log
    # --error-on=any: fail on download errors too (apt otherwise only warns).
    if apt_private --error-on=any update >"$out" 2>&1; then
        return 0
    fi
    cat "$out" >&2
    if grep -Eqi 'NO_PUBKEY|EXPKEYSIG|KEYEXPIRED|REVKEYSIG|BADSIG|not signed|GPG error|signature' "$out"; then
        return 2
    fi
    return 1
}

install_pgvector() {
    local work uris rc=0
    make_temp_dir work
    # apt downloads as the unprivileged _apt user; let it traverse our dirs
    # (otherwise apt falls back to downloading unsandboxed as root, with a warning).
    chmod 755 "$work"
    APT_PRIVATE_DIR=$work/apt
    mkdir -p "$APT_PRIVATE_DIR/lists/partial" "$APT_PRIVATE_DIR/cache/archives/partial" "$work/download"
    if getent passwd _apt >/dev/null; then
        chown _apt "$work/download"
    fi

    uris=$(debian_archive_uris)
    log "fetching pgvector source package from Debian $PGVECTOR_SUITE ($uris)"

    write_private_sources "$uris" signed
    private_update || rc=$?
    if [[ $rc -eq 2 ]]; then
        # Older bookworm installs ship a debian-archive-keyring without the
        # trixie archive keys (added in 2023.3+deb12u1). Upgrading the keyring
        # from the machine's own bookworm sources is the safe fix; try that first.
        warn "trixie Release signature did not verify with $ARCHIVE_KEYRING; upgrading debian-archive-keyring"
        apt_update_once
        apt-get -q install -y --only-upgrade debian-archive-keyring
        rc=0
        private_update || rc=$?
    fi
    if [[ $rc -eq 2 ]]; then
        # Last resort: mark only this private, deb-src-only list as trusted.
        # It is used for nothing but downloading the pgvector source package
        # in this run (the file lives in a temp dir and is deleted on exit),
        # it is never seen by the machine's normal apt, and apt still checks
        # the downloaded files against the hashes in the Sources index, so the
        # exposure is limited to the mirror connection itself.
        warn "still cannot verify trixie signatures; falling back to 'Trusted: yes' for the private source-only list"
        write_private_sources "$uris" trusted
        rc=0
        private_update || rc=$?
    fi
    [[ $rc -eq 0 ]] || die "apt-get update of the private $PGVECTOR_SUITE deb-src list failed (see output above)"

    (cd "$work/download" && apt_private source --download-only pgvector) ||
        die "apt-get source --download-only pgvector failed"

    local orig
    orig=$(find "$work/download" -maxdepth 1 -name 'pgvector_*.orig.tar.*' ! -name '*.asc' | head -n 1)
    [[ -n $orig ]] || die "no pgvector_*.orig.tar.* found in the downloaded source package"
    log "building $(basename "$orig")"

    mkdir -p "$work/src"
    tar -xf "$orig" -C "$work/src" --strip-components=1
    # OPTFLAGS= : pgvector defaults to -march=native; build portable code like
    # Debian does, so the result also works if this machine image is moved to
    # a different CPU.
    make -C "$work/src" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS= >"$work/build.log" 2>&1 || {
        tail -n 50 "$work/build.log" >&2
        die "building pgvector failed"
    }
    make -C "$work/src" PG_CONFIG="$PG_CONFIG" OPTFLAGS= install >>"$work/build.log" 2>&1 || {
        tail -n 50 "$work/build.log" >&2
        die "installing pgvector failed"
    }
    pgvector_installed || die "pgvector build finished but vector.control / vector.so are not where expected"
    log "installed pgvector into $(pg_pkglibdir) and /usr/share/postgresql/${PG_MAJOR}/extension"
}

# --- step 2b: the backup's client programs ------------------------------------------
# `pgvigil backup create` needs pg_dump and `backup verify` pg_restore of at least the
# server's major version (postgresql-client-${PG_MAJOR}, installed with the packages above).
for tool in pg_dump pg_restore; do
    bin="/usr/lib/postgresql/${PG_MAJOR}/bin/${tool}"
    if [ ! -x "$bin" ]; then
        log "ERROR: ${bin} is missing: apt-get install postgresql-client-${PG_MAJOR}"
        exit 1
    fi
    log "backup client: $("$bin" --version)"
done

# --- step 3: verification ----------------------------------------------------------

verify_cluster() {
    local tmp data port out
    make_temp_dir tmp
    data=$tmp/data
    if is_root; then
        chown postgres: "$tmp"
    fi
    # With listen_addresses='' and the socket in our private dir the port is
    # only part of the socket file name, so it cannot clash with anything;
    # pick a random one anyway to keep socket names distinct.
    port=$((20000 + RANDOM % 40000))

    as_pg_user "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --no-sync \
        --no-instructions --locale=C -E UTF8 >"$tmp/initdb.log" 2>&1 || {
        cat "$tmp/initdb.log" >&2
        die "initdb of the throwaway verification cluster failed"
    }
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$tmp'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    VERIFY_DATA_DIR=$data
    as_pg_user "$PG_BIN/pg_ctl" -D "$data" -l "$tmp/server.log" -w -t 30 start >/dev/null 2>&1 || {
        cat "$tmp/server.log" >&2 || true
        die "could not start the throwaway verification cluster"
    }

    out=$(env -u PGOPTIONS -u PGSERVICE -u PGSERVICEFILE -u PGSSLMODE \
        "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$tmp" -p "$port" -U postgres -d postgres -c "
        CREATE EXTENSION vector;
        SELECT extversion FROM pg_extension WHERE extname = 'vector';
        SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector;" 2>&1) || {
        printf '%s\n' "$out" >&2
        die "CREATE EXTENSION vector failed in the verification cluster"
    }

    as_pg_user "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    VERIFY_DATA_DIR=""

    local version distance
    version=$(sed -n 1p <<<"$out")
    distance=$(sed -n 2p <<<"$out")
    [[ -n $version && -n $distance ]] || die "unexpected output from verification query: $out"
    log "verified: CREATE EXTENSION vector works (pgvector $version, cosine distance [1,2,3]<=>[1,2,4] = $distance)"
}

# --- main ------------------------------------------------------------------------------

main() {
    local start=$SECONDS missing need_pgvector=0
    missing=$(missing_packages)
    pgvector_installed || need_pgvector=1

    if [[ -n $missing || $need_pgvector -eq 1 ]] && ! is_root; then
        local what=""
        [[ -n $missing ]] && what="packages: $missing"
        [[ $need_pgvector -eq 1 ]] && what="${what:+$what; }pgvector extension for PostgreSQL ${PG_MAJOR}"
        die "missing $what. This script must be run as root (e.g. 'sudo $0') to install it."
    fi

    if [[ -n $missing ]]; then
        apt_update_once
        log "installing: $missing"
        # No service of a package starts during the install (prometheus and pgbouncer ship
        # units that would take their default ports); tests start their own instances.
        local policy=/usr/sbin/policy-rc.d placed_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && placed_policy=1
        fi
        # shellcheck disable=SC2086  # word splitting of the package list is intended
        apt-get -q install -y --no-install-recommends $missing || {
            [[ $placed_policy -eq 1 ]] && rm -f "$policy"
            die "apt-get install failed for: $missing"
        }
        [[ $placed_policy -eq 1 ]] && rm -f "$policy"
        [[ -x $PG_BIN/initdb ]] || die "$PG_BIN/initdb still missing after installing packages"
        server_headers_present || die "PostgreSQL ${PG_MAJOR} server headers still missing after installing packages"
    else
        log "packages already installed: $REQUIRED_PACKAGES"
    fi

    local tool
    for tool in /usr/bin/prometheus /usr/bin/promtool /usr/sbin/pgbouncer /usr/bin/wrk; do
        [[ -x $tool ]] || die "$tool missing after installing packages ($REQUIRED_PACKAGES)"
    done

    if [[ $need_pgvector -eq 1 ]]; then
        install_pgvector
    else
        log "pgvector already installed for PostgreSQL ${PG_MAJOR}"
    fi

    verify_cluster
    log "done in $((SECONDS - start))s"
}

main "$@"
