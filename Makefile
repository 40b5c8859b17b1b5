# kvfree-sim: `make reproduce` runs the main job, `make test` the test suite.
# Both set everything up first (a virtualenv in .venv), needing only Python 3.11+ and pip.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test reproduce reproduce-edge bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The thread's experiment: 64 CPUs, 512 MB, 16 kfree threads x 10000 loops.
VARIANTS ?= v5.11,v5.11+v3,v5.11+v3+backoff,v5.11+v3+cancel,v5.14
RUNS     ?= 2
BOOTARGS := rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.holdoff=20 rcuscale.kfree_loops=10000 torture.disable_onoff_at_boot

reproduce: $(STAMP)
	$(BIN)/kvfree-sim compare --variants $(VARIANTS) --runs $(RUNS) --cpus 64 --memory 512M \
	  --bootargs "$(BOOTARGS)" --out results/

# The same at the model's memory edge (see README): slower, the runs reclaim.
reproduce-edge: $(STAMP)
	$(BIN)/kvfree-sim compare --variants $(VARIANTS) --runs $(RUNS) --cpus 64 --memory 352M \
	  --bootargs "$(BOOTARGS)" --out results-352M/

bench: $(STAMP)
	$(BIN)/kvfree-sim bench

clean:
	rm -rf $(VENV) results results-352M build src/*.egg-info
