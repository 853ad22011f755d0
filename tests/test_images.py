"""Container images: hadolint, structure, that each image's pinned Python requirements
resolve, and the operator and CPU trainer images built by `make images` and run in Docker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gsl_k8s.layout import GENERALIST, SPEC
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import IMAGE_USER, TINY_SPEC, merge

DOCKERFILES = sorted(Path("docker").glob("*.Dockerfile"))
HADOLINT = str(Path(sys.executable).with_name("hadolint"))
LOCK = Path("requirements.lock")


def locked() -> dict[str, str]:
    """requirements.lock as {normalized name: version}."""
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    return {canonical(name): version for name, version in (line.split("==") for line in lines)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.stem)
def test_dockerfile_lints_clean_and_runs_as_non_root(dockerfile):
    linted = subprocess.run([HADOLINT, str(dockerfile)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout
    text = dockerfile.read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda arg: defaults[arg[1]], base)
        for base, _ in stages
        if base not in {name for _, name in stages}
    ]
    assert all(re.search(r":\d+\.\d+", base) for base in bases), f"unpinned base: {bases}"
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def resolve(*requirements: str) -> list[str]:
    """The distributions pip would install for `requirements` under the lock (resolution only,
    against the package index: tests marked `index`, outside the default suite)."""
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--report", "-", "-c", str(LOCK), *requirements],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    installs = json.loads(report.stdout)["install"]
    return [item["metadata"]["name"].lower().replace("_", "-") for item in installs]


@pytest.mark.index
def test_the_operator_image_requirements_resolve_without_torch():
    """The operator never imports the trainer (tests/test_imports.py), so neither torch nor
    gymnasium nor tensorboard is in its image."""
    names = resolve("-r", "docker/requirements/operator.txt")
    assert {"kopf", "kubernetes", "boto3", "prometheus-client"} <= set(names)
    assert not {"torch", "gymnasium", "tensorboard"} & set(names)


@pytest.mark.index
def test_the_trainer_image_requirements_resolve():
    names = resolve("-r", "docker/requirements/trainer.txt", "torch==2.13.0")
    assert {"torch", "gymnasium", "boto3"} <= set(names)


@pytest.mark.index
@pytest.mark.parametrize(
    "family, package",
    [
        ("procgen", "procgen-mirror"),
        ("metaworld", "metaworld"),
        ("maniskill2", "mani-skill2"),
        ("minigrid", "minigrid"),
    ],
)
def test_each_family_variant_resolves_beside_the_trainer(family, package):
    """`--build-arg FAMILY=<family>` adds docker/requirements/<family>.txt to the trainer's."""
    trainer, extra = "docker/requirements/trainer.txt", f"docker/requirements/{family}.txt"
    names = resolve("-r", trainer, "-r", extra, "torch==2.13.0")
    assert {"torch", "gymnasium", package} <= set(names)


def test_the_environment_is_the_lock():
    """`make install` installed exactly the lock: nothing outside it, nothing at another version
    (a local label such as torch's +cpu aside)."""
    from importlib.metadata import distributions

    lock = locked()
    installed = {
        canonical(dist.metadata["Name"]): dist.version.split("+")[0] for dist in distributions()
    }
    installed.pop("gsl-k8s")
    assert {name: v for name, v in installed.items() if lock.get(name) != v} == {}


def test_every_image_requirement_is_locked_and_every_image_takes_the_lock():
    """The images' requirement files name packages only; the lock decides their versions."""
    lock = locked()
    for path in Path("docker/requirements").glob("*.txt"):
        names = [
            line.strip()
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r"))
        ]
        assert names, path
        assert [name for name in names if canonical(name) not in lock] == [], path
    for dockerfile in DOCKERFILES:
        assert "ENV PIP_CONSTRAINT=/src/requirements.lock" in dockerfile.read_text(), dockerfile


def fake_wheel(directory: Path, name: str, version: str) -> None:
    """A minimal wheel of `name`==`version`: metadata and one empty module."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(
        f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"]
    )
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


@pytest.mark.parametrize("constrained", [True, False])
def test_the_lock_decides_over_a_newer_release(tmp_path, constrained):
    """An upstream release of a locked package (simulated offline: a wheel at the locked version
    and a newer one) changes nothing under the lock; without it pip would take the newer."""
    name = "colorlog"
    pinned = locked()[name]
    for version in (pinned, "99.0.0"):
        fake_wheel(tmp_path, name, version)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, find-links or constraint of this machine's
    if constrained:
        env["PIP_CONSTRAINT"] = str(LOCK.resolve())  # as `make install` and the images set it
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--dry-run"]
        + ["--ignore-installed", "--quiet", "--find-links", str(tmp_path), "--report", "-", name],
        capture_output=True,
        text=True,
        env=env,
    )
    assert report.returncode == 0, report.stderr
    [install] = json.loads(report.stdout)["install"]
    assert install["metadata"]["version"] == (pinned if constrained else "99.0.0")


@pytest.mark.index
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
    assert [line for line in nodeps.splitlines() if not line.startswith("#")] == ["sample-factory"]
    assert locked()["sample-factory"] == "2.1.1"
    assert re.search(
        r"--no-deps -r \"docker/requirements/\$BACKEND-nodeps.txt\"",
        Path("docker/trainer.Dockerfile").read_text(),
    )


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_the_operator_image_runs_gsl_operator_without_torch(images):
    operator = images["operator"]
    helped = docker(
        "run", "--rm", "--network", "none", "--read-only", operator, "operator", "--help"
    )
    assert helped.returncode == 0, helped.stderr
    assert "--all-namespaces" in helped.stdout
    probe = "import importlib.util, kopf; print(importlib.util.find_spec('torch'))"
    imported = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", operator, "-c", probe
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "None"


def test_the_trainer_image_trains_a_task_as_non_root_on_a_read_only_root(images, tmp_path):
    """`gsl train` in the CPU trainer image as a Job runs it: the image's own non-root user, a
    read-only root filesystem, /dev/shm a tmpfs, no network; the store a mounted directory."""
    budget = 2048
    patch = {"spec": {"generalist": {"envSteps": budget, "evaluation": {"everySteps": 1024}}}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o777)  # the container's user owns nothing on the host
    store = open_store(str(run_dir))
    store.write_bytes(SPEC, parse_spec(merge(TINY_SPEC, patch)).to_json().encode())
    (run_dir / SPEC).chmod(0o644)

    trained = docker(
        *("run", "--rm", "--network", "none", "--read-only"),
        *("--tmpfs", "/dev/shm:rw,nosuid,nodev,size=256m", "--volume", f"{run_dir}:/data/run"),
        *(images["trainer"], "train", "--run", "/data/run", "--role", "generalist"),
    )
    assert trained.returncode == 0, trained.stderr[-4000:]
    assert json.loads(trained.stdout.splitlines()[-1])["env_steps"] == budget
    result = json.loads(store.read_bytes(GENERALIST.result))
    assert result["env_steps"] == budget
    checkpoint = load_checkpoint(store, latest_checkpoint(store, GENERALIST.checkpoints))
    assert checkpoint["counters"]["env_steps"] == budget
    assert (run_dir / GENERALIST.result).stat().st_uid == int(IMAGE_USER.split(":")[0])

    version = docker(
        *("run", "--rm", "--network", "none", "--entrypoint", "python", images["trainer"]),
        *("-c", "import torch; print(torch.__version__, torch.cuda.is_available())"),
    )
    assert version.stdout.split() == ["2.13.0+cpu", "False"], version.stderr
