#!/usr/bin/env bash
# Build the base sandbox image offline: a minimal Debian root filesystem made by
# debootstrap from Debian's package mirror, imported into Docker as one layer. It runs
# python (Debian's python3: the whole standard library) and shell; every other
# language's image is a layer on top of it (`atomic sandbox build-image --language NAME`).
# Users with a registry can use tools/Dockerfile.sandbox instead.
#
# usage: tools/build-sandbox-image.sh [IMAGE] [--package LANG:DEB]...
#   IMAGE                default $ATOMIC_SANDBOX_IMAGE or atomic-sandbox:latest
#   --package python:DEB extra Debian packages for python (or shell:DEB for shell),
#                        recorded in the image's labels
# Idempotent: does nothing when the image exists and was made by this recipe (and, when
# --package is given, with exactly those packages), unless ATOMIC_REBUILD_IMAGE=1.
# Downloaded .debs are kept in $ATOMIC_IMAGE_CACHE_DIR/debootstrap (default
# ~/.cache/atomic/images), so a rebuild downloads nothing new.
set -euo pipefail
RECIPE=2  # bump when what goes into the image changes: older images are rebuilt
IMAGE=${ATOMIC_SANDBOX_IMAGE:-atomic-sandbox:latest}
SUITE=${ATOMIC_SANDBOX_SUITE:-bookworm}
MIRROR=${ATOMIC_SANDBOX_MIRROR:-}
CACHE=${ATOMIC_IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/atomic/images}
PY_PKGS=(python3)
SH_PKGS=(dash)
explicit=0
while [ $# -gt 0 ]; do
    case "$1" in
        --package)
            [ $# -ge 2 ] || { echo "--package needs LANG:DEB" >&2; exit 2; }
            case "$2" in
                python:?*) PY_PKGS+=("${2#python:}") ;;
                shell:?*) SH_PKGS+=("${2#shell:}") ;;
                *) echo "--package $2: expected python:DEB or shell:DEB" >&2; exit 2 ;;
            esac
            explicit=1; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) IMAGE=$1; shift ;;
    esac
done
join() { local IFS=,; echo "$*"; }
dedupe() { printf '%s\n' "$@" | awk '!seen[$0]++'; }
mapfile -t PY_PKGS < <(dedupe "${PY_PKGS[@]}")
mapfile -t SH_PKGS < <(dedupe "${SH_PKGS[@]}")
PY_LIST=$(join "${PY_PKGS[@]}")
SH_LIST=$(join "${SH_PKGS[@]}")

label() { docker image inspect -f "{{index .Config.Labels \"$1\"}}" "$IMAGE" 2>/dev/null || true; }
if [ "${ATOMIC_REBUILD_IMAGE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1 \
        && [ "$(label io.atomic.image-version)" = "$RECIPE" ]; then
    if [ $explicit = 0 ] || { [ "$(label io.atomic.language.python.packages)" = "$PY_LIST" ] \
            && [ "$(label io.atomic.language.shell.packages)" = "$SH_LIST" ]; }; then
        echo "sandbox image $IMAGE already present"
        exit 0
    fi
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

if [ -z "$MIRROR" ]; then
    # Use the mirror apt already reaches on this machine.
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | grep -oE '^(deb|URIs:)[[:space:]]+[^ ]+' | awk '{print $2}' \
             | grep -E '^https?://.*/debian/?$' | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

mkdir -p "$CACHE/debootstrap"
ROOT=$(mktemp -d /tmp/atomic-rootfs.XXXXXX)
trap 'rm -rf "$ROOT" "$ROOT.log"' EXIT
INCLUDE=$(join "${PY_PKGS[@]}" "${SH_PKGS[@]}")
echo "debootstrap $SUITE from $MIRROR into $ROOT (with $INCLUDE; .debs cached in $CACHE/debootstrap)"
debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$CACHE/debootstrap" \
    "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
    || { tail -n 30 "$ROOT.log" >&2; exit 1; }

# The unprivileged user plain runs execute as, and the workspace it owns.
chroot "$ROOT" /usr/sbin/groupadd -g 10001 sandbox
chroot "$ROOT" /usr/sbin/useradd -u 10001 -g 10001 -M -d /workspace -s /bin/sh sandbox
mkdir -p "$ROOT/workspace" && chown 10001:10001 "$ROOT/workspace"
PY_VERSION=$(chroot "$ROOT" python3 -c 'import platform; print(platform.python_version())')
SH_VERSION=$(chroot "$ROOT" dpkg-query -W -f='${Version}' dash | cut -d- -f1)
# Slim it: no docs, no apt caches (language layers bring their own lists while building).
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/*
mkdir -p "$ROOT"/var/cache/apt/archives/partial "$ROOT"/var/lib/apt/lists/partial

tar -C "$ROOT" -c . | docker import \
    -c 'USER 10001:10001' -c 'WORKDIR /workspace' \
    -c 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/workspace LANG=C.UTF-8' \
    -c "LABEL io.atomic.sandbox=1 io.atomic.image-version=$RECIPE io.atomic.languages=python,shell \
io.atomic.language.python.version=$PY_VERSION io.atomic.language.python.packages=$PY_LIST \
io.atomic.language.shell.version=$SH_VERSION io.atomic.language.shell.packages=$SH_LIST" \
    -c 'CMD ["/bin/sh"]' - "$IMAGE"
echo "built $IMAGE"
