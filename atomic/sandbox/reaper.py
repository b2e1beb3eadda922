"""Orphan sweeping: containers (and work directories) an Atomic process left behind.

Every sandbox container carries ``io.atomic.managed=1``, the owner's host name and pid
(``io.atomic.host``, ``io.atomic.pid``) and, for job runs, ``io.atomic.job``. A
container is an orphan when its owner is this process but not using it any more, or
when its owner was a process on this host that no longer exists. Containers of live
Atomic processes, and of other hosts sharing the engine, are left alone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection, Iterable
from typing import Any

from ..config import Settings
from .engine import open_client, translate

log = logging.getLogger(__name__)

MANAGED = "io.atomic.managed"
PID = "io.atomic.pid"
HOST = "io.atomic.host"
JOB = "io.atomic.job"
ROLE = "io.atomic.role"
OWNER = "io.atomic.owner"  # one controller: ``<pid>-<token>``

HOSTNAME = socket.gethostname()


def work_root(settings: Settings) -> str:
    """Parent of the per-run input directories (``<data_dir>/sandbox-work``)."""
    return os.path.join(settings.data_dir, "sandbox-work")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _name(c: dict[str, Any]) -> str:
    names = c.get("Names") or [""]
    return names[0].lstrip("/").removeprefix("atomic-")


def select_orphans(
    containers: Iterable[dict[str, Any]],
    *,
    own_pid: int,
    in_use: Collection[str],
    owner: str | None = None,
    host: str = HOSTNAME,
) -> list[str]:
    """Ids of the orphans among ``containers`` (``docker ps`` dicts with ``Id``, ``Names``, ``Labels``).

    Ours (``owner``) and in use neither by id nor by name (names are registered before
    the container exists); or left by a process of this host that is gone. Another
    controller's in this same process is its own business.
    """
    out = []
    for c in containers:
        labels = c.get("Labels") or {}
        if labels.get(MANAGED) != "1" or labels.get(HOST, host) != host:
            continue
        if owner is not None and labels.get(OWNER) == owner:
            if c["Id"] not in in_use and _name(c) not in in_use:
                out.append(c["Id"])
            continue
        try:
            pid = int(labels.get(PID, ""))
        except ValueError:
            out.append(c["Id"])  # ours by label, owner unknown
            continue
        if pid != own_pid and not pid_alive(pid):
            out.append(c["Id"])
    return out


def select_work_dirs(
    names: Iterable[str], *, own_pid: int, in_use: Collection[str], owner: str | None = None
) -> list[str]:
    """Input directories (``<pid>-<token>-<token>``) of dead processes, and ours not in use."""
    out = []
    for name in names:
        pid_s, _, _ = name.partition("-")
        if not pid_s.isdigit():
            continue
        pid = int(pid_s)
        mine = owner is not None and name.startswith(owner + "-")
        if (mine and name not in in_use) or (pid != own_pid and not pid_alive(pid)):
            out.append(name)
    return out


def list_candidates(api: Any, work_dir: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Blocking: our labelled containers, and the input directories present."""
    listed = api.containers(all=True, filters={"label": f"{MANAGED}=1"})
    try:
        names = os.listdir(work_dir) if work_dir else []
    except FileNotFoundError:
        names = []
    return listed, names


def remove_orphans(api: Any, ids: Iterable[str], work_dir: str | None, dirs: Iterable[str]) -> int:
    """Blocking: remove the chosen containers and directories. Returns the containers removed."""
    import shutil

    import docker.errors

    removed = 0
    for cid in ids:
        try:
            api.remove_container(cid, force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. removal already in progress
            log.warning("could not remove orphan sandbox %s: %s", cid[:12], exc)
    for name in dirs:
        if work_dir:
            shutil.rmtree(os.path.join(work_dir, name), ignore_errors=True)
    if removed:
        log.info("removed %d orphan sandbox container(s)", removed)
    return removed


def reap(settings: Settings, *, docker_url: str | None = None) -> int:
    """``atomic sandbox reap``: remove containers left by Atomic processes that are gone.

    Blocking (for the CLI). Raises :class:`~atomic.errors.SandboxUnavailable` when the
    engine cannot be reached.
    """
    client = open_client(docker_url)
    try:
        # A separate process cannot know what a live server uses: only the dead are reaped.
        work_dir = work_root(settings)
        listed, names = list_candidates(client.api, work_dir)
        ids = select_orphans(listed, own_pid=-1, in_use=())
        return remove_orphans(client.api, ids, work_dir, select_work_dirs(names, own_pid=-1, in_use=()))
    except Exception as exc:  # noqa: BLE001 - translated at this boundary
        raise translate(exc, settings.sandbox_image) from None
    finally:
        client.close()
