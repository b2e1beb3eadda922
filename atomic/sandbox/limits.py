"""Per-run resource limits: resolved from a request, capped by the server's maxima.

A :class:`Limits` is what a run gets; :func:`resolve_limits` turns the contract's
``limits`` object (``{timeout_s, memory_mb, cpus, pids, compile_timeout_s,
compile_memory_mb}``) into one, and :func:`host_config_kwargs` turns one into the Docker
host configuration every sandbox container is created with, so cold, warm and runner
containers are confined alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import ValidationError

MIB = 1 << 20

#: Where the run's inputs (``files/`` and ``stdin``) are bind-mounted, read-only.
INPUT_MOUNT = "/atomic"
#: The program's writable, size-limited workspace (a tmpfs) and its working directory.
WORKSPACE = "/workspace"
#: The unprivileged user of the image.
USER = "10001:10001"
#: What a runner container adds to the processes it holds for the program: docker-init
#: and the runner (see :mod:`.runner`).
RUNNER_PIDS = 2
#: The only capabilities a runner container keeps, for the runner alone: becoming each
#: step's fresh uid, and killing that uid's processes. Programs never hold any.
RUNNER_CAPS = ["SETUID", "SETGID", "KILL"]


@dataclass(frozen=True)
class Limits:
    """What one run may use. Equal limits mean interchangeable containers (warm pool)."""

    timeout_s: float
    memory_mb: int
    cpus: float
    pids: int
    compile_timeout_s: float = 30.0
    compile_memory_mb: int = 512

    def to_dict(self) -> dict[str, float | int]:
        return {"timeout_s": self.timeout_s, "memory_mb": self.memory_mb, "cpus": self.cpus, "pids": self.pids,
                "compile_timeout_s": self.compile_timeout_s, "compile_memory_mb": self.compile_memory_mb}


def default_limits(settings: Settings) -> Limits:
    return Limits(
        timeout_s=settings.timeout_s,
        memory_mb=settings.default_memory_mb,
        cpus=settings.cpus,
        pids=settings.pids,
        compile_timeout_s=settings.compile_timeout_s,
        compile_memory_mb=settings.compile_memory_mb,
    )


# name -> (kind, default attribute, maximum attribute)
_FIELDS = {
    "timeout_s": (float, "timeout_s", "max_timeout_s"),
    "memory_mb": (int, "default_memory_mb", "memory_limit_mb"),
    "cpus": (float, "cpus", "max_cpus"),
    "pids": (int, "pids", "max_pids"),
    "compile_timeout_s": (float, "compile_timeout_s", "max_compile_timeout_s"),
    "compile_memory_mb": (int, "compile_memory_mb", "max_compile_memory_mb"),
}
# Below these a run cannot even start its interpreter.
_MINIMA = {"timeout_s": 0.001, "memory_mb": 16, "cpus": 0.01, "pids": 8, "compile_timeout_s": 0.001,
           "compile_memory_mb": 16}


def resolve_limits(settings: Settings, user: Mapping[str, Any] | None) -> Limits:
    """Defaults from ``settings``, overridden by ``user``, each capped by its maximum.

    A value above the maximum is lowered to it (the contract says "capped"); a value of
    the wrong type, not finite, or below a usable minimum is a :class:`ValidationError`
    naming ``limits.<field>``. ``None`` for a field means its default.
    """
    if user is None:
        user = {}
    if not isinstance(user, Mapping):
        raise ValidationError("limits", "expected an object with " + ", ".join(_FIELDS))
    unknown = sorted(set(user) - set(_FIELDS))
    if unknown:
        raise ValidationError(f"limits.{unknown[0]}", "unknown limit; expected one of " + ", ".join(_FIELDS))
    values: dict[str, Any] = {}
    for name, (kind, default_attr, max_attr) in _FIELDS.items():
        raw = user.get(name)
        maximum = getattr(settings, max_attr)
        if raw is None:
            values[name] = getattr(settings, default_attr)
            continue
        field = f"limits.{name}"
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValidationError(field, f"expected a number, got {type(raw).__name__}")
        if not math.isfinite(raw):
            raise ValidationError(field, "expected a finite number")
        if kind is int and raw != int(raw):
            raise ValidationError(field, "expected a whole number")
        if raw < _MINIMA[name]:
            raise ValidationError(field, f"expected at least {_MINIMA[name]}")
        values[name] = kind(min(raw, maximum))
    return Limits(**values)


def cpu_seconds(timeout_s: float, cpus: float) -> int:
    """RLIMIT_CPU for a run: the CPU time its CPUs can burn in its wall-clock limit.

    A backstop: the wall clock is enforced by the controller killing the container.
    """
    return max(1, math.ceil(timeout_s * max(1.0, cpus)))


def warm_key(limits: Limits) -> tuple[int, float, int]:
    """What a container is created with; the wall clock is per run, so not part of it."""
    return (limits.memory_mb, limits.cpus, limits.pids)


def host_config_kwargs(settings: Settings, limits: Limits, run_dir: str, *, runner: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_host_config``: every confinement in one place.

    The root filesystem is read-only; ``/workspace`` and ``/tmp`` are tmpfs mounts with a
    size (writes past it fail with ENOSPC, and their pages count against the memory
    limit). The run's inputs arrive through a read-only bind mount of ``run_dir``.
    RLIMIT_CPU is set here at the server's maximum and lowered per run by the wrapper
    (:func:`cpu_seconds`), so a warm container serves runs of any wall-clock limit.

    A ``runner`` container (:mod:`.runner`) keeps :data:`RUNNER_CAPS` for its runner,
    and its ``/workspace`` and ``/tmp`` are root's (the runner makes them mode 1733: each
    step makes its own directories there, which no other step can list or remove). Its memory and process
    limits are those of its first step (the controller changes them between steps).
    """
    mem = limits.memory_mb * MIB
    cpu_max = cpu_seconds(max(settings.max_timeout_s, settings.max_compile_timeout_s), settings.max_cpus)
    disk = settings.disk_mb
    if runner:
        tmpfs = {
            WORKSPACE: f"rw,exec,nosuid,nodev,size={disk}m",
            "/tmp": f"rw,exec,nosuid,nodev,size={disk}m",
        }
    else:
        tmpfs = {
            WORKSPACE: f"rw,exec,nosuid,nodev,size={disk}m,uid=10001,gid=10001,mode=0755",
            "/tmp": f"rw,exec,nosuid,nodev,size={disk}m,mode=1777",
        }
    return {
        "binds": {run_dir: {"bind": INPUT_MOUNT, "mode": "ro"}},
        "tmpfs": tmpfs,
        "read_only": True,
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": RUNNER_CAPS if runner else None,
        "security_opt": ["no-new-privileges"],
        "mem_limit": mem,
        "memswap_limit": mem,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids + (RUNNER_PIDS if runner else 0),
        "ulimits": [
            {"Name": "cpu", "Soft": cpu_max, "Hard": cpu_max},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "init": True,
        "log_config": {"Type": "none", "Config": {}},
        "ipc_mode": "private",
    }
