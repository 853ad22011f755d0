# gsl-k8s developer and user entry points. `make demo` and `make test` work on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
SPEC   ?= examples/forkmaze.yaml

.PHONY: install test-deps demo test lint bench clean

install: $(VENV)/.installed

# torch is pinned to the CPU wheel first: a loose `torch` would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: install  ## run the Fork-Maze GSL experiment and its PPO baseline (~5 min on 2 cores)
	$(VENV)/bin/gsl run $(SPEC)

test-deps: install  ## what the tests run: Debian's prometheus, kube-apiserver (built once, cached), kubectl, helm
	PYTHON=$(PY) scripts/test-deps.sh

test: install test-deps  ## unit, learning and end-to-end tests, against real S3 and Prometheus servers
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check gsl_k8s tests bench
	$(VENV)/bin/ruff format --check gsl_k8s tests bench

bench: install  ## GSL vs the budget-matched PPO baseline over 3 seeds; S3 store throughput
	$(PY) bench/gsl_vs_ppo.py
	$(PY) bench/store_throughput.py

clean:
	rm -rf $(VENV) runs
