#!/usr/bin/env bash
# Build the sandbox image offline: a minimal Debian root filesystem made by
# debootstrap from Debian's package mirror, imported into Docker as one layer.
# Users with a registry can use tools/Dockerfile.sandbox instead.
#
# usage: tools/build-sandbox-image.sh [IMAGE]   (default atomic-sandbox:latest)
# Idempotent: does nothing when the image exists, unless ATOMIC_REBUILD_IMAGE=1.
set -euo pipefail
IMAGE=${1:-${ATOMIC_SANDBOX_IMAGE:-atomic-sandbox:latest}}
SUITE=${ATOMIC_SANDBOX_SUITE:-bookworm}
MIRROR=${ATOMIC_SANDBOX_MIRROR:-}

if [ "${ATOMIC_REBUILD_IMAGE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "sandbox image $IMAGE already present"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

if [ -z "$MIRROR" ]; then
    # Use the mirror apt already reaches on this machine.
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | grep -oE '^(deb|URIs:)[[:space:]]+[^ ]+' | awk '{print $2}' \
             | grep -E '^https?://.*/debian/?$' | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

ROOT=$(mktemp -d /tmp/atomic-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap $SUITE from $MIRROR into $ROOT"
debootstrap --variant=minbase --include=python3-minimal "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
    || { tail -n 30 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"

# The unprivileged user every run executes as, and the workspace it owns.
chroot "$ROOT" /usr/sbin/groupadd -g 10001 sandbox
chroot "$ROOT" /usr/sbin/useradd -u 10001 -g 10001 -M -d /workspace -s /bin/sh sandbox
mkdir -p "$ROOT/workspace" && chown 10001:10001 "$ROOT/workspace"
# Slim it: no docs, no apt caches.
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*

tar -C "$ROOT" -c . | docker import \
    -c 'USER 10001:10001' -c 'WORKDIR /workspace' -c 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/workspace' \
    -c 'LABEL io.atomic.sandbox=1 io.atomic.languages=python,shell' \
    -c 'CMD ["/bin/sh"]' - "$IMAGE"
echo "built $IMAGE"
