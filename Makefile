# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo airflow test test-fast lint audit bench wheel clean

$(STAMP): requirements.txt pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: any other spelling pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/petal demo

# Airflow on this laptop, UI and API on AIRFLOW_PORT, metadata in the embedded PostgreSQL
# (docs/airflow.md, "Run it on a laptop"). The store's schema first: the tasks need it.
AIRFLOW_PORT ?= 8080
airflow: $(STAMP)
	$(BIN)/petal db upgrade
	. $(BIN)/activate && settings="$$(petal airflow env --port $(AIRFLOW_PORT))" \
		&& eval "$$settings" && exec airflow standalone

# Everything, slow tests included: this is what CI runs.
test: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" -p no:cacheprovider --durations=25

# The quick subset for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pip-audit over the pinned requirements; says SKIPPED where its services are unreachable.
audit: $(STAMP)
	$(BIN)/python scripts/audit.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The wheel a team installs into its own Airflow (docs/deploy.md, section 7). Built from a
# clean build/ so no file deleted from the tree lingers in it.
wheel: $(STAMP)
	rm -rf build dist
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) .petal build dist
