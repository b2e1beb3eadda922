"""Every language on the real engine: hello with stdin, args, a compile error, three cases
with one wrong, a case past its time limit among passing ones, and each compare mode.

One program per language behaves by its first line of input: ``sleep`` sleeps a minute,
``args`` prints its arguments joined by ``|``, anything else ``X`` prints ``hello, X``.
The hello run goes through ``execute``; the rest of a language's runs go as one batch.
"""

from __future__ import annotations

import pytest
import trio

from atomic.languages import LANGUAGES
from atomic.sandbox import Case, ExecutionResult, RunSpec, SandboxController


pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROGRAMS = {
    "python": ("main.py", """\
import sys, time
s = sys.stdin.read().strip()
if s == "sleep":
    time.sleep(60)
elif s == "args":
    print("|".join(sys.argv[1:]))
else:
    print("hello, " + s)
""", "def broken(:\n"),
    "shell": ("main.sh", """\
read -r s || true
case "$s" in
  sleep) sleep 60 ;;
  args) (IFS='|'; echo "$*") ;;
  *) echo "hello, $s" ;;
esac
""", "if then fi\n"),
    "c": ("main.c", """\
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char s[256] = {0};
    if (!fgets(s, sizeof s, stdin)) s[0] = 0;
    s[strcspn(s, "\\n")] = 0;
    if (!strcmp(s, "sleep")) { sleep(60); return 0; }
    if (!strcmp(s, "args")) {
        for (int i = 1; i < argc; i++) printf(i > 1 ? "|%s" : "%s", argv[i]);
        printf("\\n");
        return 0;
    }
    printf("hello, %s\\n", s);
    return 0;
}
""", "int main( { return 0; }\n"),
    "cpp": ("main.cpp", """\
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
int main(int argc, char **argv) {
    std::string s;
    std::getline(std::cin, s);
    if (s == "sleep") { std::this_thread::sleep_for(std::chrono::seconds(60)); return 0; }
    if (s == "args") {
        for (int i = 1; i < argc; ++i) std::cout << (i > 1 ? "|" : "") << argv[i];
        std::cout << "\\n";
        return 0;
    }
    std::cout << "hello, " << s << "\\n";
}
""", "int main() { undeclared(); }\n"),
    "javascript": ("main.js", """\
const s = require("fs").readFileSync(0, "utf8").trim();
if (s === "sleep") setTimeout(() => {}, 60000);
else if (s === "args") console.log(process.argv.slice(2).join("|"));
else console.log("hello, " + s);
""", "function (\n"),
    "go": ("main.go", """\
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	line, _ := bufio.NewReader(os.Stdin).ReadString('\\n')
	s := strings.TrimSpace(line)
	switch s {
	case "sleep":
		time.Sleep(time.Minute)
	case "args":
		fmt.Println(strings.Join(os.Args[1:], "|"))
	default:
		fmt.Println("hello, " + s)
	}
}
""", "package main\n\nfunc main() { x := 1 }\n"),
    "rust": ("main.rs", """\
use std::io::Read;
fn main() {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).unwrap();
    let s = s.trim();
    if s == "sleep" {
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    if s == "args" {
        let a: Vec<String> = std::env::args().skip(1).collect();
        println!("{}", a.join("|"));
        return;
    }
    println!("hello, {}", s);
}
""", "fn main() { let x: i32 = \"a\"; }\n"),
    "java": ("Main.java", """\
import java.io.*;

public class Main {
    public static void main(String[] args) throws Exception {
        String s = new BufferedReader(new InputStreamReader(System.in)).readLine();
        s = s == null ? "" : s.trim();
        if (s.equals("sleep")) { Thread.sleep(60000); return; }
        if (s.equals("args")) { System.out.println(String.join("|", args)); return; }
        System.out.println("hello, " + s);
    }
}
""", "public class Main { void f( }\n"),
}


@pytest.fixture
async def engine(language_images, controller_with):
    async with controller_with(timeout_s=10.0, batch_lanes=2, compile_timeout_s=60.0) as ctl:
        yield ctl


def spec(language: str, *, good: bool = True, **kw) -> RunSpec:
    entry, source, broken = PROGRAMS[language]
    return RunSpec(files=[(entry, (source if good else broken).encode())], language=language, **kw)


def verdicts(res: ExecutionResult) -> list[str]:
    return [t.verdict for t in res.tests or ()]


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_language(engine: SandboxController, language: str) -> None:
    assert language in engine.languages()
    compiled = LANGUAGES[language].compiled
    events: list[tuple[str, str, object]] = []
    with trio.fail_after(120):
        hello = await engine.execute(spec(language, stdin=b"world\n"), lambda s, t, c: events.append((s, t, c)))
    assert (hello.verdict, hello.stdout, hello.exit_code) == ("accepted", "hello, world\n", 0), hello
    assert (hello.compile is not None) == compiled
    if compiled:
        assert hello.compile is not None and hello.compile.exit_code == 0 and hello.compile.termination == "exited"
    assert "".join(t for s, t, _ in events if s == "stdout") == "hello, world\n"
    assert {c for _, _, c in events} == {None}  # a plain run's output names no case

    def cases(*cs: Case, compare: str = "lines", **kw) -> RunSpec:
        return spec(language, tests=cs, compare=compare, **kw)

    x = b"x\n"
    batch = [
        spec(language, stdin=b"args\n", args=("a", "b c", "")),
        spec(language, good=False),
        cases(Case(stdin=b"one\n", expected_stdout="hello, one\n"),
              Case(name="args", stdin=b"args\n", args=("p", "q"), expected_stdout="p|q"),
              Case(name="wrong", stdin=b"three\n", expected_stdout="hello, 3\n")),
        cases(Case(stdin=b"a\n", expected_stdout="hello, a"),
              Case(name="slow", stdin=b"sleep\n", expected_stdout=""),
              Case(stdin=b"b\n", expected_stdout="hello, b"),
              limits=engine.resolve_limits({"timeout_s": 3})),
        cases(Case(stdin=x, expected_stdout="hello, x\n"), Case(stdin=x, expected_stdout="hello, x"), compare="exact"),
        cases(Case(stdin=x, expected_stdout="hello, x   \n\n"), Case(stdin=x, expected_stdout="hello,  x"),
              compare="lines"),
        cases(Case(stdin=x, expected_stdout=" hello,\n\tx "), Case(stdin=x, expected_stdout="hello, y"),
              compare="tokens"),
    ]
    with trio.fail_after(240):
        args, broken, three, slow, exact, lines, tokens = await engine.execute_batch(batch)
    for res in (args, broken, three, slow, exact, lines, tokens):
        assert isinstance(res, ExecutionResult), res

    assert (args.verdict, args.stdout) == ("accepted", "a|b c|\n"), args

    if compiled:
        assert broken.verdict == "compile_error", broken
        assert broken.compile is not None and broken.compile.exit_code != 0 and broken.compile.stderr.strip()
        assert broken.stderr == broken.compile.stderr  # the run fields show why
    else:
        assert broken.verdict == "runtime_error" and broken.compile is None and broken.exit_code != 0, broken

    assert verdicts(three) == ["accepted", "accepted", "wrong_answer"], three
    assert (three.verdict, three.passed, three.stdout) == ("wrong_answer", 2, "hello, three\n")
    assert three.total == 3 and three.tests is not None and three.tests[1].name == "args"

    assert verdicts(slow) == ["accepted", "timeout", "accepted"], slow
    assert slow.verdict == "timeout" and slow.termination == "timeout" and slow.exit_code is None
    assert slow.tests is not None and 2900 < slow.tests[1].duration_ms < 8000

    assert verdicts(exact) == ["accepted", "wrong_answer"], exact
    assert verdicts(lines) == ["accepted", "wrong_answer"], lines
    assert verdicts(tokens) == ["accepted", "wrong_answer"], tokens


async def test_case_output_names_the_case(engine: SandboxController) -> None:
    events: list[tuple[str, str, object]] = []
    tests = (Case(name="first", stdin=b"a\n"), Case(stdin=b"b\n"))
    with trio.fail_after(60):
        res = await engine.execute(spec("python", tests=tests), lambda s, t, c: events.append((s, t, c)))
    assert verdicts(res) == ["accepted", "accepted"]
    by_case: dict[object, str] = {}
    for stream, text, case in events:
        assert stream == "stdout"
        by_case[case] = by_case.get(case, "") + text
    assert by_case == {"first": "hello, a\n", 1: "hello, b\n"}
