# The operator: `gsl operator`. No torch, no gymnasium: the controller never trains.
# Build from the repository root: docker build -f docker/operator.Dockerfile -t gsl-operator .
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY docker/requirements/ docker/requirements/
RUN python -m venv /opt/gsl \
    && /opt/gsl/bin/pip install --no-cache-dir -r docker/requirements/operator.txt
COPY pyproject.toml README.md ./
COPY gsl_k8s/ gsl_k8s/
# --no-deps: the pinned requirements above are the whole environment (torch stays out).
RUN /opt/gsl/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.7-slim-bookworm
COPY --from=build /opt/gsl /opt/gsl
ENV PATH=/opt/gsl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["gsl"]
CMD ["operator", "--all-namespaces"]
