# kvfree-sim: `make reproduce` runs the main job, `make test` the test suite.
# Both set everything up first (a virtualenv in .venv), needing only Python 3.11+ and pip.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test reproduce reproduce-edge bench mypyc test-mypyc bench-mypyc clean

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

# KVFREE_SIM=.venv-mypyc/bin/kvfree-sim (after make mypyc) runs the jobs with the compiled build.
KVFREE_SIM ?= $(BIN)/kvfree-sim

reproduce: $(STAMP)
	$(KVFREE_SIM) compare --variants $(VARIANTS) --runs $(RUNS) --cpus 64 --memory 512M \
	  --bootargs "$(BOOTARGS)" --out results/

# The same just above the memory edge (see README): every run reclaims in the boot tail (4 seeds: none panicked).
EDGE_MEMORY ?= 576M
reproduce-edge: $(STAMP)
	$(KVFREE_SIM) compare --variants $(VARIANTS) --runs $(RUNS) --cpus 64 --memory $(EDGE_MEMORY) \
	  --bootargs "$(BOOTARGS)" --out results-$(EDGE_MEMORY)/

bench: $(STAMP)
	$(BIN)/kvfree-sim bench

# Optional: the model compiled with mypyc (needs a C compiler and Python headers) in its
# own virtualenv, rebuilt when a source changes. Same results as the pure-Python build.
MYPYC_VENV := .venv-mypyc
MYPYC_BIN  := $(MYPYC_VENV)/bin
MYPYC_STAMP := $(MYPYC_VENV)/.installed

mypyc: $(MYPYC_STAMP)

$(MYPYC_STAMP): pyproject.toml setup.py $(shell find src -name '*.py' -o -name '*.json')
	rm -rf $(MYPYC_VENV) build
	$(PYTHON) -m venv $(MYPYC_VENV)
	$(MYPYC_BIN)/python -m pip install --quiet --upgrade pip
	$(MYPYC_BIN)/python -m pip install --quiet 'mypy==2.4.1' 'setuptools>=77' wheel
	KVFREE_SIM_MYPYC=1 $(MYPYC_BIN)/python -m pip install --quiet --no-build-isolation '.[test]'
	rm -rf build
	touch $@

test-mypyc: $(STAMP) $(MYPYC_STAMP)
	$(MYPYC_BIN)/python -m pytest

bench-mypyc: $(MYPYC_STAMP)
	$(MYPYC_BIN)/kvfree-sim bench

clean:
	rm -rf $(VENV) $(MYPYC_VENV) results results-*M build src/*.egg-info
