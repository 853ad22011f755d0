"""Generalist-Specialist Learning for deep RL, on one machine or as Kubernetes Jobs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gsl-k8s")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
