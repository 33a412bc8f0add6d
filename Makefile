# gitops-helm developer entry points. The two that matter: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help demo test unit integration lint fmt testenv-up testenv-down testenv-build system-deps bench bench-quick chaos chaos-quick clean

help:
	@echo "make demo          bring up the local environment and deploy examples/repo with gitops-helm"
	@echo "make test          lint + unit + integration tests (builds the test environment if needed)"
	@echo "make unit          unit tests only (no environment)"
	@echo "make lint          ruff, ruff format --check, mypy --strict, import contracts"
	@echo "make testenv-up    start the local environment (scripts/testenv up)"
	@echo "make testenv-down  stop it"
	@echo "make bench         the benchmark suite in full (environment up; long); writes BENCHMARKS.md"
	@echo "make bench-quick   the same at small sizes (a few minutes)"
	@echo "make chaos         the fault-injection suite in full (up to an hour); writes RELIABILITY.md"
	@echo "make chaos-quick   the same with a small count of each fault (a few minutes)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found " + sys.version.split()[0] + ")")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the environment runs: sshd for the Git-over-SSH server, the CNCF registry.
system-deps:
	@missing=""; command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

testenv-build:
	@scripts/testenv-build >/dev/null

testenv-up: system-deps
	scripts/testenv up

testenv-down:
	scripts/testenv down

lint: $(STAMP)
	$(VENV)/bin/ruff check gitops_helm tests bench chaos scripts/testenvlib
	$(VENV)/bin/ruff format --check gitops_helm tests bench chaos
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix gitops_helm tests bench chaos
	$(VENV)/bin/ruff format gitops_helm tests bench chaos

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

integration: $(STAMP) system-deps testenv-build
	$(VENV)/bin/pytest tests/integration -q

test: $(STAMP) system-deps
	@start=$$(date +%s); scripts/testenv-build >/dev/null; \
	  echo "test environment binaries ready ($$(( $$(date +%s) - start ))s)"
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

demo: $(STAMP) system-deps
	$(PY) scripts/demo.py

bench: $(STAMP) system-deps testenv-build
	$(PY) -m bench.run

bench-quick: $(STAMP) system-deps testenv-build
	$(PY) -m bench.run --quick

chaos: $(STAMP) system-deps testenv-build
	$(PY) -m chaos.run

chaos-quick: $(STAMP) system-deps testenv-build
	$(PY) -m chaos.run --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
