# bucketwarden developer tasks. `make help` lists them.
# Every target creates the virtualenv and installs the pinned dependencies itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The test kit (testkit/) is a second distribution, not on PyPI: it is installed from the clone, beside '.[dev]'.
$(STAMP): pyproject.toml testkit/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ./testkit -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install pinned dependencies

demo: $(STAMP) ## run the demo: the AWS Backup story end to end, on embedded AWS and Kubernetes emulators
	$(BIN)/bucketwarden demo

test: $(STAMP) ## lint, typecheck (tests and bench too), import contracts and the whole test suite
	$(BIN)/ruff check operator testkit tests bench tools
	$(BIN)/ruff format --check operator testkit tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check operator testkit tests bench tools
	$(BIN)/ruff format --check operator testkit tests bench tools

fmt: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix operator testkit tests bench tools
	$(BIN)/ruff format operator testkit tests bench tools

typecheck: $(STAMP) ## mypy strict over the packages, tests, bench and tools; the import-linter contracts
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP) ## only the fast unit tests
	$(BIN)/python -m pytest -q tests/unit

e2e: $(STAMP) ## only the e2e suite (kmock, or a real cluster via BUCKETWARDEN_E2E_KUBECONFIG)
	$(BIN)/python -m pytest -q tests/e2e

bench: $(STAMP) ## run the benchmarks and print tables
	$(BIN)/python -m bench

bench-smoke: $(STAMP) ## quick runs of every benchmark, checking shape only (B3/B4 start the operator: ~3 min)
	BUCKETWARDEN_BENCH_SMOKE=1 $(BIN)/python -m pytest -q tests/bench tests/unit/test_bench_smoke.py

crd: $(STAMP) ## regenerate crds/ and the chart's CRDs from spec.py
	$(BIN)/bucketwarden crd > crds/bucketwarden.io_protectedbuckets.yaml
	$(BIN)/bucketwarden crd --kind SourceAllowList > crds/bucketwarden.io_sourceallowlists.yaml
	$(BIN)/bucketwarden crd --kind TenantPolicy > crds/bucketwarden.io_tenantpolicies.yaml
	cp crds/bucketwarden.io_*.yaml charts/bucketwarden/crds/

# The image: IMAGE (default ghcr.io/bucketwarden/bucketwarden, the chart's image.repository), TAG (default the
# version in pyproject.toml, the chart's appVersion), BASE_IMAGE and ENGINE pass through to tools/image.sh.
export IMAGE TAG BASE_IMAGE ENGINE

image: ## build the operator image with docker or podman (tools/image.sh; a local base where no registry answers)
	tools/image.sh build
	tools/image.sh size

image-test: $(STAMP) ## build the image, then run every command and the operator from it (tests/image)
	@if tools/image.sh engine >/dev/null 2>&1; then \
	  tools/image.sh build && \
	  BUCKETWARDEN_IMAGE="$$(tools/image.sh ref)" $(BIN)/python -m pytest -q -rs tests/image && \
	  tools/image.sh size; \
	else \
	  $(BIN)/python -m pytest -q -rs tests/image; \
	fi

lock: ## regenerate constraints.txt from a fresh resolve (slow)
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q -e ./testkit -e '.[dev]'
	{ head -3 constraints.txt; .lockvenv/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.new && mv constraints.new constraints.txt
	rm -rf .lockvenv

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

.PHONY: help install demo test lint fmt typecheck unit e2e bench bench-smoke crd image image-test lock clean
