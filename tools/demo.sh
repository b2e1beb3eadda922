#!/usr/bin/env bash
# The main job, end to end: start `atomic serve` (agent included) in the background,
# submit one prompt with `atomic generate`, show it stream, then stop the server (on a
# terminal, it first keeps serving the web page at http://127.0.0.1:PORT/ until Ctrl-C).
# usage: tools/demo.sh "PROMPT"   (after tools/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPT=${1:-"Write a Python program that prints the first 10 square numbers"}
ATOMIC=.venv/bin/atomic
PORT=${ATOMIC_HTTP_PORT:-8080}
export ATOMIC_HTTP_PORT=$PORT
URL="http://127.0.0.1:$PORT"
mkdir -p .run out
started=""
if ! curl -fsS "$URL/health" >/dev/null 2>&1; then
    echo "starting atomic serve on $URL (log: .run/serve.log)"
    "$ATOMIC" serve >.run/serve.log 2>&1 &
    started=$!
    trap '[ -n "$started" ] && kill -TERM $started 2>/dev/null && wait $started 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        curl -fsS "$URL/health" >/dev/null 2>&1 && break
        kill -0 "$started" 2>/dev/null || { echo "the server exited; see .run/serve.log" >&2; tail -n 20 .run/serve.log >&2; exit 1; }
        sleep 0.5
    done
fi
"$ATOMIC" status --url "$URL" || true
echo
time "$ATOMIC" generate --url "$URL" --out out "$PROMPT"
if [ -n "$started" ] && [ -t 0 ] && [ -t 1 ]; then
    echo
    echo "The web page: open $URL/ (the server keeps running; Ctrl-C stops it)"
    trap 'exit 0' INT  # Ctrl-C: the EXIT trap stops the server
    wait "$started" || true
fi
