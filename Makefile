# Two commands: `make demo` and `make test`. Both (re)create .venv from requirements.txt when it is
# missing or older than requirements.txt, so a fresh machine with Python 3.11 and make is enough.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m kpt_tf.demo

test: $(STAMP)
	$(PY) -m pytest -q tests

# The quick subset (about a minute): everything not marked slow.
test-quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) bench/convert.py
	$(PY) bench/pipeline.py
	$(PY) bench/train_step.py
	$(PY) bench/kptransfer.py

clean:
	rm -rf runs
