# Intrinsic Lab. The README's two commands: `make run` (set up and start) and `make test` (set up and test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export INTRINSIC_LAB_DATA ?= $(CURDIR)/data

.PHONY: setup system-deps run worker dashboard test test-system-deps clean-data gpu-check

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

setup: $(VENV)/.installed system-deps
	mkdir -p "$(INTRINSIC_LAB_DATA)"
	$(PY) -m db migrate

# Migrates, starts one job worker in the background and the dashboard (scripts/serve.sh; Ctrl-C stops both).
run: setup
	PYTHON=$(PY) PORT=$(PORT) ./scripts/serve.sh

worker: setup
	$(PY) -m engine worker

# Debian packages the tests need: chromium (browser test), postgresql (the PostgreSQL store tests) and
# libtcmalloc-minimal4 (the compute processes' allocator, engine/allocator.py).
test-system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	        || ! ls /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium postgresql libtcmalloc-minimal4 >/dev/null; \
	    else echo "note: install chromium, postgresql and libtcmalloc-minimal4 (Debian packages) to run every test"; \
	    fi; fi

# tcmalloc makes the networks up to 1.8x faster on the CPU (engine/allocator.py); without it the engine falls back to
# glibc. Installed when this runs as root on Debian/Ubuntu, else a note.
system-deps:
	@if ! ls /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq \
	        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 >/dev/null \
	        || echo "note: could not install libtcmalloc-minimal4; the engine uses glibc's allocator"; \
	    else echo "note: install libtcmalloc-minimal4 (Debian) for faster networks on the CPU"; fi; fi

# A throw-away PostgreSQL server (its URL in TEST_DATABASE_URL) and a throw-away S3 server (SeaweedFS, its URL with
# credentials in TEST_S3_URL) run beside the tests and are stopped however they end; without one of them the tests
# still run and the tests that need it skip with the reason.
test: $(VENV)/.installed $(VENV)/.installed-test test-system-deps
	@stops=""; trap 'eval "$$stops"' EXIT; trap 'exit 130' INT TERM; \
	if [ -z "$${TEST_DATABASE_URL:-}" ]; then \
	    if pg_url=$$(scripts/pg-test-server.sh start); then \
	        stops="$$stops scripts/pg-test-server.sh stop '$$pg_url';"; export TEST_DATABASE_URL="$$pg_url"; \
	    else echo "note: no PostgreSQL test server; the PostgreSQL store tests will skip"; fi; \
	fi; \
	if [ -z "$${TEST_S3_URL:-}" ]; then \
	    if s3_url=$$(PYTHON=$(PY) scripts/s3-test-server.sh start); then \
	        stops="$$stops scripts/s3-test-server.sh stop '$$s3_url';"; export TEST_S3_URL="$$s3_url"; \
	    else echo "note: no S3 test server; the object-storage tests will skip"; fi; \
	fi; \
	$(PY) -m pytest -q $(PYTEST_ARGS)

# On a machine with a CUDA GPU: every CUDA test and the GPU speed cases, into gpu-check.txt.
gpu-check: $(VENV)/.installed
	PYTHON=$(PY) REPORT=gpu-check.txt ./scripts/gpu_check.sh

clean-data:
	rm -rf "$(INTRINSIC_LAB_DATA)"
