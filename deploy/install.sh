#!/usr/bin/env bash
# Install Atomic as a systemd service, from a clone of the repository:
#
#   sudo deploy/install.sh                        # /opt/atomic, built by tools/setup.sh
#   sudo deploy/install.sh --prefix /srv/atomic   # elsewhere
#   sudo deploy/install.sh --zipapp dist/atomic.pyz   # the one-file build instead of a venv
#        [--python /usr/bin/python3]              # the interpreter that runs the zipapp
#   sudo deploy/install.sh --no-start             # everything but systemctl (images, chroots)
#
# Creates the `atomic` system user, installs the code into the prefix (root-owned, so the
# service cannot change its own code), writes /etc/atomic/atomic.toml and atomic.env when
# absent (never overwrites them), installs the unit and enables and starts it; an already
# running service is restarted onto the new code. Running it again is safe.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/atomic
ZIPAPP=""
PYBIN=""
START=1
SERVICE_USER=atomic
ETC=/etc/atomic
UNIT=/etc/systemd/system/atomic.service
DROPIN_DIR=/etc/systemd/system/atomic.service.d

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --zipapp) ZIPAPP=${2:?--zipapp needs a file}; shift 2 ;;
        --python) PYBIN=${2:?--python needs an interpreter}; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "run as root: sudo $0"
case "$PREFIX" in
    /|/usr|/usr/|/etc|/etc/|/var|/var/) die "refusing --prefix $PREFIX" ;;
    /*) PREFIX=${PREFIX%/} ;;
    *) die "--prefix must be an absolute path, not '$PREFIX'" ;;
esac
if [ -n "$ZIPAPP" ]; then
    [ -f "$ZIPAPP" ] || die "no such file: $ZIPAPP (build it with tools/build-zipapp.sh)"
    ZIPAPP=$(cd "$(dirname "$ZIPAPP")" && pwd)/$(basename "$ZIPAPP")
fi
if [ "$START" = 1 ] && [ ! -d /run/systemd/system ]; then
    die "systemd is not running here; use --no-start to install without starting"
fi

# 1. Docker, the sandbox image and (without --zipapp) the virtual environment.
#    tools/setup.sh is idempotent and installs docker.io, which creates the docker group.
if [ -z "$ZIPAPP" ]; then
    say "installing the code into $PREFIX"
    install -d -m 0755 -o root -g root "$PREFIX"
    if [ "$SRC" != "$PREFIX" ]; then
        # A fresh copy of the package (no stale modules); the venv in $PREFIX is kept.
        rm -rf -- "${PREFIX:?}/atomic"
        tar -C "$SRC" -cf - \
            --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
            --exclude=./data --exclude=./out --exclude=./.run --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude='*.pyc' --exclude='*.so' --exclude='.*_cache' \
            . | tar -C "$PREFIX" --no-same-owner -xf -
    fi
    chown -R root:root "$PREFIX"
    chmod -R u+rwX,go+rX,go-w "$PREFIX"
    say "running tools/setup.sh in $PREFIX (Docker, sandbox image, virtual environment)"
    ATOMIC_VENV="$PREFIX/.venv" "$PREFIX/tools/setup.sh"
    "$PREFIX/.venv/bin/atomic" --version >/dev/null || die "$PREFIX/.venv/bin/atomic does not run"
    RUN="$PREFIX/.venv/bin/atomic"
else
    # A machine with Python and Docker only: no virtual environment, no compiler. The
    # service cannot see /root or /home (ProtectHome=yes), so no pyenv shims: the system's
    # interpreter, of the minor version the zipapp was built with.
    if [ -z "$PYBIN" ]; then
        for candidate in /usr/bin/python3 /usr/local/bin/python3; do
            [ -x "$candidate" ] && { PYBIN=$candidate; break; }
        done
    fi
    if [ -z "$PYBIN" ] || [ ! -x "$PYBIN" ]; then die "no Python interpreter found; pass --python /path/to/python3"; fi
    case "$PYBIN" in
        /*) ;;
        *) die "--python must be an absolute path" ;;
    esac
    case "$PYBIN" in
        /root/*|/home/*) die "$PYBIN is under /root or /home, which the service cannot see (ProtectHome=yes)" ;;
    esac
    "$PYBIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "the zipapp needs Python 3.11 or later"
    docker info >/dev/null 2>&1 || die "the Docker engine is not running (tools/setup.sh installs and starts it)"
    say "checking the sandbox image"
    "$SRC/tools/build-sandbox-image.sh"
    install -d -m 0755 -o root -g root "$PREFIX"
    install -m 0755 -o root -g root "$ZIPAPP" "$PREFIX/atomic.pyz"
    RUN="$PYBIN $PREFIX/atomic.pyz"
fi
getent group docker >/dev/null || die "the docker group is missing: is Docker installed?"

# 2. The service user: a system account whose home is its state directory.
if ! getent passwd "$SERVICE_USER" >/dev/null; then
    say "creating the system user $SERVICE_USER"
    useradd --system --user-group --home-dir /var/lib/atomic --no-create-home \
        --shell /usr/sbin/nologin --comment "Atomic service" "$SERVICE_USER"
fi

# 3. Settings, never overwritten: the operator owns them after the first install.
install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC"
if [ ! -e "$ETC/atomic.toml" ]; then
    say "writing $ETC/atomic.toml"
    umask 027
    cat >"$ETC/atomic.toml" <<'EOF'
# Atomic settings: the ATOMIC_* names in lower case (see README.md, or
# `atomic config --reference`). The unit sets data_dir (/var/lib/atomic) and ipc_socket
# (/run/atomic/agent.sock) in its environment, which wins over this file.
# `systemctl reload atomic` applies log, sandbox-limit, CORS, API-key, retention and
# sampling changes; anything else needs `systemctl restart atomic`.

host = "127.0.0.1"
http_port = 8080
log_level = "INFO"
# provider = "local"
# max_concurrent = 10
# warm_pool_size = 2
# memory_limit_mb = 512
# max_timeout_s = 120
EOF
    umask 022
fi
chown root:"$SERVICE_USER" "$ETC/atomic.toml"
chmod 0640 "$ETC/atomic.toml"
if [ ! -e "$ETC/atomic.env" ]; then
    say "writing $ETC/atomic.env (provider keys go here)"
    install -m 0640 -o root -g "$SERVICE_USER" "$SRC/deploy/atomic.env.example" "$ETC/atomic.env"
fi

# 4. The unit, pointed at this prefix.
say "installing $UNIT"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s#/opt/atomic#$PREFIX#g" "$SRC/deploy/atomic.service" >"$tmp"
install -m 0644 -o root -g root "$tmp" "$UNIT"
if [ -n "$ZIPAPP" ]; then
    # The zipapp unpacks its dependencies on first run: into the state directory, the
    # only place the unit may write.
    install -d -m 0755 "$DROPIN_DIR"
    cat >"$tmp" <<EOF
# Written by deploy/install.sh --zipapp.
[Service]
ExecStart=
ExecStart=$PYBIN $PREFIX/atomic.pyz serve --config $ETC/atomic.toml
Environment=SHIV_ROOT=/var/lib/atomic/shiv
EOF
    install -m 0644 -o root -g root "$tmp" "$DROPIN_DIR/zipapp.conf"
elif [ -e "$DROPIN_DIR/zipapp.conf" ]; then
    rm -f "$DROPIN_DIR/zipapp.conf"
fi
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$UNIT" || die "systemd-analyze verify rejected $UNIT"
fi

# 5. Start it, or restart it onto the new code.
if [ "$START" = 0 ]; then
    say "installed; start it with: systemctl daemon-reload && systemctl enable --now atomic"
    exit 0
fi
systemctl daemon-reload
if systemctl is-active --quiet atomic; then
    say "restarting atomic onto the new code"
    systemctl enable atomic
    systemctl restart atomic
else
    systemctl enable --now atomic
fi
systemctl --no-pager --lines=0 status atomic || true
say "done: journalctl -u atomic -f   |   $RUN status"
