# gsl-k8s developer and user entry points. `make demo` and `make test` work on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
SPEC   ?= examples/forkmaze.yaml

.PHONY: install test-deps demo test lint bench chart manifests images clean

install: $(VENV)/.installed

# torch is pinned to the CPU wheel first: a loose `torch` would pull GBs of CUDA packages.
# sample-factory comes last, without its dependencies (the extra installed them): its
# gymnasium<1.0 pin conflicts with ours and metaworld's (README, "Sample Factory backend").
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r docker/requirements/sample-factory-nodeps.txt
	touch $@

demo: install  ## run the Fork-Maze GSL experiment and its PPO baseline (~5 min on 2 cores)
	$(VENV)/bin/gsl run $(SPEC)

test-deps: install  ## what the tests run: Debian's prometheus, kube-apiserver (built once, cached), kubectl, helm
	PYTHON=$(PY) scripts/test-deps.sh

test: install test-deps lint  ## lint, then unit, learning and end-to-end tests against real servers
	$(PY) -m pytest -q

KUBE_BIN = $(HOME)/.cache/gsl-k8s/kubernetes-1.20.2/bin
HELM     = $(KUBE_BIN)/helm

lint: install test-deps  ## ruff, the Dockerfiles (hadolint), the chart (helm lint), generated files up to date
	$(VENV)/bin/ruff check gsl_k8s tests bench scripts
	$(VENV)/bin/ruff format --check gsl_k8s tests bench scripts
	$(VENV)/bin/hadolint docker/*.Dockerfile
	$(HELM) lint --strict charts/gsl
	$(PY) scripts/dashboards.py --check
	$(PY) scripts/readme_fields.py --check
	$(VENV)/bin/gsl crd | diff -q - manifests/crd.yaml

chart: install test-deps  ## regenerate the CRD (manifests/ and the chart), the dashboards and the README's trainer table
	$(VENV)/bin/gsl crd > manifests/crd.yaml
	cp manifests/crd.yaml charts/gsl/crds/gslexperiments.gsl.dev.yaml
	$(PY) scripts/dashboards.py
	$(PY) scripts/readme_fields.py
	$(HELM) lint --strict charts/gsl

manifests: chart  ## the plain-YAML install, rendered from the chart, for users without Helm
	$(HELM) template gsl charts/gsl --namespace gsl-system --include-crds > manifests/install.yaml

CUDA_TORCH = https://download.pytorch.org/whl/cu128
TRAINER    = ghcr.io/gsl-k8s/gsl-trainer:0.1.0

images:  ## build the operator image and the trainer images, CPU and CUDA: plain, per family, sample-factory (needs a Docker daemon)
	docker build -f docker/operator.Dockerfile -t ghcr.io/gsl-k8s/gsl-operator:0.1.0 .
	docker build -f docker/trainer.Dockerfile -t $(TRAINER) .
	docker build -f docker/trainer.Dockerfile -t $(TRAINER)-cuda --build-arg TORCH_INDEX=$(CUDA_TORCH) .
	docker build -f docker/trainer.Dockerfile -t $(TRAINER)-sample-factory --build-arg BACKEND=sample-factory .
	docker build -f docker/trainer.Dockerfile -t $(TRAINER)-sample-factory-cuda --build-arg BACKEND=sample-factory \
		--build-arg TORCH_INDEX=$(CUDA_TORCH) .
	for family in procgen metaworld maniskill2; do \
		docker build -f docker/trainer.Dockerfile -t $(TRAINER)-$$family --build-arg FAMILY=$$family . && \
		docker build -f docker/trainer.Dockerfile -t $(TRAINER)-$$family-cuda --build-arg FAMILY=$$family \
			--build-arg TORCH_INDEX=$(CUDA_TORCH) . || exit 1; \
	done

bench: install test-deps  ## GSL vs PPO over 3 seeds; env vs training throughput; backends; S3 store; operator scale
	$(PY) bench/gsl_vs_ppo.py
	$(PY) bench/throughput.py
	$(PY) bench/backends.py
	$(PY) bench/store_throughput.py
	$(PY) bench/operator_scale.py

clean:
	rm -rf $(VENV) runs
