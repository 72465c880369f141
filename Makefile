# vodarchiver. `make run` and `make test` set everything up themselves on a fresh machine.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools/.ready
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: all run test lint typecheck format migrate bench screenshots clean lock venv tools docker-build

all: lint test

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap
	@scripts/bootstrap

$(TOOLS): scripts/ensure-tools
	@scripts/ensure-tools test

venv: $(STAMP)

tools: $(TOOLS)

run: $(STAMP)
	@scripts/ensure-tools run
	$(BIN)/vodarchiver run

test: $(STAMP) $(TOOLS)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) $(TOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/python scripts/check_compose.py
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The image compose runs (no embedded PostgreSQL); EMBEDDED_PG=1 keeps it for a lone container.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' vodarchiver/__init__.py)
docker-build:
	docker build --build-arg VERSION=$(VERSION) --build-arg EMBEDDED_PG=$(or $(EMBEDDED_PG),0) \
		-t vodarchiver:$(VERSION) -t vodarchiver:latest .

migrate: $(STAMP)
	$(BIN)/vodarchiver migrate

bench: $(STAMP)
	$(BIN)/python -m bench

# The console's screenshots in docs/ (README), taken by Debian's chromium at 1280x800.
screenshots: $(STAMP) $(TOOLS)
	$(BIN)/python -m tests.browser.screenshots

# Re-resolve every dependency to its newest allowed release and rewrite the lock.
lock:
	rm -rf .lock-venv
	python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	(echo '# Locked dependency versions (pip constraints), used by `make`. Rewrite with `make lock`.'; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^vodarchiver') > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
