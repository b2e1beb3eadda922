"""The compile step on the real engine: its own limits, bombs contained, caches writable."""

from __future__ import annotations

import pytest
import trio

from atomic.sandbox import Case, ExecutionResult, RunSpec, SandboxController


pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Two nested loops, each under GCC's constexpr loop limit, about 4e10 steps in all: GCC
# would grind for many minutes before its operation limit stops it.
CONSTEXPR_BOMB = b"""\
constexpr unsigned long long spin() {
    unsigned long long x = 0;
    for (unsigned long long i = 0; i < 200000; ++i)
        for (unsigned long long j = 0; j < 200000; ++j)
            x += i ^ (x >> 3) ^ j;
    return x;
}
constexpr unsigned long long v = spin();
int main() { return (int)(v & 1); }
"""

# Each instantiation doubles: deep recursion, so the compiler's memory grows until the
# compile's limit stops it (or its time does).
TEMPLATE_BOMB = b"""\
#include <array>
#include <tuple>
template <int N> struct Boom {
    using T = decltype(std::tuple_cat(typename Boom<N - 1>::T{}, typename Boom<N - 1>::T{}));
};
template <> struct Boom<0> { using T = std::tuple<int>; };
int main() { return std::tuple_size<Boom<22>::T>::value > 0 ? 0 : 1; }
"""


@pytest.fixture
async def engine(language_images, controller_with):
    async with controller_with(timeout_s=5.0) as ctl:
        yield ctl


async def run(ctl: SandboxController, spec: RunSpec) -> ExecutionResult:
    with trio.fail_after(90):
        return await ctl.execute(spec)


async def test_endless_constexpr_is_a_compile_error_by_timeout(engine: SandboxController) -> None:
    limits = engine.resolve_limits({"compile_timeout_s": 3})
    t0 = trio.current_time()
    res = await run(engine, RunSpec(files=[("main.cpp", CONSTEXPR_BOMB)], language="cpp", limits=limits,
                                    tests=(Case(expected_stdout=""),)))
    assert res.verdict == "compile_error" and res.compile is not None
    assert res.compile.termination == "timeout" and res.compile.exit_code is None
    assert 2900 < res.compile.duration_ms < 8000
    assert res.tests == [] and (res.passed, res.total) == (0, 1)
    assert trio.current_time() - t0 < 30  # no hung worker


async def test_template_bomb_is_a_compile_error_by_memory_or_time(engine: SandboxController) -> None:
    limits = engine.resolve_limits({"compile_timeout_s": 20, "compile_memory_mb": 96})
    res = await run(engine, RunSpec(files=[("main.cpp", TEMPLATE_BOMB)], language="cpp", limits=limits))
    assert res.verdict == "compile_error" and res.compile is not None
    assert res.compile.termination in ("oom", "timeout"), res.compile


async def test_compile_and_run_have_their_own_memory(engine: SandboxController) -> None:
    # g++ needs far more than 24 MiB; the program then runs within 24 MiB. A 40 MiB
    # allocation fails under the run's limit, so the run cannot borrow the compile's.
    src = b"""\
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
int main() {
    std::cout << "small ok" << std::endl;
    char *p = (char *)malloc(40u << 20);
    if (!p) return 1;
    memset(p, 1, 40u << 20);
    long sum = 0;
    for (unsigned i = 0; i < (40u << 20); i += 4096) sum += p[i];  // used, so not optimised away
    std::cout << "big ok " << sum << std::endl;
}
"""
    limits = engine.resolve_limits({"memory_mb": 24, "compile_memory_mb": 512})
    res = await run(engine, RunSpec(files=[("main.cpp", src)], language="cpp", limits=limits))
    assert res.compile is not None and res.compile.termination == "exited" and res.compile.exit_code == 0
    assert res.termination == "oom" and res.stdout.startswith("small ok\n") and "big ok" not in res.stdout, res


async def test_compilers_are_offline_with_writable_caches(engine: SandboxController) -> None:
    go_fetch = b'package main\n\nimport "rsc.io/quote"\n\nfunc main() { println(quote.Hello()) }\n'
    res = await run(engine, RunSpec(files=[("main.go", go_fetch)], language="go"))
    assert res.verdict == "compile_error" and res.compile is not None
    assert "rsc.io/quote" in res.compile.stderr  # not fetched: no proxy, no network
    multi = [("main.go", b'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(twice(21)) }\n'),
             ("util.go", b"package main\n\nfunc twice(x int) int { return 2 * x }\n")]
    res = await run(engine, RunSpec(files=multi, language="go"))
    assert (res.verdict, res.stdout) == ("accepted", "42\n"), res
    java = [("Main.java", b"public class Main { public static void main(String[] a) { System.out.println(Util.x()); } }"),
            ("Util.java", b"class Util { static int x() { return 7; } }")]
    res = await run(engine, RunSpec(files=java, language="java"))
    assert (res.verdict, res.stdout) == ("accepted", "7\n"), res
    rust = [("main.rs", b"mod util;\nfn main() { println!(\"{}\", util::x()); }\n"),
            ("util.rs", b"pub fn x() -> i32 { 5 }\n")]
    res = await run(engine, RunSpec(files=rust, language="rust"))
    assert (res.verdict, res.stdout) == ("accepted", "5\n"), res


async def test_a_language_whose_image_is_missing(docker_client, sandbox_settings, controller_with) -> None:
    # Another base name: its language images do not exist.
    import docker

    client = docker.from_env()
    client.images.get(sandbox_settings.sandbox_image).tag("atomic-sandbox-nolangs", "latest")
    try:
        async with controller_with(sandbox_image="atomic-sandbox-nolangs:latest") as ctl:
            info = {r.name: r for r in ctl.languages_info()}
            assert ctl.languages() == ["python", "shell"]
            assert info["rust"].available is False and info["rust"].image == "atomic-sandbox-nolangs-rust:latest"
            assert info["python"].available and info["python"].packages == ["python3"]
            with pytest.raises(Exception) as err:
                await ctl.execute(RunSpec(files=[("main.rs", b"fn main(){}")], language="rust"))
            assert getattr(err.value, "code", None) == "language_unavailable"
            assert "atomic sandbox build-image --language rust" in str(err.value)
            assert ctl.statistics().runs_total == 0  # refused before any container
            (res,) = await ctl.execute_batch([RunSpec(files=[("main.go", b"")], language="go")])
            assert getattr(res, "code", None) == "language_unavailable"
    finally:
        client.images.remove("atomic-sandbox-nolangs:latest", noprune=True)
        client.close()
