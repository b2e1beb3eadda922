from atomic.contract import ExecutionResult
from atomic.languages import LANGUAGES
from atomic.pipeline import prompt

PY = LANGUAGES["python"]


def paths(answer):
    return {f.path: f.content for f in prompt.extract_files(answer, PY)}


def test_messages_name_the_language_entry_and_command():
    msgs = prompt.messages("print squares", PY)
    assert msgs[0]["role"] == "system" and msgs[1] == {"role": "user", "content": "print squares"}
    assert "```python main.py" in msgs[0]["content"]
    assert "python3 main.py" in msgs[0]["content"]


def test_unnamed_block_becomes_the_entry_point():
    files = paths("Here you go:\n```python\nprint(1)\n```\nThis prints 1.")
    assert files == {"main.py": "print(1)\n"}


def test_names_on_the_fence_and_before_the_block():
    answer = (
        "```python main.py\nimport util\nutil.go()\n```\n"
        "**util.py**\n```python\ndef go():\n    print('x')\n```\n"
    )
    files = paths(answer)
    assert set(files) == {"main.py", "util.py"}
    assert files["util.py"].startswith("def go()")


def test_file_marker_on_the_first_line():
    files = paths("```python\n# file: main.py\nprint(2)\n```")
    assert files == {"main.py": "print(2)\n"}


def test_blocks_in_other_languages_are_not_programs():
    files = paths("```python\nprint(3)\n```\nOutput:\n```text\n3\n```\n```json\n{}\n```")
    assert files == {"main.py": "print(3)\n"}


def test_a_named_file_of_the_language_becomes_the_entry_point():
    files = paths("```python squares.py\nprint(4)\n```")
    assert files == {"main.py": "print(4)\n"}


def test_bare_code_without_fence_is_taken_when_it_looks_like_code():
    assert paths("for i in range(3):\n    print(i)") == {"main.py": "for i in range(3):\n    print(i)\n"}
    assert paths("I cannot help with that.") == {}


def test_repair_messages_carry_the_failure():
    msgs = prompt.messages("x", PY)
    failed = ExecutionResult(exit_code=1, stdout="", stderr="NameError: boom", duration_ms=5.0,
                             termination="exited", truncated=False)
    out = prompt.repair_messages(msgs, "```python\nboom\n```", PY, failed)
    assert out[:2] == msgs
    assert out[2] == {"role": "assistant", "content": "```python\nboom\n```"}
    assert "exit code 1" in out[3]["content"] and "NameError: boom" in out[3]["content"]


def test_every_language_prompt_names_its_fence_entry_and_how_it_runs():
    from atomic.languages import LANGUAGES as ALL

    for lang in ALL.values():
        system = prompt.messages("x", lang)[0]["content"]
        assert f"```{lang.fences[0]} {lang.entrypoint}" in system
        assert " ".join(lang.command()) in system
        if lang.compiled:
            assert "compiled with `" in system and lang.entrypoint in system.split("compiled with")[1]


def test_unnamed_blocks_of_other_languages_become_their_entry_points():
    from atomic.languages import LANGUAGES as ALL

    go = prompt.extract_files("```go\npackage main\nfunc main() {}\n```", ALL["go"])
    assert [(f.path, f.content) for f in go] == [("main.go", "package main\nfunc main() {}\n")]
    java = prompt.extract_files("```java\nclass Main {}\n```\n```text\nout\n```", ALL["java"])
    assert [f.path for f in java] == ["Main.java"]
    bare = prompt.extract_files("#include <stdio.h>\nint main(void){return 0;}", ALL["c"])
    assert [f.path for f in bare] == ["main.c"]
    broken = ExecutionResult(exit_code=1, stdout="", stderr="error[E0308]", duration_ms=9.0, termination="exited",
                             truncated=False, verdict="compile_error")
    repair = prompt.repair_messages([], "a", ALL["rust"], broken)
    assert "a compile error" in repair[-1]["content"] and "error[E0308]" in repair[-1]["content"]


def test_an_unclosed_block_cut_at_max_tokens_is_still_the_program() -> None:
    answer = "Here it is:\n```python main.py\nimport sys\nprint(sys.stdin.read().upper())\n"
    files = prompt.extract_files(answer, LANGUAGES["python"])
    assert [(f.path, f.content) for f in files] == [("main.py", "import sys\nprint(sys.stdin.read().upper())\n")]


def test_a_closing_fence_never_opened_ends_the_program_before_the_prose() -> None:
    answer = "n = int(input())\nprint(n * n)\n```\n\nThis Python script squares a number."
    files = prompt.extract_files(answer, LANGUAGES["python"])
    assert [(f.path, f.content) for f in files] == [("main.py", "n = int(input())\nprint(n * n)\n")]


def test_a_bare_fence_after_prose_opens_the_program() -> None:
    answer = "Sure:\n```\nfor i in range(3):\n    print(i)\n"
    files = prompt.extract_files(answer, LANGUAGES["python"])
    assert [(f.path, f.content) for f in files] == [("main.py", "for i in range(3):\n    print(i)\n")]
