"""``atomic sandbox build-image``: a language layer with an extra Debian package, its labels,
and what the controller then reports. Built under a throwaway base name, removed after."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio

from atomic.sandbox import RunSpec

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "atomic-sandbox-pkgtest:latest"
LAYER = "atomic-sandbox-pkgtest-javascript:latest"


@pytest.fixture
def throwaway_base(docker_client, language_images):
    docker_client.images.get("atomic-sandbox:latest").tag(BASE)
    yield BASE
    for image in (LAYER, BASE):
        try:
            docker_client.images.remove(image, noprune=False)
        except Exception:  # noqa: BLE001 - not built (the test failed earlier)
            pass


def build(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATOMIC_SANDBOX_IMAGE": BASE}
    return subprocess.run([sys.executable, "-m", "atomic", "sandbox", "build-image", *args],
                          capture_output=True, text=True, env=env, timeout=900, check=False)


async def test_a_layer_with_an_extra_package(throwaway_base, docker_client, controller_with) -> None:
    proc = await trio.to_thread.run_sync(build, "--language", "javascript", "--package", "jq")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("javascript") and LAYER in line and "built in" in line and " MB" in line, line
    assert line.endswith("nodejs,jq")
    labels = docker_client.images.get(LAYER).labels
    assert labels["io.atomic.language.javascript.packages"] == "nodejs,jq"
    assert labels["io.atomic.languages"] == "javascript"
    assert docker_client.images.get(LAYER).attrs["Config"]["User"] == "10001:10001"

    again = await trio.to_thread.run_sync(build, "--language", "javascript")
    assert again.returncode == 0 and "already built" in again.stdout, again.stdout + again.stderr

    async with controller_with(sandbox_image=BASE) as ctl:
        info = {r.name: r for r in ctl.languages_info()}
        assert info["javascript"].available and info["javascript"].packages == ["nodejs", "jq"]
        assert info["javascript"].image == LAYER and info["javascript"].version.startswith("18.")
        assert info["go"].available is False and "python" in ctl.languages()
        with trio.fail_after(60):
            res = await ctl.execute(RunSpec(files=[("main.js", b"")], language="javascript",
                                            command=["jq", "-n", "1 + 1"]))
        assert (res.verdict, res.stdout) == ("accepted", "2\n"), res

    bad = await trio.to_thread.run_sync(build, "--language", "javascript", "--package", "no;such")
    assert bad.returncode != 0 and "not a Debian package name" in bad.stderr
    unknown = await trio.to_thread.run_sync(build, "--language", "cobol")
    assert unknown.returncode != 0 and "unknown language" in unknown.stderr
