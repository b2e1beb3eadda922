"""The language table (atomic/languages.py): every language complete, commands and names right."""

from __future__ import annotations

import pytest

from atomic import languages as langs

CONTRACT = ["python", "shell", "c", "cpp", "javascript", "go", "rust", "java"]


def test_the_eight_languages_in_order_and_complete():
    assert list(langs.LANGUAGES) == CONTRACT
    for lang in langs.LANGUAGES.values():
        assert lang.entrypoint.endswith(lang.extensions[0])
        assert lang.fences and lang.display and lang.version and lang.version_command
        assert lang.packages and lang.run
        assert bool(lang.compile) == lang.compiled
        assert (lang.image is None) == (lang.name in langs.BASE_LANGUAGES)
    assert langs.BASE_LANGUAGES == ("python", "shell")


@pytest.mark.parametrize("base, lang, expected", [
    ("atomic-sandbox:latest", "python", "atomic-sandbox:latest"),
    ("atomic-sandbox:latest", "go", "atomic-sandbox-go:latest"),
    ("atomic-sandbox", "rust", "atomic-sandbox-rust"),
    ("reg.example:5000/team/atomic-sandbox:1.2", "java", "reg.example:5000/team/atomic-sandbox-java:1.2"),
    ("reg.example:5000/atomic-sandbox", "c", "reg.example:5000/atomic-sandbox-c"),
])
def test_image_names_derive_from_the_base(base, lang, expected):
    assert langs.image_name(base, langs.LANGUAGES[lang]) == expected


def test_compile_and_run_commands():
    files = ["main.c", "util.c", "util.h", "README"]
    c = langs.LANGUAGES["c"]
    assert c.compile_command(files) == ["gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "util.c", "-lm"]
    assert c.command() == ["./main"]
    go = langs.LANGUAGES["go"]
    assert go.compile_command(["main.go", "a.go", "a_test.go", "sub/b.go"]) == [
        "go", "build", "-o", "main", "main.go", "a.go"]
    assert go.environment("/tmp/x")["GOCACHE"] == "/tmp/x/go-build"
    assert go.environment("/tmp/x")["GOPROXY"] == "off"
    rust = langs.LANGUAGES["rust"]
    assert rust.compile_command(["main.rs", "util.rs"]) == ["rustc", "--edition=2021", "-O", "-o", "main", "main.rs"]
    java = langs.LANGUAGES["java"]
    assert java.compile_command(["Main.java", "A.java"])[-3:] == [".", "Main.java", "A.java"]
    assert java.command("app/Main.java")[-1] == "app.Main"
    assert langs.LANGUAGES["python"].compile_command(["main.py"]) is None
    assert langs.LANGUAGES["javascript"].command("x.js") == ["node", "x.js"]
    cpp = langs.LANGUAGES["cpp"]
    assert cpp.compile_command(["b.cc", "main.cpp"], "main.cpp")[-3:] == ["main.cpp", "b.cc", "-lm"]


def test_default_entry_point():
    py = langs.LANGUAGES["python"]
    assert py.default_entry(["util.py", "main.py"]) == "main.py"
    assert py.default_entry(["data.txt", "tool.py"]) == "tool.py"
    assert py.default_entry(["data.txt"]) == "data.txt"
    assert langs.LANGUAGES["java"].default_entry(["Hello.java"]) == "Hello.java"


def test_supported_lists_available_languages_in_table_order():
    assert langs.supported(["go", "python"]) == ["python", "go"]
    assert langs.supported([]) == CONTRACT  # nothing known (sandbox down): all of them
    assert langs.supported(None) == CONTRACT
