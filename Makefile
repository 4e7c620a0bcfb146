# plantwatch: `make demo` runs the platform, `make test` runs every check. Both build .venv when needed.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := local,edge,cloud,ml,dev

CHECKOV := .venv-checkov

.PHONY: demo test lint unit lock clean checkov

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

PORT ?= 8080
MQTT_PORT ?= 1883
demo: $(STAMP)
	$(BIN)/plantwatch up --data-dir .plantwatch-demo --port $(PORT) --mqtt-port $(MQTT_PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint checkov
	$(BIN)/pytest

# checkov pins boto3 and a fork of python-hcl2, so it lives in its own venv (pins: constraints-checkov.txt).
$(CHECKOV)/.installed: constraints-checkov.txt
	$(PY) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q -c constraints-checkov.txt checkov
	touch $@

checkov: $(CHECKOV)/.installed
	$(CHECKOV)/bin/checkov -d cloud/terraform --framework terraform --skip-download --compact --quiet

# Re-resolve every dependency and pin the result (run after changing pyproject.toml's dependencies).
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade "pip>=24"
	.venv-lock/bin/pip install -q ".[$(EXTRAS)]"
	.venv-lock/bin/pip freeze --exclude plantwatch | sort > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(CHECKOV) .venv-lock .mypy_cache .ruff_cache .pytest_cache
