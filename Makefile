# The two commands a newcomer needs: `make serve` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench clean system-tools screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# `make serve PORT=8081` (or HOST=0.0.0.0) when 8080 is taken or others must reach it.
HOST ?= 127.0.0.1
PORT ?= 8080
serve: $(STAMP)
	$(BIN)/callrec serve --host $(HOST) --port $(PORT)

# mypy keeps its cache outside the work tree, one for every clone on this machine (CI's
# clean clone too): a check from nothing takes 20-40 s, from the cache a second. mypy
# checks again every file whose contents differ from what the cache was made from.
MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/callrec/mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY_CACHE_DIR='$(MYPY_CACHE_DIR)' $(BIN)/mypy
	$(BIN)/lint-imports

# Debian tools the tests drive: ffmpeg (with libgsm) makes the GSM 6.10 fixtures and is
# the benchmark's baseline; chromium is the real browser the review page is tested in
# (driven by Playwright, no browser download); prometheus brings promtool, which loads and
# unit-tests the alert rules; docker-compose, caddy and systemd check the deploy files
# (`docker-compose config`, `caddy validate`, `systemd-analyze verify`), with no container
# engine started. podman builds the container image (no container is started either) and
# mmdebstrap makes the Debian base it is built on for its test; sip-tester brings sipp,
# which plays an SBC recording calls for the SIPREC tests. Where systemd runs, Debian
# starts the prometheus and caddy servers too: `systemctl disable --now prometheus caddy` if
# they are not wanted. Installed when missing and possible (root with apt-get); otherwise
# the tests that need them skip, which CI=true turns into failures.
SYSTEM_PACKAGES := ffmpeg chromium prometheus docker-compose caddy systemd podman mmdebstrap sip-tester
# The command each package is known by where the two names differ (package:command).
COMMAND_OF := sip-tester:sipp
system-tools:
	@missing=""; for tool in $(SYSTEM_PACKAGES); do \
	  command=$$tool; for pair in $(COMMAND_OF); do [ "$${pair%%:*}" = "$$tool" ] && command=$${pair#*:}; done; \
	  command -v $$command >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing from Debian's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing:$$missing (tests that need them will skip)"; fi; \
	fi

# One pytest worker per core (xdist), each given whole files: a module's shared services,
# page sites and replicas are built once.
# A single file or test runs faster on its own: `.venv/bin/pytest tests/...`.
test: lint system-tools
	$(BIN)/pytest -n auto --dist loadfile

# The README's pictures of the review page, taken by the browser tests that check it.
screenshots: $(STAMP) system-tools
	CALLREC_TEST_ARTEFACTS=docs/screenshots $(BIN)/pytest tests/retrieval/test_review_page_clarity.py -q

bench: $(STAMP) system-tools
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
