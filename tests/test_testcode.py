"""Which languages take a test program, and the check that it is in the job's language
(atomic/testcode.py): Python must compile; the others are refused only for Python that
cannot be theirs, never for valid code of their own."""

from __future__ import annotations

import pytest

from atomic.errors import ValidationError
from atomic.testcode import check_test_code

PYTHON_TEST = "from main import add\n\nassert add(2, 3) == 5\n"


@pytest.mark.parametrize("language, code", [
    ("python", PYTHON_TEST),
    ("python", "import main\n"),
    ("javascript", "const { add } = require('./main.js');\nif (add(2, 3) !== 5) process.exit(1);\n"),
    ("javascript", "console.log(1)\n"),  # also valid Python, with nothing Python-only in it
    ("javascript", "x = 1\n"),
    ("javascript", "import { add } from './main.mjs';\n"),
    ("shell", "import foo\nfrom here import there\n"),  # commands, in a shell
    ("shell", "class A:\n"),
    ("shell", "[ \"$(sh main.sh)\" = 5 ] || exit 1\n"),
    ("java", "import java.util.List;\npublic class TestMain { public static void main(String[] a) {} }\n"),
    ("java", "class TestMain {}"),
])
def test_valid_test_programs_pass(language, code):
    check_test_code(code, language)


@pytest.mark.parametrize("language, code, words", [
    ("python", "assert add(2, 3 == 5\n", "not valid Python: line 1"),
    ("python", "return 1\n", "'return' outside function"),
    ("python", "x = '\0'\n" + "(" * 300 + ")" * 300, "not valid Python"),
    ("python", "const x = 1;\n", "not valid Python"),
    ("javascript", PYTHON_TEST, "looks like Python, not JavaScript"),
    ("javascript", "def test():\n    pass\n", "looks like Python"),
    ("java", "import main\nclass T:\n    pass\n", "looks like Python, not Java"),
    ("shell", "def test():\n    assert True\n", "looks like Python, not POSIX shell"),
    ("c", "int main(void) { return 0; }", "not supported for c yet"),
    ("rust", "fn main() {}", "not supported for rust yet"),
])
def test_refused_test_programs_name_the_field(language, code, words):
    with pytest.raises(ValidationError) as info:
        check_test_code(code, language)
    assert info.value.field == "test_code" and words in info.value.message, info.value.message
