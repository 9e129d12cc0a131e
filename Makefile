# Provisor: `make serve` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATABASE_URL ?= $(or $(PROVISOR_DATABASE_URL),sqlite:///./provisor.db)
PORT ?= 8000
# The IdP suites: data kept beside the repository, never in it (`make conformance` only).
CONFORMANCE_DIR := ../shared/conformance

.PHONY: serve test conformance lint typecheck unit bench bench-smoke clean wheel-check image postgres-image image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# scripts/make_serve.py checks the port first, then mints a token (revoking earlier `make serve` ones).
serve: $(STAMP)
	@exec $(BIN)/python scripts/make_serve.py --port '$(PORT)' --database-url '$(DATABASE_URL)'

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench scripts
	$(BIN)/ruff format --check src tests examples bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples scripts
	$(BIN)/mypy bench

test: lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile

# Checked before anything is installed, so a clone without the suites fails at once, in one line.
conformance:
	@test -d '$(CONFORMANCE_DIR)' || { echo "make conformance: the IdP suites are missing: $(abspath $(CONFORMANCE_DIR)) not found (put the shared/ directory beside this repository)" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile tests/conformance

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

# The wheel and sdist, installed outside the repository (a fresh venv and pipx) and served.
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/check-wheel.sh

# The container image (podman; a Debian base made with mmdebstrap, no registry needed).
IMAGE ?= provisor:latest
image: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" deploy/container/build-image.sh $(IMAGE)

# PostgreSQL from Debian's packages, for compose.yaml where no registry is reachable (its base is made once).
POSTGRES_IMAGE ?= provisor-postgres:15
postgres-image:
	deploy/container/build-postgres-image.sh $(POSTGRES_IMAGE)

# The README walk-through and the health check against the image, on SQLite and PostgreSQL, and
# compose.yaml brought up with podman-compose over the PostgreSQL image above.
image-test: image postgres-image
	PROVISOR_IMAGE=$(IMAGE) PROVISOR_POSTGRES_IMAGE=localhost/$(POSTGRES_IMAGE) $(BIN)/pytest -n 0 -p no:cacheprovider tests/container

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
