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
    assert run["command"] == ["python3", "main.py"]
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
