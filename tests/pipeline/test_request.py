import pytest

from atomic.errors import ValidationError
from atomic.pipeline import request as r


def test_generate_defaults():
    req = r.parse_generate({"prompt": "hi"})
    assert req == {"prompt": "hi", "language": "python", "priority": "normal", "provider": None,
                   "model": None, "execute": True, "limits": {}, "export": ["zip"], "wait": False, "collect": False}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 32001}, "prompt"),
        ({"prompt": "x", "language": "cobol"}, "language"),
        ({"prompt": "x", "priority": "urgent"}, "priority"),
        ({"prompt": "x", "execute": "yes"}, "execute"),
        ({"prompt": "x", "export": ["rar"]}, "export"),
        ({"prompt": "x", "limits": {"memory_mb": -1}}, "limits.memory_mb"),
        ({"prompt": "x", "limits": {"disk": 1}}, "limits.disk"),
        ({"prompt": "x", "colour": "blue"}, "colour"),
        ([1, 2], "body"),
    ],
)
def test_generate_errors_name_the_field(body, field):
    with pytest.raises(ValidationError) as info:
        r.parse_generate(body)
    assert info.value.field == field
    assert info.value.message.startswith(field + ": ")


def test_execute_paths_are_checked_and_entry_resolved():
    run = r.parse_execute({"files": [{"path": "./main.py", "content": "print(1)"}]})
    assert run["files"] == [("main.py", b"print(1)")]
    assert (run["command"], run["entrypoint"], run["args"], run["tests"], run["compare"]) == (
        None, "main.py", [], None, "lines")
    with pytest.raises(ValidationError) as info:
        r.parse_execute({"files": [{"path": "../etc/passwd", "content": ""}]})
    assert info.value.field == "files[0].path"
    with pytest.raises(ValidationError) as info:
        r.parse_execute({"files": [{"path": "a.py", "content": ""}], "entrypoint": "b.py"})
    assert info.value.field == "entrypoint"


def test_batch_names_the_run():
    with pytest.raises(ValidationError) as info:
        r.parse_batch({"runs": [{"files": [{"path": "a.py", "content": ""}]}, {"files": []}]})
    assert info.value.field == "runs[1].files"
    with pytest.raises(ValidationError, match="at most 64"):
        r.parse_batch({"runs": [{"files": [{"path": "a.py", "content": ""}]}] * 65})


def test_execute_tests_args_compare_and_compile_limits():
    run = r.parse_execute({
        "language": "c", "files": [{"path": "x.c", "content": ""}], "args": ["-v", ""],
        "tests": [{"name": "one", "stdin": "1", "expected_stdout": "2", "expected_exit_code": 0},
                  {"args": ["a"]}],
        "compare": "tokens", "limits": {"compile_timeout_s": 5, "compile_memory_mb": 256},
    })
    assert run["entrypoint"] == "x.c" and run["args"] == ["-v", ""] and run["compare"] == "tokens"
    assert run["tests"] == [
        {"name": "one", "stdin": b"1", "args": None, "expected_stdout": "2", "expected_exit_code": 0},
        {"name": None, "stdin": None, "args": ["a"], "expected_stdout": None, "expected_exit_code": None},
    ]
    assert run["limits"] == {"compile_timeout_s": 5.0, "compile_memory_mb": 256}


@pytest.mark.parametrize("extra, field", [
    ({"tests": []}, "tests"),
    ({"tests": [{}] * 65}, "tests"),
    ({"tests": {"stdin": ""}}, "tests"),
    ({"tests": [{"expected": "x"}]}, "tests[0].expected"),
    ({"tests": [{"name": ""}]}, "tests[0].name"),
    ({"tests": [{"stdin": 1}]}, "tests[0].stdin"),
    ({"tests": [{}, {"expected_exit_code": 256}]}, "tests[1].expected_exit_code"),
    ({"tests": [{"expected_exit_code": True}]}, "tests[0].expected_exit_code"),
    ({"tests": [{"args": "a b"}]}, "tests[0].args"),
    ({"tests": [{"expected_stdout": "x" * 11}]}, "tests[0].expected_stdout"),
    ({"args": "a"}, "args"),
    ({"args": ["a\0b"]}, "args"),
    ({"compare": "fuzzy"}, "compare"),
    ({"limits": {"compile_memory_mb": 1.5}}, "limits.compile_memory_mb"),
    ({"language": "cobol"}, "language"),
])
def test_execute_bad_fields(extra, field):
    body = {"files": [{"path": "main.py", "content": ""}], **extra}
    with pytest.raises(ValidationError) as info:
        r.parse_execute(body, output_limit=10)
    assert info.value.field == field and info.value.code == "validation_error", info.value


def test_known_language_not_built_is_language_unavailable():
    body = {"language": "rust", "files": [{"path": "main.rs", "content": ""}]}
    with pytest.raises(ValidationError) as info:
        r.parse_execute(body, supported=["python", "shell"])
    assert info.value.code == "language_unavailable" and info.value.field == "language"
    assert "atomic sandbox build-image --language rust" in info.value.message
    with pytest.raises(ValidationError) as info:
        r.parse_batch({"runs": [{"files": [{"path": "a.py", "content": ""}]}, body]}, supported=["python"])
    assert info.value.code == "language_unavailable" and info.value.field == "runs[1].language"
    with pytest.raises(ValidationError) as info:
        r.parse_generate({"prompt": "x", "language": "go"}, supported=["python"])
    assert info.value.code == "language_unavailable"
    assert r.parse_execute(body, supported=[])["language"] == "rust"  # nothing known: not refused here
