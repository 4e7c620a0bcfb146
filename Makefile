# plantwatch: `make demo` runs the platform, `make test` runs every check. Both build .venv when needed.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := local,edge,cloud,ml,dev

.PHONY: demo test lint unit lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(BIN)/plantwatch up --data-dir .plantwatch-demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Re-resolve every dependency and pin the result (run after changing pyproject.toml's dependencies).
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade "pip>=24"
	.venv-lock/bin/pip install -q ".[$(EXTRAS)]"
	.venv-lock/bin/pip freeze --exclude plantwatch | sort > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-lock .mypy_cache .ruff_cache .pytest_cache
