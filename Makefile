# The two commands that matter on a fresh machine (see README.md):
#   make run    set up and run TOW on its embedded PostgreSQL at http://127.0.0.1:8000
#   make test   set up and run every test (ruff, import-linter contracts, unit, contract and browser tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit contract nightly bench clean-venv screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "TOW needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(VENV)/.installed

# For local evaluation only: never overwrites an existing .env.
.env:
	@umask 077 && printf 'APP_SECRET=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))')" > $@
	@echo "make run: wrote .env with a freshly generated APP_SECRET (local evaluation only; keep it secret)"

run: $(VENV)/.installed .env
	$(BIN)/tow serve --migrate

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --output-format concise src tests bench
	$(BIN)/lint-imports

# The browser tests (tests/e2e/browser) drive Debian's Chromium; a browser is never downloaded
# (no `playwright install`). Installed with apt when missing (CI runs as root).
/usr/bin/chromium:
	apt-get update && apt-get install -y chromium

# Re-take docs/screenshots/*.png (shown in README.md) from the browser tests.
screenshots: $(VENV)/.installed-dev /usr/bin/chromium
	TOW_SCREENSHOTS=1 $(BIN)/python -m pytest tests/e2e/browser -q

# Test files are spread over TEST_WORKERS processes (pytest-xdist), each with its own embedded PostgreSQL; the
# 15 slowest tests are listed at the end to keep an eye on the budget (15 minutes on 2 cores).
TEST_WORKERS ?= 2
test: lint /usr/bin/chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

nightly: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --nightly -m nightly

clean-venv:
	rm -rf $(VENV)
