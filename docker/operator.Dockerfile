# The operator: `gsl operator`. No torch, no gymnasium: the controller never trains.
# Build from the repository root: docker build -f docker/operator.Dockerfile -t gsl-operator .
# (`make images` does; BASE_IMAGE is for hosts that cannot pull it: scripts/base-image.sh.)
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE} AS build
WORKDIR /src
# Every pip install below, build isolation included, takes its versions from the lock.
ENV PIP_CONSTRAINT=/src/requirements.lock
COPY requirements.lock ./
COPY docker/requirements/ docker/requirements/
RUN python -m venv /opt/gsl \
    && /opt/gsl/bin/pip install --no-cache-dir -r docker/requirements/operator.txt

# The package, as a wheel: a code change rebuilds only this and the last layer of the image.
FROM build AS package
COPY pyproject.toml README.md ./
COPY gsl_k8s/ gsl_k8s/
RUN /opt/gsl/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}
COPY --from=build /opt/gsl /opt/gsl
COPY --from=package /dist/ /dist/
# --no-deps: the pinned requirements are the whole environment (torch stays out).
RUN /opt/gsl/bin/pip install --no-cache-dir --no-deps /dist/*.whl
ENV PATH=/opt/gsl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp
# A name for the user: kopf, torch and getpass look it up (uid 65532 is in no base's passwd).
RUN echo 'gsl:x:65532:65532:gsl:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'gsl:x:65532:' >> /etc/group
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["gsl"]
CMD ["operator", "--all-namespaces"]
