# Intrinsic Lab. The README's two commands: `make run` (set up and start) and `make test` (set up and test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export INTRINSIC_LAB_DATA ?= $(CURDIR)/data

.PHONY: setup run worker dashboard test test-system-deps clean-data

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

setup: $(VENV)/.installed
	mkdir -p "$(INTRINSIC_LAB_DATA)"
	$(PY) -m db migrate

# One worker in the background (stopped when the dashboard stops) plus the dashboard in the foreground.
run: setup
	@echo "Intrinsic Lab on http://localhost:$(PORT)  (data in $(INTRINSIC_LAB_DATA))"
	$(PY) -m engine worker & worker=$$!; trap "kill $$worker 2>/dev/null" EXIT INT TERM; \
	$(PY) -m streamlit run dashboard/app.py --server.port $(PORT) --server.headless true \
	    --browser.gatherUsageStats false

worker: setup
	$(PY) -m engine worker

# Debian packages the tests need: chromium (browser test) and postgresql (the PostgreSQL store tests).
test-system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium postgresql >/dev/null; \
	    else echo "note: install chromium and postgresql (Debian packages) to run every test"; fi; fi

test: $(VENV)/.installed test-system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean-data:
	rm -rf "$(INTRINSIC_LAB_DATA)"
