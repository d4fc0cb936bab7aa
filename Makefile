# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Python packages come from uv.lock (uv itself from PyPI); Debian packages via apt-get.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EWS := $(BIN)/ews
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# uv gives each file 60 s to compile to bytecode by default; a loaded CI machine can need more
export UV_COMPILE_BYTECODE_TIMEOUT := 600

.PHONY: install demo test lint bench prefect-ui browser-deps clean

$(BIN)/ews: pyproject.toml uv.lock
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.9" || $(PY) -m pip install --quiet --user "uv>=0.9"
	$(PY) -m uv sync --frozen --compile-bytecode
	touch $(BIN)/ews

install: $(BIN)/ews

# axe-core (accessibility checks of the browser test) from npm into .browser/, served to the
# page from this disk by the test, never from a CDN.
AXE_VERSION := 4.14.1
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@test -f .browser/node_modules/axe-core/axe.min.js || ! command -v npm >/dev/null 2>&1 || \
		npm install --no-save --no-audit --no-fund --silent --prefix .browser axe-core@$(AXE_VERSION)

demo: install
	$(EWS) demo

# Two workers (pytest-xdist); one work unit per test module, and the modules of each expensive
# session fixture share one worker
# (tests/conftest.py, pytest_xdist_make_scheduler), so each is built once. Figures: docs/benchmarks.md.
test: install browser-deps
	$(BIN)/pytest -q -n 2 --dist loadscope

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/pytest bench --benchmark-only -q -o python_files="*.py"

prefect-ui: install
	PREFECT_HOME=$(CURDIR)/data/prefect $(BIN)/prefect server start --host 127.0.0.1 --port 4200

clean:
	rm -rf data
