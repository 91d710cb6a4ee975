# Two commands: `make demo` and `make test`. Both (re)create .venv when it is missing or older than the
# requirement files, so a fresh machine with Python 3.11 and make is enough. The project itself is installed
# in editable mode (pyproject.toml), so `kpt_tf`, `data_prep`, `tools` and `configs` import from anywhere.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(PY) -m pip install --disable-pip-version-check -q

.PHONY: demo test test-quick lint bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# pytest and ruff: only for testing, not a runtime requirement.
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) -r requirements-test.txt
	@touch $(TEST_STAMP)

demo: $(STAMP)
	$(PY) -m tools.demo

lint: $(TEST_STAMP)
	$(PY) -m ruff check .

# Two pytest workers (pytest-xdist): one test keeps about one core busy on average. `loadfile`: one worker runs
# all of a file, so a module fixture is built once (xdist's `xdist_group` marks do nothing under pytest 9.2:
# xdist 3.8 renames `item._nodeid`, which pytest 9 no longer reads). `--no-loadscope-reorder`: files go out in
# collection order, where tests/conftest.py puts the heaviest first (xdist's own order is by test count).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: lint
	$(PY) -m pytest -q $(XDIST) --durations=20 tests

# The quick subset (438 tests, 1 min 54 s on 2 vCPUs of an Intel Xeon host, 2026-12-08 night): everything not marked slow.
test-quick: lint
	$(PY) -m pytest -q $(XDIST) -m "not slow" tests

bench: $(STAMP)
	$(PY) -m bench.convert
	$(PY) -m bench.pipeline
	$(PY) -m bench.train_step
	$(PY) -m bench.kptransfer

clean:
	rm -rf runs
