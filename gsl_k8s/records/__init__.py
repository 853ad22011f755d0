"""The record formats that trainers write and the orchestration reads.

- `progress`: progress records, JSON lines in immutable segments;
- `demos`: demonstration shards (npz) and the count of a demo collection;
- `result`: a task's `result.json`;
- `plan`: the plans of GSL's rounds, and the tasks they make.

This layer stands on `gsl_k8s.store` and `gsl_k8s.layout` only (plus numpy): the controller,
the report and the operator read records without importing torch, gymnasium or the trainer.
"""
