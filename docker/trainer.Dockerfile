# A trainer: `gsl train`, run by the operator's Jobs. `make images` builds it; by hand, put the
# torch 2.13.0 wheel into docker/wheels/cpu/ first (PyTorch's CPU index), then
#   CPU:  docker build -f docker/trainer.Dockerfile -t gsl-trainer .
#   CUDA: the cu128 wheel in docker/wheels/cu128/, then
#         docker build -f docker/trainer.Dockerfile --build-arg TORCH_WHEELS=docker/wheels/cu128 -t gsl-trainer:cuda .
# An environment family's variant adds its pinned packages, docker/requirements/<family>.txt:
#   docker build -f docker/trainer.Dockerfile --build-arg FAMILY=procgen -t gsl-trainer:procgen .
# The sample-factory backend's variant adds Sample Factory 2.1.1 (its dependencies, then the
# package itself with --no-deps: its gymnasium<1.0 pin is known not to matter, see docs/trainers.md):
#   docker build -f docker/trainer.Dockerfile --build-arg BACKEND=sample-factory -t gsl-trainer:sf .
# The CUDA wheels bundle the CUDA runtime, so the base stays slim; nodes need the NVIDIA driver
# and device plugin. PyTorch and vectorized envs use /dev/shm: the Jobs mount a memory-backed
# emptyDir there (Docker's default is 64 MiB; use --shm-size=2g when running by hand).
# BASE_IMAGE is for hosts that cannot pull it (scripts/base-image.sh).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE} AS build
ARG TORCH_WHEELS=docker/wheels/cpu
ARG FAMILY=
ARG BACKEND=
WORKDIR /src
# Every pip install below, build isolation included, takes its versions from the lock.
ENV PIP_CONSTRAINT=/src/requirements.lock
COPY requirements.lock ./
COPY docker/requirements/ docker/requirements/
COPY ${TORCH_WHEELS}/ /wheels/
RUN python -m venv /opt/gsl \
    && /opt/gsl/bin/pip install --no-cache-dir /wheels/torch-2.13.0*.whl \
    && /opt/gsl/bin/pip install --no-cache-dir -r docker/requirements/trainer.txt \
        ${FAMILY:+-r docker/requirements/$FAMILY.txt} ${BACKEND:+-r docker/requirements/$BACKEND.txt} \
    && if [ -n "$BACKEND" ]; then \
        /opt/gsl/bin/pip install --no-cache-dir --no-deps -r "docker/requirements/$BACKEND-nodeps.txt"; \
    fi

# The package, as a wheel: a code change rebuilds only this and the last layer of the image.
FROM build AS package
COPY pyproject.toml README.md ./
COPY gsl_k8s/ gsl_k8s/
RUN /opt/gsl/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}
ARG FAMILY=
# SAPIEN 2 (ManiSkill2) loads the Vulkan loader even for state observations.
RUN if [ "$FAMILY" = maniskill2 ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends libvulkan1=1.3.239.0-1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /opt/gsl /opt/gsl
COPY --from=package /dist/ /dist/
RUN /opt/gsl/bin/pip install --no-cache-dir --no-deps /dist/*.whl
# Temporary files go to /dev/shm, writable wherever the image runs (the Jobs mount a memory-backed
# emptyDir there), so a read-only root filesystem works: importing torch needs a temp directory.
ENV PATH=/opt/gsl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/dev/shm \
    MPLCONFIGDIR=/dev/shm/matplotlib
# A name for the user: kopf, torch and getpass look it up (uid 65532 is in no base's passwd).
RUN echo 'gsl:x:65532:65532:gsl:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'gsl:x:65532:' >> /etc/group
USER 65532:65532
EXPOSE 9400
ENTRYPOINT ["gsl"]
CMD ["train", "--help"]
