"""The record formats that trainers write and the orchestration reads. Each record is read
and written here only, by one reader and one writer; a malformed one is a `StoreError`
naming it (`record`).

- `progress`: progress records, JSON lines in immutable segments;
- `demos`: demonstration shards (npz) and the count of a demo collection (the
  generalist's: `demos/generalist/done.json`);
- `result`: a task's `result.json`;
- `plan`: the plans of GSL's rounds and the tasks they make (`plan.json`,
  `rounds/<r>/plan.json`), the pinned plateau (`plateau/pinned.json`) and each round's
  specialists' outcome (`specialists/outcome.json`);
- `baseline`: the baseline's budget and a concurrent baseline's allowance;
- `features`: the generalist's variation features (`generalist/features.json`);
- `run`: when the run was created (`run.json`);
- `record`: reading and writing one JSON record.

This layer stands on `gsl_k8s.store` and `gsl_k8s.layout` only (plus numpy): the controller,
the report and the operator read records without importing torch, gymnasium or the trainer.
"""
