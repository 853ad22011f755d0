"""Where the controller reads the generalist's evaluation series for the plateau detector.

Both sources return the same thing, `(env step, value)` per evaluation, sorted by step:

- `StoreSource` (the default) reads the progress records in the store;
- `PrometheusSource` asks a Prometheus server that scrapes the trainer, over its HTTP API,
  for a value expression and an env-step expression on one time grid, and keeps the last
  value seen at each evaluation step.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from gsl_k8s.errors import GSLError
from gsl_k8s.layout import Task
from gsl_k8s.records.progress import ProgressReader
from gsl_k8s.spec import GSLExperiment
from gsl_k8s.store import ArtifactStore

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series
TOO_MANY_REQUESTS = 429


class MetricsSourceError(GSLError):
    """The metrics cannot be read: transient where the server may answer on a retry, not
    where it refuses the query."""

    reason = "MetricsSourceError"


class MetricsSource(Protocol):
    def evaluations(self) -> list[tuple[int, float]]:
        """(env step, value) of every evaluation so far, sorted by step."""
        ...


class StoreSource:
    """Evaluations from a task's progress records in the store."""

    def __init__(self, store: ArtifactStore, task: Task, metric: str):
        self.reader = ProgressReader(store, task.progress)
        self.key = f"eval/{metric}"

    def evaluations(self) -> list[tuple[int, float]]:
        """See `MetricsSource.evaluations`."""
        return [(r["step"], r[self.key]) for r in self.reader.records() if self.key in r]


class PrometheusSource:
    """Evaluations from a Prometheus server, read incrementally from `since` (epoch s).

    `query` and `step_query` must return series with the same labels (apart from
    `__name__`); several series (e.g. one per trainer restart) are merged.
    """

    def __init__(
        self, url: str, query: str, step_query: str, since: float, resolution: float = 5.0
    ):
        self.url = url.rstrip("/")
        self.query = query
        self.step_query = step_query
        self.resolution = resolution
        self._next = math.floor(since / resolution) * resolution
        self._points: dict[int, float] = {}

    def evaluations(self) -> list[tuple[int, float]]:
        """See `MetricsSource.evaluations`."""
        now = time.time()
        start = self._next
        while True:
            end = min(start + self.resolution * MAX_POINTS_PER_QUERY, now)
            values = self._query_range(self.query, start, end)
            steps = self._query_range(self.step_query, start, end)
            for labels, samples in values.items():
                step_at = steps.get(labels, {})
                for t, value in sorted(samples.items()):
                    if t in step_at:
                        self._points[int(step_at[t])] = value
            last = start + math.floor((end - start) / self.resolution) * self.resolution
            if end >= now:
                # The last point may pair a new step with old values: read it again next time.
                self._next = last
                break
            start = last + self.resolution
        return sorted(self._points.items())

    def _query_range(
        self, query: str, start: float, end: float
    ) -> dict[frozenset, dict[float, float]]:
        """{labels: {timestamp: value}} of a range query."""
        params = {"query": query, "start": start, "end": end, "step": self.resolution}
        url = f"{self.url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            retry = err.code >= 500 or err.code == TOO_MANY_REQUESTS
            raise MetricsSourceError(
                f"Prometheus {self.url} rejected {query!r}: {detail}", transient=retry
            ) from None
        except (urllib.error.URLError, OSError) as err:
            raise MetricsSourceError(
                f"cannot reach Prometheus at {self.url}: {getattr(err, 'reason', err)}",
                transient=True,
            ) from None
        series = {}
        for result in body["data"]["result"]:
            labels = frozenset((k, v) for k, v in result["metric"].items() if k != "__name__")
            series[labels] = {float(t): float(v) for t, v in result["values"]}
        return series


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        return json.load(err)["error"]
    except (ValueError, KeyError):
        return f"HTTP {err.code}"


def default_queries(experiment: GSLExperiment, namespace: str | None = None) -> tuple[str, str]:
    """PromQL for the generalist's evaluation metric and evaluation step; on Kubernetes,
    scoped to the experiment's namespace (names are unique only within one)."""
    scope = f'namespace="{namespace}",' if namespace else ""
    selector = f'{{{scope}experiment="{experiment.name}",role="generalist"}}'
    metric = experiment.spec.generalist.plateau.metric
    value = "gsl_eval_success_ratio" if metric == "success_rate" else "gsl_eval_return"
    return value + selector, "gsl_eval_env_steps" + selector


def metrics_source(
    experiment: GSLExperiment, store: ArtifactStore, since: float, namespace: str | None = None
) -> MetricsSource:
    """The source the spec asks for (`generalist.metricsSource`)."""
    generalist = experiment.spec.generalist
    prometheus = generalist.metrics_source.prometheus
    if prometheus is None:
        return StoreSource(store, Task("generalist"), generalist.plateau.metric)
    query, step_query = default_queries(experiment, namespace)
    return PrometheusSource(
        prometheus.url,
        prometheus.query or query,
        prometheus.step_query or step_query,
        since,
        prometheus.resolution_seconds,
    )
