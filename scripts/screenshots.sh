#!/usr/bin/env bash
# Screenshots of the real dashboard: runs pgvigil in a 120x40 tmux pane, captures the screen
# with its colours (tmux capture-pane -e), turns it into HTML (aha) and renders that to PNG with
# headless Chromium. Produces screenshots/demo-120x40.png (the demo, default theme),
# screenshots/disconnected-120x40.png, screenshots/monochrome-120x40.png (NO_COLOR) and
# screenshots/demo-80x24.png (the one-panel layout most SSH clients open with).
# Usage: scripts/screenshots.sh   (root on Debian installs aha and chromium when missing;
# PGVIGIL_BIN=path uses an already built binary instead of a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v aha >/dev/null || need+=(aha)
command -v chromium >/dev/null || need+=(chromium)
command -v tmux >/dev/null || need+=(tmux)
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" fonts-dejavu-core >/dev/null
fi
if [[ -n "${PGVIGIL_BIN:-}" ]]; then
    bin=$(realpath "$PGVIGIL_BIN")
else
    cargo build --release --locked --bin pgvigil
    bin="$PWD/target/release/pgvigil"
fi
out="$PWD/screenshots"
work=$(mktemp -d)
socket="pgvigil-shots-$$"
trap 'tmux -L "$socket" kill-server 2>/dev/null || true; rm -rf "$work"' EXIT

# capture NAME [WIDTHxHEIGHT in pixels]: the current pane as screenshots/NAME.png
capture() {
    local name=$1 size=${2:-1030,770}
    tmux -L "$socket" capture-pane -p -e -t shot > "$work/$name.ansi"
    aha --black --title "pgvigil" < "$work/$name.ansi" > "$work/$name.html"
    # A monospace font with box-drawing glyphs, tight lines like a terminal.
    sed -i 's|<body|<body style="font-family: DejaVu Sans Mono, monospace; font-size: 14px; line-height: 1.2; margin: 8px"|' "$work/$name.html"
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/chromium" --hide-scrollbars --window-size="$size" \
        --screenshot="$out/$name.png" "file://$work/$name.html" >/dev/null 2>&1
    echo "screenshots: wrote $out/$name.png"
}

# start COMMAND [COLUMNS ROWS]
start() {
    tmux -L "$socket" kill-server 2>/dev/null || true
    tmux -L "$socket" -f /dev/null new-session -d -s shot -x "${2:-120}" -y "${3:-40}" "$1"
}

# 1. The demo after its workload has had time to fill the panels (and cross 80 %).
start "LANG=C.UTF-8 TERM=xterm-256color $bin demo"
sleep "${DEMO_WARMUP:-75}"
tmux -L "$socket" send-keys -t shot v
sleep 8
capture demo-120x40
tmux -L "$socket" send-keys -t shot q
sleep 3

# 2. A database that is down: nothing listens on port 1.
start "LANG=C.UTF-8 TERM=xterm-256color DATABASE_URL='postgres://app:secret@127.0.0.1:1/prod' $bin"
sleep 12
capture disconnected-120x40
tmux -L "$socket" send-keys -t shot q
sleep 1

# 3. Monochrome (NO_COLOR), on the demo.
start "LANG=C.UTF-8 TERM=xterm-256color NO_COLOR=1 $bin demo"
sleep "${MONO_WARMUP:-40}"
capture monochrome-120x40
tmux -L "$socket" send-keys -t shot q
sleep 3

# 4. The demo at 80x24: the tab bar and one panel at a time.
start "LANG=C.UTF-8 TERM=xterm-256color $bin demo" 80 24
sleep "${DEMO_WARMUP:-75}"
capture demo-80x24 700,470
tmux -L "$socket" send-keys -t shot q
sleep 3
