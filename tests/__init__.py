"""gsl-k8s tests (a regular package: sample-factory installs a top-level `tests` package)."""
