# Two commands for a newcomer: `make run` (set up and serve the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
export PORTAL_DEMO ?= 1

.PHONY: run lint test test-sqlite test-postgres fuzz api-fuzz setup screenshots translations translations-update clean \
        lock lock-upgrade sbom licences

# Installed from the lock (deps/test.txt: runtime, test and build packages, each with its
# hashes), never from pyproject.toml's ranges: a fresh machine gets exactly the tested set, and a
# package whose bytes differ from the lock is refused. The project itself is built without
# isolation so that setuptools, too, comes from the lock.
LOCK := deps/test.txt
$(BIN)/portal: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(BIN)/portal translations

translations: $(BIN)/portal
	$(BIN)/pybabel compile -d portal/translations 2>&1 | grep -v "^compiling" || true

# Links in mail are built on PORTAL_BASE_URL, never on the request's Host: unless it is set,
# it is the address `make run` serves on (demo and serve both write links).
run: export PORTAL_BASE_URL := $(or $(PORTAL_BASE_URL),http://127.0.0.1:$(PORT))
run: setup
	$(BIN)/portal init
	$(BIN)/portal demo
	PORT=$(PORT) $(BIN)/portal serve --port $(PORT)

# The architecture (import-linter contracts), ruff and mypy, all configured in pyproject.toml.
# All three run and report; the target fails if any of them did.
lint: setup
	@status=0; \
	$(BIN)/lint-imports || status=1; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

test: setup lint
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

# The browser tests inject axe-core (package-lock.json pins it) into every page they are shown;
# each run's records go to test-artifacts/axe/<database>/ and their sum is printed after it.
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

test-sqlite: setup $(AXE)
	@rm -rf test-artifacts/axe/sqlite test-artifacts/journeys/sqlite
	@status=0; PORTAL_TEST_DATABASE=sqlite $(BIN)/pytest -n 2 -q || status=$$?; \
	$(BIN)/python -m tests.browser.axe_report sqlite; exit $$status

test-postgres: setup $(AXE)
	@rm -rf test-artifacts/axe/postgresql test-artifacts/journeys/postgresql
	@status=0; PORTAL_TEST_DATABASE=$(PG_TEST_URL) $(BIN)/pytest -n 2 -q || status=$$?; \
	$(BIN)/python -m tests.browser.axe_report postgresql; exit $$status

# PNGs of each role's main pages at 1280 and 375 px, for a person to review, in
# test-artifacts/screenshots/ (Japanese text needs a CJK font: installed here if missing).
screenshots: setup $(AXE)
	@rm -rf test-artifacts/screenshots
	@fc-list :lang=ja 2>/dev/null | grep -q . || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; }
	PORTAL_TEST_DATABASE=sqlite PORTAL_SCREENSHOTS=test-artifacts/screenshots $(BIN)/pytest -q \
	  tests/browser/test_screenshots.py

# The long profile of the generative tests (tests/test_fuzz_routes.py; `make test` runs a short
# one, 2 examples per route): FUZZ_EXAMPLES examples per route, each sent as all 12 callers, on
# SQLite and then PostgreSQL. The count of generated requests is printed at the end of each run.
FUZZ_EXAMPLES ?= 20
fuzz: setup
	@status=0; \
	PORTAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PORTAL_TEST_DATABASE=sqlite $(BIN)/pytest -n 2 -q tests/test_fuzz_routes.py || status=1; \
	PORTAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PORTAL_TEST_DATABASE=$(PG_TEST_URL) $(BIN)/pytest -n 2 -q tests/test_fuzz_routes.py || status=1; \
	exit $$status

# The locks are made from pyproject.toml by uv (pinned here; it is a tool, not shipped).
# `make lock` after adding or changing a dependency in pyproject.toml keeps every other pin;
# `make lock-upgrade` takes the newest releases the ranges allow, on purpose, then run
# `make test` (tests/test_dependencies.py says when the calendar or a licence changed).
UV_VERSION := 0.13.9
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
             --python-platform x86_64-manylinux_2_28 $(UV_FLAGS)
lock: setup
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(UV_COMPILE) pyproject.toml -o deps/runtime.txt
	$(UV_COMPILE) deps/build.in -o deps/build.txt
	$(UV_COMPILE) pyproject.toml deps/build.in --extra test -c deps/runtime.txt -o deps/test.txt
	$(MAKE) --no-print-directory setup licences

lock-upgrade: UV_FLAGS := --upgrade
lock-upgrade: lock

# The SBOM of a production install (CycloneDX JSON) in dist/sbom.cdx.json.
sbom: setup
	$(BIN)/python deps/sbom.py --output dist/sbom.cdx.json

# The licence inventory deps/LICENCES.json; fails if a licence is missing or not allowed.
licences: setup
	$(BIN)/python deps/inventory.py
# The API fuzzing (tests/test_api_fuzz.py; `make test` runs 5 examples per operation):
# schemathesis against a live server, API_FUZZ_EXAMPLES per operation, on SQLite and then
# PostgreSQL. Its output (generated requests, findings) goes to test-artifacts/api-fuzz/.
API_FUZZ_EXAMPLES ?= 50
api-fuzz: setup
	@status=0; \
	PORTAL_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) PORTAL_API_FUZZ_OUT=test-artifacts/api-fuzz PORTAL_TEST_DATABASE=sqlite $(BIN)/pytest -q -s tests/test_api_fuzz.py || status=1; \
	PORTAL_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) PORTAL_API_FUZZ_OUT=test-artifacts/api-fuzz PORTAL_TEST_DATABASE=$(PG_TEST_URL) $(BIN)/pytest -q -s tests/test_api_fuzz.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache .import_linter_cache

# After adding or changing user-facing strings: refresh the catalogues, then translate
# every new entry in portal/translations/ja (a test fails while one is missing).
translations-update: $(BIN)/portal
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location -o portal/translations/messages.pot .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations --no-fuzzy-matching
