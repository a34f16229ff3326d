# Two set-up commands: `make run` and `make test`; both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/data
export MUSIC_FEEDBACK_HOME := $(DATA)
export DAGSTER_HOME := $(DATA)/dagster_home

.PHONY: install run test ui bench warehouse clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/music-feedback run

test: install
	$(BIN)/python -m pytest -q

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/music-feedback bench

warehouse: install
	$(BIN)/music-feedback warehouse seed

clean:
	rm -rf $(DATA)
