"""The sandbox image: building it, and reading what it offers from its labels."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..config import Settings
from ..errors import SandboxError

LANGUAGES_LABEL = "io.atomic.languages"
METHODS = ("debootstrap", "dockerfile")


def tools_dir() -> Path:
    """The repository's ``tools/`` directory; a clear error when running from an installed package."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "tools"
        if (candidate / "build-sandbox-image.sh").is_file():
            return candidate
    raise SandboxError(
        "the image build scripts (tools/build-sandbox-image.sh, tools/Dockerfile.sandbox) ship with "
        "the Atomic source repository, not the installed package; run this from a checkout"
    )


def build_image(settings: Settings, method: str = "debootstrap") -> str:
    """Build ``settings.sandbox_image`` and return its name.

    ``debootstrap`` (offline-friendly: only a Debian mirror is needed) runs
    ``tools/build-sandbox-image.sh``; ``dockerfile`` runs ``docker build`` on
    ``tools/Dockerfile.sandbox`` (needs a registry for ``python:3.11-slim``).
    Output goes to the terminal; a failure raises :class:`SandboxError`.
    """
    if method not in METHODS:
        raise SandboxError(f"unknown image build method {method!r}; expected one of {', '.join(METHODS)}")
    tools = tools_dir()
    image = settings.sandbox_image
    if method == "debootstrap":
        cmd = ["bash", str(tools / "build-sandbox-image.sh"), image]
    else:
        cmd = ["docker", "build", "-t", image, "-f", str(tools / "Dockerfile.sandbox"), str(tools)]
    try:
        proc = subprocess.run(cmd, check=False)
    except FileNotFoundError as exc:
        raise SandboxError(f"cannot build the sandbox image: {exc.filename} is not installed") from None
    if proc.returncode != 0:
        raise SandboxError(f"building the sandbox image {image} with {method} failed (exit {proc.returncode})")
    return image


def languages_from_labels(labels: Mapping[str, str] | None) -> list[str]:
    """``io.atomic.languages=python,shell`` -> ``["python", "shell"]``."""
    raw = (labels or {}).get(LANGUAGES_LABEL, "")
    return [x.strip() for x in raw.split(",") if x.strip()]
