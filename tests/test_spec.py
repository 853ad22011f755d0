import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gsl_k8s.cli import main
from gsl_k8s.spec import load_spec, parse_spec
from tests.conftest import TINY_SPEC, merge

EXAMPLES = sorted(Path(__file__).parent.parent.glob("examples/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    experiment = load_spec(path)
    assert experiment.kind == "GSLExperiment"
    assert experiment.api_version == "gsl.dev/v1alpha1"


def test_camel_case_round_trip():
    experiment = parse_spec(TINY_SPEC)
    assert experiment.spec.trainer.num_envs == 8
    assert experiment.spec.generalist.evaluation.every_steps == 1024
    assert parse_spec(yaml.safe_load(experiment.to_json())) == experiment


def test_evaluation_actions_are_set_per_role_and_sampled_by_default():
    patch = {"spec": {"specialists": {"evaluation": {"actions": "greedy"}}}}
    spec = parse_spec(merge(TINY_SPEC, patch)).spec
    assert spec.specialists.evaluation.actions == "greedy"
    assert spec.generalist.evaluation.actions == spec.finetune.evaluation.actions == "sample"


BAD_SPECS = [
    ({"spec": {"trainer": {"numEnvs": -4}}}, "spec.trainer.numEnvs", "greater than 0"),
    ({"spec": {"trainer": {"learningRate": "fast"}}}, "spec.trainer.learningRate", "valid number"),
    ({"spec": {"trainer": {"bogus": 1}}}, "spec.trainer.bogus", "unknown field"),
    (
        {"spec": {"trainer": {"clipValueLos": True}}},
        "spec.trainer.clipValueLos",
        "unknown field (did you mean clipValueLoss?)",
    ),
    (
        {"spec": {"trainer": {"clipCoef": 0}}},
        "spec.trainer.clipCoef",
        "greater than 0 (clipCoef: PPO's surrogate clipping range",
    ),
    ({"spec": {"generalist": {"envSteps": -1}}}, "spec.generalist.envSteps", "greater than 0"),
    ({"spec": {"finetune": {"method": "gal"}}}, "spec.finetune.method", "'bc' or 'gail'"),
    ({"spec": {"specialists": {"count": 7}}}, "spec.specialists.count", "7 specialists for 6"),
    (
        {"spec": {"specialists": {"envStepsPerVariation": 0}}},
        "spec.specialists.envStepsPerVariation",
        "greater than 0",
    ),
    (
        {"spec": {"finetune": {"method": "gail", "demoLikelihood": "prob"}}},
        "spec.finetune.demoLikelihood",
        "dapg and bc only",
    ),
    (
        {"spec": {"finetune": {"method": "gail", "demoWeighting": "per-variation"}}},
        "spec.finetune.demoWeighting",
        "dapg and bc only",
    ),
    (
        {
            "spec": {
                "finetune": {"demoWeighting": "per-variation"},
                "trainer": {"backend": "sample-factory"},
            }
        },
        "spec.finetune.demoWeighting",
        "needs the builtin trainer backend",
    ),
    (
        {"spec": {"specialists": {"select": {"strategy": "lowest", "count": 9}}}},
        "spec.specialists.select.count",
        "exceeds the number of variations",
    ),
    (
        {"spec": {"specialists": {"select": {"strategy": "lowest"}}}},
        "spec.specialists.select.count",
        "required",
    ),
    (
        {"spec": {"specialists": {"partition": "kmeans"}}},
        "spec.specialists.partition",
        "'balanced' or 'features'",
    ),
    ({"spec": {"env": {"family": "gymnasium"}}}, "spec.env.id", "required"),
    ({"spec": {"env": {"variations": [1, 1]}}}, "spec.env.variations", "duplicate"),
    ({"spec": {"trainer": {"numMinibatches": 3}}}, "spec.trainer.numMinibatches", "divide"),
    ({"spec": {"demos": {"successOnly": "maybe"}}}, "spec.demos.successOnly", "boolean"),
    (
        {"spec": {"finetune": {"evaluation": {"actions": "argmax"}}}},
        "spec.finetune.evaluation.actions",
        "'sample' or 'greedy'",
    ),
    ({"metadata": {"name": "Bad_Name"}}, "metadata.name", "pattern"),
    ({"apiVersion": "v1"}, "apiVersion", "gsl.dev/v1alpha1"),
    ({"kind": "Job"}, "kind", "GSLExperiment"),
]


@pytest.mark.parametrize(("patch", "field", "words"), BAD_SPECS, ids=[b[1] for b in BAD_SPECS])
def test_bad_spec_exits_2_naming_the_field(write_spec, capsys, patch, field, words):
    path = write_spec(patch)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{field}:" in err
    assert words in err
    assert err.count("\n") == 1  # one line


def test_missing_and_malformed_files(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed")
    assert main(["validate", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    assert main(["validate", str(scalar)]) == 2
    assert "YAML mapping" in capsys.readouterr().err


def test_cli_reports_bad_spec_without_traceback(write_spec):
    path = write_spec({"spec": {"specialists": {"count": 0}}})
    proc = subprocess.run(
        [sys.executable, "-m", "gsl_k8s", "run", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("gsl: error:") and "spec.specialists.count" in proc.stderr


def test_run_refuses_a_directory_of_another_spec(write_spec, tmp_path, capsys):
    from gsl_k8s.orchestration.controller import record_spec
    from gsl_k8s.store import open_store

    store = open_store(str(tmp_path / "run"))
    record_spec(store, load_spec(write_spec()))
    other = write_spec({"spec": {"seed": 99}}, name="other.yaml")
    assert main(["run", str(other), "--out", str(tmp_path / "run")]) == 2
    assert "holds a run of a different spec (spec.seed: 3 stored, 99 now)" in (
        capsys.readouterr().err
    )


def test_a_stored_run_continues_under_other_metadata_but_not_another_spec(write_spec, tmp_path):
    """The same spec from another cluster's object (namespace, uid, labels) continues the
    run; a changed one is refused, naming the fields that differ."""
    from gsl_k8s.orchestration.controller import SpecChangedError, record_spec
    from gsl_k8s.store import open_store

    store = open_store(str(tmp_path / "run"))
    assert record_spec(store, load_spec(write_spec())) is False  # a new run
    elsewhere = {"namespace": "other", "uid": "0f3e", "labels": {"team": "rl"}}
    moved = write_spec({"metadata": elsewhere}, name="moved.yaml")
    assert record_spec(store, load_spec(moved)) is True
    changed = write_spec(
        {"spec": {"seed": 99, "trainer": {"numEnvs": 16}, "env": {"variations": [0, 1, 2, 3]}}},
        name="changed.yaml",
    )
    expected = (
        "(spec.env.variations: 6 stored, [0, 1, 2, 3] now; spec.seed: 3 stored, 99 now; "
        "spec.trainer.numEnvs: 8 stored, 16 now)"
    )
    with pytest.raises(SpecChangedError) as refused:
        record_spec(store, load_spec(changed))
    assert expected in str(refused.value)
    renamed = write_spec({"metadata": {"name": "other"}}, name="renamed.yaml")
    with pytest.raises(SpecChangedError, match="metadata.name: 'tiny' stored, 'other' now"):
        record_spec(store, load_spec(renamed))


def test_every_spec_field_is_described():
    """`gsl validate`, the CRD (kubectl explain) and docs/reference/spec.md read these
    descriptions; a field that holds an object may use its model's docstring instead."""
    from pydantic import BaseModel

    from gsl_k8s import spec

    models = [m for m in vars(spec).values() if isinstance(m, type) and issubclass(m, spec._Model)]
    assert spec.TrainerSpec in models and spec.RoleJobSpec in models
    for model in models:
        for name, info in model.model_fields.items():
            held = [t for t in getattr(info.annotation, "__args__", (info.annotation,))]
            documented = [t for t in held if isinstance(t, type) and issubclass(t, BaseModel)]
            assert info.description or any(t.__doc__ for t in documented), (
                f"{model.__name__}.{name} has no description"
            )


def test_the_default_trainer_image_is_this_versions():
    import tomllib
    from importlib.metadata import version

    import gsl_k8s
    from gsl_k8s.spec import KubernetesSpec

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    assert gsl_k8s.__version__ == version("gsl-k8s") == project["version"]
    assert KubernetesSpec().image == f"ghcr.io/gsl-k8s/gsl-trainer:{gsl_k8s.__version__}"
