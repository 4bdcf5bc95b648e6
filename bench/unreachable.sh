#!/usr/bin/env bash
# How long a run takes to give its final answer when the forge cannot be
# reached: --limit 1 (foreground) and --sync (background, until the process
# has ended), against a closed local port and a name that never resolves
# (.invalid). Prints one line per case: wall seconds and the last line said.
#
#   cargo build --release && bash bench/unreachable.sh
set -euo pipefail
bin=${BIN:-$(dirname "$0")/../target/release/patina-forge}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work PATINA_HOME=$work/home
git init -q "$work/repo"
git -C "$work/repo" -c user.name=b -c user.email=b@example.com commit -q --allow-empty -m "fix: parser (#1)"
git -C "$work/repo" remote add origin https://github.com/acme/widget.git
"$bin" -C "$work/repo" --offline >/dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
for api in "http://127.0.0.1:$port" "https://nonexistent.invalid"; do
    start=$(now)
    last=$(PATINA_FORGE_API_URL=$api GITHUB_TOKEN=ghp_bench "$bin" -C "$work/repo" --limit 1 2>&1 | tail -n 1) || true
    printf '%-28s --limit 1  %5s s  %s\n' "$api" "$(since "$start")" "$last"
    start=$(now)
    PATINA_FORGE_API_URL=$api GITHUB_TOKEN=ghp_bench "$bin" -C "$work/repo" --sync >/dev/null
    # The background sync holds the lock until it ends: --status says.
    while "$bin" -C "$work/repo" --status --json | grep -q '"running":true'; do sleep 0.1; done
    last=$(grep -v ' sync of ' "$PATINA_HOME"/logs/forge-sync-acme-widget.log | tail -n 1)
    printf '%-28s --sync     %5s s  %s\n' "$api" "$(since "$start")" "${last#* }"
done
