"""Every example spec validates, with the same checks as `gsl run`."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(Path("examples").glob("*.yaml")) + sorted(
    Path("manifests/examples").glob("*.yaml")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_validates(example):
    proc = subprocess.run(
        [sys.executable, "-m", "gsl_k8s", "validate", str(example)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
