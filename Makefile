# Every target runs tools/setup.sh first: idempotent, fast when already done.
VENV ?= .venv
PY := $(VENV)/bin/python
PROMPT ?= Write a Python program that prints the first 10 square numbers

.PHONY: setup demo test test-fast bench lint typecheck zipapp clean screenshots

setup:
	@tools/setup.sh

demo: setup
	@tools/demo.sh "$(PROMPT)"

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run

# The web page's pictures in docs/screenshots/ (headless Chromium, replay provider).
screenshots: setup
	$(PY) tools/screenshots.py

lint:
	$(VENV)/bin/ruff check atomic tests benchmarks

typecheck:
	$(VENV)/bin/mypy atomic

clean:
	rm -rf build atomic/_fast/*.c atomic/_fast/*.so *.egg-info

zipapp:
	tools/build-zipapp.sh
