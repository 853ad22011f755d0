"""Container images, checked without a Docker daemon: hadolint, structure, and that each
image's pinned Python requirements resolve."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILES = sorted(Path("docker").glob("*.Dockerfile"))
HADOLINT = str(Path(sys.executable).with_name("hadolint"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.stem)
def test_dockerfile_lints_clean_and_runs_as_non_root(dockerfile):
    linted = subprocess.run([HADOLINT, str(dockerfile)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert all(re.search(r":\d+\.\d+", base) for base in bases), f"unpinned base: {bases}"
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def resolve(*requirements: str) -> list[str]:
    """The distributions pip would install for `requirements` (resolution only)."""
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--report", "-", *requirements],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    installs = json.loads(report.stdout)["install"]
    return [item["metadata"]["name"].lower().replace("_", "-") for item in installs]


def test_the_operator_image_requirements_resolve_without_torch():
    """The operator never imports the trainer (tests/test_imports.py), so neither torch nor
    gymnasium nor tensorboard is in its image."""
    names = resolve("-r", "docker/requirements/operator.txt")
    assert {"kopf", "kubernetes", "boto3", "prometheus-client"} <= set(names)
    assert not {"torch", "gymnasium", "tensorboard"} & set(names)


def test_the_trainer_image_requirements_resolve():
    names = resolve("-r", "docker/requirements/trainer.txt", "torch==2.13.0")
    assert {"torch", "gymnasium", "boto3"} <= set(names)


@pytest.mark.parametrize(
    "family, package",
    [("procgen", "procgen-mirror"), ("metaworld", "metaworld"), ("maniskill2", "mani-skill2")],
)
def test_each_family_variant_resolves_beside_the_trainer(family, package):
    """`--build-arg FAMILY=<family>` adds docker/requirements/<family>.txt to the trainer's."""
    trainer, extra = "docker/requirements/trainer.txt", f"docker/requirements/{family}.txt"
    names = resolve("-r", trainer, "-r", extra, "torch==2.13.0")
    assert {"torch", "gymnasium", package} <= set(names)


def test_image_pins_match_the_development_environment():
    """The images pin what the tests ran with: every pin equals the installed version."""
    from importlib.metadata import version

    for path in Path("docker/requirements").glob("*.txt"):
        for line in path.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, pinned = line.split("==")
                assert version(name) == pinned, (
                    f"{path}: {name}=={pinned}, installed {version(name)}"
                )


def test_the_sample_factory_variant_resolves_beside_the_trainer_and_metaworld():
    """`--build-arg BACKEND=sample-factory`: SF's dependencies resolve beside the trainer's and
    metaworld's (its gymnasium>=1.1 is what SF's own pins exclude); SF goes in with --no-deps."""
    backend = "docker/requirements/sample-factory.txt"
    for family in ("", "metaworld"):
        extra = ["-r", f"docker/requirements/{family}.txt"] if family else []
        names = resolve("-r", "docker/requirements/trainer.txt", *extra, "-r", backend)
        assert {"signal-slot-mp", "faster-fifo", "tensorboardx"} <= set(names)
        assert "sample-factory" not in names
    nodeps = Path("docker/requirements/sample-factory-nodeps.txt").read_text()
    assert [line for line in nodeps.splitlines() if "==" in line] == ["sample-factory==2.1.1"]
    assert re.search(
        r"--no-deps -r \"docker/requirements/\$BACKEND-nodeps.txt\"",
        Path("docker/trainer.Dockerfile").read_text(),
    )
