# Two commands: `make demo` (set up the virtualenv, run the demo), `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test test-compiled test-pure compile pure lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The hot-path modules compiled in place with mypyc (vswitch/compiled.py); rebuilt only when
# a source changed.  A missing or stale build is never used: those modules then run from source.
compile: $(VENV)/.installed
	$(PY) -m vswitch.mypyc_build ensure

pure:
	rm -rf build *__mypyc.*.so $$(find vswitch -name '*.so')

# The demo runs compiled where a C compiler is at hand, interpreted otherwise.
demo: $(VENV)/.installed
	-@$(PY) -m vswitch.mypyc_build ensure
	$(VENV)/bin/vswitch-bench demo

# The suite runs twice: on the compiled dataplane, then on the same modules from source.
# Without a C compiler the first run is interpreted too, and says so (a skipped test).
test: test-compiled test-pure

test-compiled: $(VENV)/.installed
	$(PY) -m vswitch.mypyc_build ensure || echo "WARNING: no mypyc build (see above): this run is interpreted"
	$(PY) -m pytest

test-pure: $(VENV)/.installed
	VSWITCH_PURE=1 $(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: compile
	$(VENV)/bin/vswitch-bench switch

clean: pure
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
