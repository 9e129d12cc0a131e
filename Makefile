# Provisor: `make serve` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATABASE_URL ?= sqlite:///./provisor.db
PORT ?= 8000

.PHONY: serve test lint typecheck unit bench bench-smoke clean wheel-check image image-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	@$(BIN)/provisor migrate --database-url '$(DATABASE_URL)' >/dev/null
	@TOKEN=$$($(BIN)/provisor token create --name "make serve" --database-url '$(DATABASE_URL)' 2>/dev/null | tail -n 1); \
	echo ""; \
	echo "  SCIM base URL: http://127.0.0.1:$(PORT)/scim/v2"; \
	echo "  Bearer token:  $$TOKEN"; \
	echo "  Try: curl -H \"Authorization: Bearer $$TOKEN\" http://127.0.0.1:$(PORT)/scim/v2/Users"; \
	echo ""
	@exec $(BIN)/provisor serve --port $(PORT) --database-url '$(DATABASE_URL)'

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples
	$(BIN)/mypy bench

test: lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile --ignore=tests/container

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

# The README walk-through and the health check against the image, on SQLite and PostgreSQL.
image-test: image
	PROVISOR_IMAGE=$(IMAGE) $(BIN)/pytest -n 0 -p no:cacheprovider tests/container

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
