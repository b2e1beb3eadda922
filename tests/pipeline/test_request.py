"""Request bodies through the contract's types: the 422 message names the field."""

import msgspec
import pytest
from msgspec import UNSET

from atomic.contract import BatchRequest, ExecuteRequest, GenerateRequest, JobSpec, decode, prepare_run
from atomic.errors import InvalidJSON, LanguageUnavailable, ValidationError


def test_generate_defaults():
    req = decode(b'{"prompt": "hi"}', GenerateRequest)
    assert (req.language, req.priority, req.provider, req.model, req.execute) == ("python", "normal", None, None, True)
    assert (req.export, req.wait, req.collect, req.samples, req.judge_all) == (("zip",), UNSET, False, 1, False)
    waiting = decode(b'{"prompt": "hi", "wait": true}', GenerateRequest)
    assert waiting.wait is True
    # The job keeps the request without wait, as its document shows it.
    assert msgspec.json.encode(waiting.spec()) == msgspec.json.encode(JobSpec(prompt="hi"))


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 32001}, "prompt"),
        ({"prompt": "x", "language": "cobol"}, "language"),
        ({"prompt": "x", "priority": "urgent"}, "priority"),
        ({"prompt": "x", "priority": "HIGH"}, "priority"),
        ({"prompt": "x", "execute": "yes"}, "execute"),
        ({"prompt": "x", "export": ["rar"]}, "export[0]"),
        ({"prompt": "x", "limits": {"memory_mb": -1}}, "limits.memory_mb"),
        ({"prompt": "x", "limits": {"disk": 1}}, "limits.disk"),
        ({"prompt": "x", "colour": "blue"}, "colour"),
        ({"prompt": "x", "samples": 9}, "samples"),
        ({"prompt": "x", "repairs": -1}, "repairs"),
        ({"prompt": "x", "tests": [{"stdin": "1", "expected": "2"}]}, "tests[0].expected"),
        ({"prompt": "x", "tests": [{}] * 65}, "tests"),
        ([1, 2], "body"),
    ],
)
def test_generate_errors_name_the_field(body, field):
    with pytest.raises(ValidationError) as info:
        decode(msgspec.json.encode(body), GenerateRequest)
    assert info.value.field == field
    assert info.value.message.startswith(field + ": ")


def test_the_additions_are_carried():
    req = decode(b'{"prompt": "p", "tests": [{"name": "one", "stdin": "1", "expected_stdout": "2"}], '
                 b'"test_code": "assert True", "samples": 4, "repairs": 2, "temperature": 0.7, "seed": 9, '
                 b'"judge_all": true, "limits": {"compile_timeout_s": 30, "compile_memory_mb": 512}}', GenerateRequest)
    assert req.tests is not None and req.tests[0].expected_stdout == "2"
    assert (req.samples, req.repairs, req.temperature, req.seed, req.judge_all) == (4, 2, 0.7, 9, True)
    assert req.limits.compile_timeout_s == 30 and req.limits.compile_memory_mb == 512


def test_not_json_is_400_however_deep():
    for body in (b"", b"{not json", b"[" * 5000 + b"]" * 5000, b"[" * 100_000):
        with pytest.raises(InvalidJSON):
            decode(body, GenerateRequest)


def test_execute_paths_are_checked_and_entry_resolved():
    run = prepare_run(decode(b'{"files": [{"path": "./main.py", "content": "print(1)"}], "args": ["-v"]}',
                             ExecuteRequest))
    assert run.files == [("main.py", b"print(1)")]
    assert (run.entrypoint, run.command, run.args, run.tests, run.compare) == ("main.py", None, ("-v",), None, "lines")
    with pytest.raises(ValidationError) as info:
        prepare_run(decode(b'{"files": [{"path": "../etc/passwd", "content": ""}]}', ExecuteRequest))
    assert info.value.field == "files[0].path"
    with pytest.raises(ValidationError) as info:
        prepare_run(decode(b'{"files": [{"path": "a.py", "content": ""}, {"path": "./a.py", "content": ""}]}',
                           ExecuteRequest))
    assert info.value.field == "files[1].path" and "duplicate" in info.value.message
    with pytest.raises(ValidationError) as info:
        prepare_run(decode(b'{"files": [{"path": "a.py", "content": ""}], "entrypoint": "b.py"}', ExecuteRequest))
    assert info.value.field == "entrypoint"
    with pytest.raises(LanguageUnavailable) as unavailable:
        prepare_run(decode(b'{"language": "shell", "files": [{"path": "a.sh", "content": ""}]}', ExecuteRequest),
                    available=["python"])
    assert "atomic sandbox build-image --language shell" in unavailable.value.message


def test_batch_names_the_run():
    with pytest.raises(ValidationError) as info:
        decode(b'{"runs": [{"files": [{"path": "a.py", "content": ""}]}, {"files": []}]}', BatchRequest)
    assert info.value.field == "runs[1].files"
    with pytest.raises(ValidationError, match="length <= 64"):
        decode(b'{"runs": [' + b",".join([b'{"files": [{"path": "a.py", "content": ""}]}'] * 65) + b"]}",
               BatchRequest)


def execute(body: dict, **kw) -> object:
    return prepare_run(decode(msgspec.json.encode(body), ExecuteRequest), **kw)


def test_execute_tests_args_compare_and_compile_limits():
    run = execute({
        "language": "c", "files": [{"path": "x.c", "content": ""}], "args": ["-v", ""],
        "tests": [{"name": "one", "stdin": "1", "expected_stdout": "2", "expected_exit_code": 0},
                  {"args": ["a"]}],
        "compare": "tokens", "limits": {"compile_timeout_s": 5, "compile_memory_mb": 256},
    })
    assert run.entrypoint == "x.c" and run.args == ("-v", "") and run.compare == "tokens" and run.command is None
    one, two = run.tests
    assert (one.name, one.stdin, one.args, one.expected_stdout, one.expected_exit_code) == ("one", "1", None, "2", 0)
    assert (two.name, two.stdin, two.args) == (None, None, ["a"])
    assert run.limits == {"compile_timeout_s": 5.0, "compile_memory_mb": 256}


def test_a_command_runs_without_an_entry_point_unless_compiled():
    run = execute({"files": [{"path": "lib.py", "content": ""}], "entrypoint": "x.py", "command": ["python3", "-V"]})
    assert run.command == ["python3", "-V"] and run.entrypoint == "x.py"
    with pytest.raises(ValidationError) as info:
        execute({"language": "c", "files": [{"path": "a.c", "content": ""}], "entrypoint": "x.c",
                 "command": ["./main"]})
    assert info.value.field == "entrypoint"


@pytest.mark.parametrize("extra, field", [
    ({"tests": []}, "tests"),
    ({"tests": [{}] * 65}, "tests"),
    ({"tests": {"stdin": ""}}, "tests"),
    ({"tests": [{"expected": "x"}]}, "tests[0].expected"),
    ({"tests": [{"name": ""}]}, "tests[0].name"),
    ({"tests": [{"name": "x" * 201}]}, "tests[0].name"),
    ({"tests": [{"stdin": 1}]}, "tests[0].stdin"),
    ({"tests": [{}, {"expected_exit_code": 256}]}, "tests[1].expected_exit_code"),
    ({"tests": [{"expected_exit_code": True}]}, "tests[0].expected_exit_code"),
    ({"tests": [{"args": "a b"}]}, "tests[0].args"),
    ({"tests": [{"expected_stdout": "x" * 11}]}, "tests[0].expected_stdout"),
    ({"args": "a"}, "args"),
    ({"args": ["a\0b"]}, "args[0]"),
    ({"compare": "fuzzy"}, "compare"),
    ({"limits": {"compile_memory_mb": 1.5}}, "limits.compile_memory_mb"),
    ({"language": "cobol"}, "language"),
])
def test_execute_bad_fields(extra, field):
    body = {"files": [{"path": "main.py", "content": ""}], **extra}
    with pytest.raises(ValidationError) as info:
        execute(body, output_limit=10)
    assert info.value.field == field and info.value.code == "validation_error", info.value


def test_known_language_not_built_is_language_unavailable():
    body = {"language": "rust", "files": [{"path": "main.rs", "content": ""}]}
    with pytest.raises(ValidationError) as info:
        execute(body, available=["python", "shell"])
    assert info.value.code == "language_unavailable" and info.value.field == "language"
    assert "atomic sandbox build-image --language rust" in info.value.message
    batch = decode(msgspec.json.encode({"runs": [{"files": [{"path": "a.py", "content": ""}]}, body]}), BatchRequest)
    with pytest.raises(ValidationError) as info:
        for i, run in enumerate(batch.runs):
            prepare_run(run, ["python"], f"runs[{i}].")
    assert info.value.code == "language_unavailable" and info.value.field == "runs[1].language"
    assert execute(body, available=[]).language == "rust"  # nothing known: not refused here
