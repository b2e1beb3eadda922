"""The README stays true to the code: every setting documented, the two commands first."""

from pathlib import Path

from atomic import config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_reference():
    missing = [var for var, _, _ in config.reference() if f"`{var}`" not in README]
    assert missing == []


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert first_block[0].startswith("tools/setup.sh && tools/demo.sh")
    assert first_block[1] == "tools/setup.sh && .venv/bin/python -m pytest"
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert first_block[1] in ci
