# kvfree-sim: `make reproduce` runs the main job, `make test` the test suite.
# Both set everything up first (a virtualenv in .venv), needing only Python 3.11+ and pip.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test reproduce bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

reproduce: $(STAMP)
	$(BIN)/kvfree-sim run --variant v5.11+v3 --cpus 64 --memory 512M \
	  --bootargs "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.holdoff=20 rcuscale.kfree_loops=10000 torture.disable_onoff_at_boot" --seed 1

bench: $(STAMP)
	$(BIN)/kvfree-sim bench

clean:
	rm -rf $(VENV) results build src/*.egg-info
