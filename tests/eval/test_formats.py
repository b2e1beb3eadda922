"""Task files in each form, plain and gzipped; bad lines reported by number."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from atomic.eval.formats import mbpp_function_name, read_tasks, TaskError

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["plain", "gz"])
def opener(request, tmp_path):
    def make(name: str) -> Path:
        src = DATA / name
        if request.param == "plain":
            return src
        dst = tmp_path / (name + ".gz")
        with src.open("rb") as fin, gzip.open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        return dst
    return make


def test_humaneval(opener) -> None:
    tasks, bad = read_tasks(opener("humaneval_sample.jsonl"))
    assert bad == []
    assert [t.task_id for t in tasks] == ["AtomicHE/0", "AtomicHE/1", "AtomicHE/2"]
    t = tasks[0]
    assert t.form == "humaneval" and t.language == "python" and t.tests is None
    assert "def running_max(numbers: List[int]) -> List[int]:" in t.prompt
    assert "`running_max`" in t.prompt and "main.py" in t.prompt
    assert t.test_code is not None
    assert t.test_code.startswith("from main import *")
    assert "def check(candidate):" in t.test_code
    assert t.test_code.rstrip().endswith("check(running_max)")


def test_mbpp(opener) -> None:
    tasks, bad = read_tasks(opener("mbpp_sample.jsonl"))
    assert bad == []
    assert [t.task_id for t in tasks] == ["901", "902", "903"]
    t = tasks[2]
    assert t.form == "mbpp"
    assert "`merge_sorted`" in t.prompt and "assert merge_sorted([1, 4], [2, 3, 5])" in t.prompt
    assert t.test_code is not None
    # setup code runs before the asserts
    assert t.test_code.index("A = [0, 2, 2, 9]") < t.test_code.index("assert merge_sorted(A, B)")


def test_atomic(opener) -> None:
    tasks, bad = read_tasks(opener("atomic_sample.jsonl"))
    assert bad == []
    by_id = {t.task_id: t for t in tasks}
    assert by_id["sample/sum"].tests is not None and len(by_id["sample/sum"].tests) == 2
    assert by_id["sample/sum"].tests[0] == {"name": "three", "stdin": "1\n2\n3\n", "expected_stdout": "6\n"}
    assert by_id["sample/upper"].language == "python"  # the default
    assert by_id["sample/gcd"].test_code is not None and by_id["sample/gcd"].tests is None
    # A task without a language takes the caller's default.
    tasks, _ = read_tasks(opener("atomic_sample.jsonl"), default_language="shell")
    assert {t.task_id: t.language for t in tasks}["sample/upper"] == "shell"


def test_malformed_lines_are_reported_and_the_rest_read(tmp_path) -> None:
    good = json.loads((DATA / "atomic_sample.jsonl").read_text().splitlines()[0])
    lines = [
        json.dumps(good),                                              # 1 ok
        "{not json",                                                   # 2
        "",                                                            # 3 blank: skipped silently
        json.dumps({"task_id": "x", "prompt": "p"}),                   # 4 no tests
        json.dumps({"task_id": "y", "prompt": "p", "tests": [{"stdin": 3}]}),   # 5
        json.dumps({"task_id": "z", "prompt": "p", "tests": [{"expect": "1"}]}),  # 6 unknown field
        json.dumps(good),                                              # 7 duplicate id
        json.dumps([1, 2]),                                            # 8
        json.dumps({"task_id": 5, "text": "t", "test_list": ["print(1)"]}),     # 9 no call in asserts
        json.dumps({"task_id": "he", "prompt": "def f():\n", "test": "def check(c): pass",
                    "entry_point": "not a name"}),                     # 10
        json.dumps({**good, "task_id": "ok2"}),                        # 11 ok
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    tasks, bad = read_tasks(path)
    assert [t.task_id for t in tasks] == ["sample/sum", "ok2"]
    by_line = {b.line: b.message for b in bad}
    assert sorted(by_line) == [2, 4, 5, 6, 7, 8, 9, 10]
    assert "not valid JSON" in by_line[2]
    assert "expected tests or test_code" in by_line[4]
    assert by_line[5] == "tests[0].stdin: expected a string"
    assert by_line[6] == "tests[0].expect: unknown field"
    assert "already used on line 1" in by_line[7]
    assert by_line[8] == "expected a JSON object"
    assert "no assert calls a function" in by_line[9]
    assert "entry_point" in by_line[10]
    assert str(bad[0]).startswith("line 2: ")


def test_mbpp_function_name() -> None:
    assert mbpp_function_name(["assert foo(1) == 2"]) == "foo"
    assert mbpp_function_name(["assert set(similar_elements((3, 4), (5, 4))) == set((4,))"]) == "similar_elements"
    assert mbpp_function_name(["assert math.isclose(area(2), 12.56, rel_tol=0.001)"]) == "area"
    assert mbpp_function_name(["assert not is_prime(4)"]) == "is_prime"
    with pytest.raises(TaskError):
        mbpp_function_name(["x = 1"])
