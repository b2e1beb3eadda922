"""The sandbox images: building them, and reading what each offers from its labels.

The base image (``settings.sandbox_image``, python and shell) is a debootstrap root
filesystem (``tools/build-sandbox-image.sh``). Every other language's image is one layer
on top of it: a container of the base image installs that language's Debian packages
with apt (as root, with the host's network: Debian's mirror is the only source) and is
committed with the language's labels. Downloaded ``.deb`` files and apt's package lists
stay on the host under ``settings.image_cache_dir``, so a rebuild downloads nothing new.

Labels every image carries, read by the controller (:func:`language_record`):
``io.atomic.languages``, and per language ``io.atomic.language.<name>.version`` and
``io.atomic.language.<name>.packages``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import languages as langs
from ..config import Settings
from ..contract.documents import LanguageInfo
from ..errors import SandboxError, ValidationError

LANGUAGES_LABEL = "io.atomic.languages"
LAYER_LABEL = "io.atomic.layer-version"
#: Bump when what goes into a language layer changes: older layers are rebuilt.
LAYER_RECIPE = "2"
METHODS = ("debootstrap", "dockerfile")
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


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


def languages_from_labels(labels: Mapping[str, str] | None) -> list[str]:
    """``io.atomic.languages=python,shell`` -> ``["python", "shell"]``."""
    raw = (labels or {}).get(LANGUAGES_LABEL, "")
    return [x.strip() for x in raw.split(",") if x.strip()]


def language_record(lang: langs.Language, image: str, labels: Mapping[str, str] | None) -> LanguageInfo:
    """The contract's language record, from the labels of its image (None: not built)."""
    prefix = f"io.atomic.language.{lang.name}."
    built = labels is not None and (prefix + "version") in labels and lang.name in languages_from_labels(labels)
    packages = (labels or {}).get(prefix + "packages", "") if built else ""
    return LanguageInfo(
        name=lang.name,
        version=(labels or {}).get(prefix + "version") if built else lang.version,
        compiled=lang.compiled,
        entrypoint=lang.entrypoint,
        available=built,
        image=image,
        packages=[p for p in packages.split(",") if p] if built else list(lang.packages),
    )


@dataclass(frozen=True)
class BuildReport:
    language: str
    image: str
    built: bool  # False: it was already there
    seconds: float
    size_bytes: int
    version: str
    packages: tuple[str, ...]

    def line(self) -> str:
        what = f"built in {self.seconds:.1f} s" if self.built else "already built"
        return (f"{self.language:11} {self.image:34} {self.version:10} {what:18} "
                f"{self.size_bytes / 1e6:7.1f} MB  {','.join(self.packages)}")


def check_packages(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        if not _DEB_NAME.match(name):
            raise ValidationError("--package", f"{name!r} is not a Debian package name")
        out.append(name)
    return out


def _inspect(image: str) -> dict[str, Any] | None:
    proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "No such image" in proc.stderr or "No such object" in proc.stderr:
            return None
        raise SandboxError(f"docker image inspect {image} failed: {proc.stderr.strip()}")
    return dict(json.loads(proc.stdout)[0])


def _labels(info: Mapping[str, Any] | None) -> dict[str, str] | None:
    if info is None:
        return None
    return dict((info.get("Config") or {}).get("Labels") or {})


def _run(cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, check=False, text=True, **kwargs)
    except FileNotFoundError as exc:
        raise SandboxError(f"cannot build {what}: {exc.filename} is not installed") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout or "").splitlines()[-30:]) if kwargs.get("stdout") else ""
        if tail:
            print(tail, file=sys.stderr)
        raise SandboxError(f"building {what} failed (exit {proc.returncode})")
    return proc


class ImageBuilder:
    """Builds the base image and the language layers; each build is reported once done."""

    def __init__(self, settings: Settings, *, method: str = "debootstrap", rebuild: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        if method not in METHODS:
            raise SandboxError(f"unknown image build method {method!r}; expected one of {', '.join(METHODS)}")
        self.settings = settings
        self.method = method
        self.rebuild = rebuild
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.cache = Path(settings.image_cache_dir)

    def image(self, lang: langs.Language) -> str:
        return langs.image_name(self.settings.sandbox_image, lang)

    def build(self, names: Iterable[str], extra: Mapping[str, list[str]] | None = None) -> Iterator[BuildReport]:
        """Build the images of ``names`` (the base once for python and shell), skipping
        those already built by this recipe with the asked-for packages."""
        extra = {k: check_packages(v) for k, v in (extra or {}).items()}
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            if name not in langs.LANGUAGES:
                raise ValidationError("--language", f"unknown language {name!r}; expected one of "
                                      + ", ".join(langs.LANGUAGES))
        base_names = [n for n in wanted if langs.LANGUAGES[n].image is None]
        if base_names:
            yield from self._build_base(base_names, extra)
        for name in wanted:
            if name not in base_names:
                yield self._build_layer(langs.LANGUAGES[name], extra.get(name, []))

    # --- the base image --------------------------------------------------------------
    def _build_base(self, names: list[str], extra: Mapping[str, list[str]]) -> Iterator[BuildReport]:
        image = self.settings.sandbox_image
        t0 = time.monotonic()
        before = _inspect(image)
        if self.method == "dockerfile":
            tools = tools_dir()
            _run(["docker", "build", "-t", image, "-f", str(tools / "Dockerfile.sandbox"), str(tools)], image)
        else:
            args: list[str] = []
            if any(n in extra for n in langs.BASE_LANGUAGES):
                # Packages asked for one base language; the other keeps the extras it has.
                labels = _labels(before) or {}
                for n in langs.BASE_LANGUAGES:
                    have = labels.get(f"io.atomic.language.{n}.packages", "").split(",")
                    pkgs = extra.get(n, [p for p in have if p and p not in langs.LANGUAGES[n].packages])
                    args += [a for p in pkgs for a in ("--package", f"{n}:{p}")]
                args = args or ["--package", "python:python3"]  # explicit: exactly the defaults
            env = {"ATOMIC_IMAGE_CACHE_DIR": str(self.cache)}
            if self.rebuild:
                env["ATOMIC_REBUILD_IMAGE"] = "1"
            _run(["bash", str(tools_dir() / "build-sandbox-image.sh"), image, *args], image,
                 env={**os.environ, **env})
        after = _inspect(image)
        if after is None:
            raise SandboxError(f"building {image} left no image")
        built = before is None or before.get("Id") != after.get("Id")
        for name in names:
            rec = language_record(langs.LANGUAGES[name], image, _labels(after))
            yield BuildReport(name, image, built, time.monotonic() - t0 if built else 0.0, int(after.get("Size", 0)),
                              str(rec.version), tuple(rec.packages))

    # --- a language layer ------------------------------------------------------------
    def _build_layer(self, lang: langs.Language, extra: list[str]) -> BuildReport:
        image = self.image(lang)
        packages = (*lang.packages, *(p for p in extra if p not in lang.packages))
        current = _inspect(image)
        labels = _labels(current) or {}
        same = labels.get(f"io.atomic.language.{lang.name}.packages") == ",".join(packages) or not extra
        if current is not None and not self.rebuild and labels.get(LAYER_LABEL) == LAYER_RECIPE and same:
            rec = language_record(lang, image, labels)
            return BuildReport(lang.name, image, False, 0.0, int(current.get("Size", 0)), str(rec.version),
                               tuple(rec.packages))
        base = self.settings.sandbox_image
        if _inspect(base) is None:
            self.log(f"{lang.name}: building the base image {base} first")
            list(self._build_base([], {}))
        t0 = time.monotonic()
        self.log(f"{lang.name}: installing {' '.join(packages)} on {base} (apt cache: {self.cache / 'apt'})")
        archives, lists = self.cache / "apt" / "archives", self.cache / "apt" / "lists"
        archives.mkdir(parents=True, exist_ok=True)
        lists.mkdir(parents=True, exist_ok=True)
        script = (
            "set -e; export DEBIAN_FRONTEND=noninteractive; "
            "apt-get update -qq; "
            f"apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 {' '.join(packages)}; "
            "rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/locale/* /var/log/apt/* /var/log/*.log "
            "/var/cache/debconf/*-old /var/lib/dpkg/*-old /tmp/* /root/.cache; "
            f"echo \"atomic-version: $({lang.version_command})\""
        )
        name = f"atomic-build-{lang.name}-{secrets.token_hex(4)}"
        try:
            proc = _run(
                ["docker", "run", "--name", name, "--network", "host", "--user", "0:0",
                 "-v", f"{archives}:/var/cache/apt/archives", "-v", f"{lists}:/var/lib/apt/lists",
                 "--label", "io.atomic.build=1", base, "sh", "-c", script],
                f"the {lang.name} image", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            version = ""
            for line in proc.stdout.splitlines():
                if line.startswith("atomic-version: "):
                    version = line.split(": ", 1)[1].strip()
            if not version:
                raise SandboxError(f"the {lang.name} image does not report its version "
                                   f"({lang.version_command!r} printed nothing)")
            label = (f"LABEL io.atomic.languages={lang.name} {LAYER_LABEL}={LAYER_RECIPE} "
                     f"io.atomic.language.{lang.name}.version={version} "
                     f"io.atomic.language.{lang.name}.packages={','.join(packages)}")
            _run(["docker", "commit", "-c", "USER 10001:10001", "-c", "WORKDIR /workspace", "-c", 'CMD ["/bin/sh"]',
                  "-c", label, name, image], image, stdout=subprocess.DEVNULL)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        info = _inspect(image) or {}
        return BuildReport(lang.name, image, True, time.monotonic() - t0, int(info.get("Size", 0)), version, packages)


def build_image(settings: Settings, method: str = "debootstrap") -> str:
    """Build the base image ``settings.sandbox_image`` (python and shell) and return its name."""
    for _ in ImageBuilder(settings, method=method).build(langs.BASE_LANGUAGES):
        pass
    return settings.sandbox_image
