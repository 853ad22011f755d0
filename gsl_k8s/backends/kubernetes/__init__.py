"""The Kubernetes backend: a `GSLExperiment` custom resource, driven by an operator that runs
each task as a Job."""
