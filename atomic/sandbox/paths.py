"""Workspace paths: validation of user-given names, and the host side of a run's inputs.

Every file name a request carries goes through :func:`validate_path` before any
container exists. Inputs are then written below a fresh per-run directory with
``O_NOFOLLOW | O_EXCL``, so nothing a request says can place a file (or a symlink)
outside it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterable
from typing import IO

from ..errors import ValidationError

FIELD = "files[].path"
MAX_PATH = 255  # whole relative path, in characters
MAX_COMPONENT = 128
MAX_DEPTH = 16


def validate_path(path: str) -> str:
    """The normalised relative POSIX form of ``path``, or :class:`ValidationError`.

    Refused: non-strings, empty, NUL or other control characters, backslashes (a
    Windows separator on some clients, a traversal trick on others), absolute paths,
    drive letters, any ``..`` component (even one that would normalise away), paths
    naming the workspace itself, and names longer than :data:`MAX_PATH`.
    """
    if not isinstance(path, str):
        raise ValidationError(FIELD, "expected a string")
    if not path or not path.strip():
        raise ValidationError(FIELD, "must not be empty")
    if len(path) > MAX_PATH:
        raise ValidationError(FIELD, f"longer than {MAX_PATH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValidationError(FIELD, f"{path!r} contains a control character")
    if "\\" in path:
        raise ValidationError(FIELD, f"{path!r} contains a backslash")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":"):
        raise ValidationError(FIELD, f"{path!r} is absolute; expected a path relative to the workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(FIELD, f"{path!r} escapes the workspace")
    if not parts:
        raise ValidationError(FIELD, f"{path!r} names the workspace itself")
    if len(parts) > MAX_DEPTH:
        raise ValidationError(FIELD, f"{path!r} is nested deeper than {MAX_DEPTH} directories")
    if any(len(p) > MAX_COMPONENT for p in parts):
        raise ValidationError(FIELD, f"{path!r} has a name longer than {MAX_COMPONENT} characters")
    normal = posixpath.normpath("/".join(parts))
    assert not normal.startswith(("/", "..")), normal
    return normal


def check_files(files: Iterable[tuple[str, bytes]], max_bytes: int) -> list[tuple[str, bytes]]:
    """Validate every path and the total size; reject duplicates and file/dir clashes."""
    out: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    total = 0
    for path, data in files:
        name = validate_path(path)
        if not isinstance(data, (bytes, bytearray)):
            raise ValidationError("files[].content", f"{name}: expected bytes")
        if name in seen or name in dirs:
            raise ValidationError(FIELD, f"{name!r} is given twice or is also a directory")
        parent = posixpath.dirname(name)
        while parent:
            if parent in seen:
                raise ValidationError(FIELD, f"{name!r} puts a file below the file {parent!r}")
            dirs.add(parent)
            parent = posixpath.dirname(parent)
        seen.add(name)
        total += len(data)
        if total > max_bytes:
            raise ValidationError("files", f"the files exceed the workspace size ({max_bytes} bytes)")
        out.append((name, bytes(data)))
    return out


def make_run_dir(root: str, name: str) -> str:
    """Create ``root/name`` with an empty ``files/`` and ``stdin``, readable by the sandbox user."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    run_dir = os.path.join(root, name)
    os.mkdir(run_dir, 0o755)
    os.mkdir(os.path.join(run_dir, "files"), 0o755)
    _write_new(os.path.join(run_dir, "stdin"), b"")
    os.chmod(run_dir, 0o755)  # umask may have narrowed it
    os.chmod(os.path.join(run_dir, "files"), 0o755)
    return run_dir


def write_inputs(run_dir: str, files: list[tuple[str, bytes]], stdin: bytes) -> None:
    """Write checked ``files`` below ``run_dir/files`` and ``stdin`` beside it.

    Directories are created one component at a time refusing symlinks, and files are
    opened with ``O_EXCL | O_NOFOLLOW``: even a racing writer cannot redirect them.
    """
    base = os.path.join(run_dir, "files")
    for name, data in files:
        parts = name.split("/")
        cur = base
        for part in parts[:-1]:
            cur = os.path.join(cur, part)
            try:
                os.mkdir(cur, 0o755)
                os.chmod(cur, 0o755)
            except FileExistsError:
                if os.path.islink(cur) or not os.path.isdir(cur):
                    raise ValidationError(FIELD, f"{name!r} clashes with another file") from None
        _write_new(os.path.join(cur, parts[-1]), data)
    with open(os.path.join(run_dir, "stdin"), "wb") as fh:
        fh.write(stdin)


def write_file(run_dir: str, name: str, data: bytes) -> None:
    """A file of ours (not the run's) beside ``files/`` in ``run_dir``, readable in the sandbox."""
    _write_new(os.path.join(run_dir, name), data)


def _write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def remove_run_dir(run_dir: str) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def read_tar_files(
    fileobj: IO[bytes], inputs: dict[str, bytes], max_bytes: int
) -> tuple[list[tuple[str, bytes]], bool]:
    """Regular files of a workspace tar stream, minus unchanged inputs, at most ``max_bytes``.

    Symlinks, hard links, devices and FIFOs are skipped, never followed; names are
    re-validated. Returns the files and whether anything was left out for size.
    """
    out: list[tuple[str, bytes]] = []
    total = 0
    truncated = False
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            try:
                name = validate_path(member.name)
            except ValidationError:
                continue
            if total + member.size > max_bytes:
                truncated = True
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            data = fh.read()
            if inputs.get(name) == data:
                continue
            total += len(data)
            out.append((name, data))
    out.sort()
    return out, truncated
