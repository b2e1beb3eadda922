"""Path validation and limit resolution: no engine needed."""

from __future__ import annotations

import io
import tarfile

import pytest

from atomic.errors import ValidationError
from atomic.sandbox import Limits, validate_path
from atomic.sandbox.limits import resolve_limits
from atomic.sandbox.paths import check_files, read_tar_files


@pytest.mark.parametrize(
    "raw, expected",
    [("main.py", "main.py"), ("./a/b.py", "a/b.py"), ("a//b/./c.txt", "a/b/c.txt"), ("pkg/__init__.py", "pkg/__init__.py")],
)
def test_valid_paths_are_normalised(raw, expected):
    assert validate_path(raw) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "/etc/passwd", "../x", "a/../../x", "a/../b", "..", ".", "./", "a\\..\\b", "C:evil", "a\0b",
     "x\n", "a" * 300, "/".join(["d"] * 20) + "/f"],
)
def test_bad_paths_are_refused(bad):
    with pytest.raises(ValidationError) as info:
        validate_path(bad)
    assert info.value.field == "files[].path"


def test_non_string_path():
    with pytest.raises(ValidationError):
        validate_path(b"main.py")  # type: ignore[arg-type]


def test_check_files_refuses_clashes_and_size():
    with pytest.raises(ValidationError):
        check_files([("a", b""), ("a/b", b"")], 100)
    with pytest.raises(ValidationError):
        check_files([("a/b", b""), ("a", b"")], 100)
    with pytest.raises(ValidationError):
        check_files([("a", b""), ("./a", b"")], 100)
    with pytest.raises(ValidationError) as info:
        check_files([("a", b"x" * 60), ("b", b"x" * 60)], 100)
    assert info.value.field == "files"


def test_limits_defaults_caps_and_errors(tmp_settings):
    s = tmp_settings
    assert resolve_limits(s, None) == Limits(s.timeout_s, s.default_memory_mb, s.cpus, s.pids,
                                             s.compile_timeout_s, s.compile_memory_mb)
    capped = resolve_limits(s, {"timeout_s": 10_000, "memory_mb": 1 << 20, "cpus": 64, "pids": 100_000,
                                "compile_timeout_s": 1e6, "compile_memory_mb": 1 << 30})
    assert capped == Limits(s.max_timeout_s, s.memory_limit_mb, s.max_cpus, s.max_pids,
                            s.max_compile_timeout_s, s.max_compile_memory_mb)
    assert resolve_limits(s, {"memory_mb": 64.0}).memory_mb == 64
    for bad, field in [
        ({"memory_mb": "big"}, "limits.memory_mb"),
        ({"memory_mb": True}, "limits.memory_mb"),
        ({"memory_mb": 1.5}, "limits.memory_mb"),
        ({"timeout_s": float("nan")}, "limits.timeout_s"),
        ({"cpus": -1}, "limits.cpus"),
        ({"pids": 0}, "limits.pids"),
        ({"disk": 1}, "limits.disk"),
    ]:
        with pytest.raises(ValidationError) as info:
            resolve_limits(s, bad)
        assert info.value.field == field
    with pytest.raises(ValidationError):
        resolve_limits(s, [1, 2])  # type: ignore[arg-type]


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    buf.seek(0)
    return buf


def test_read_tar_keeps_regular_new_files_only():
    blob = _tar([
        ("./", "dir", None), ("./in.txt", "file", b"same"), ("./changed.txt", "file", b"new"),
        ("./out.txt", "file", b"out"), ("./link", "symlink", "/etc/passwd"), ("./../evil", "file", b"x"),
        ("./big", "file", b"y" * 100),
    ])
    files, truncated = read_tar_files(blob, {"in.txt": b"same", "changed.txt": b"old"}, 50)
    assert files == [("changed.txt", b"new"), ("out.txt", b"out")]
    assert truncated
