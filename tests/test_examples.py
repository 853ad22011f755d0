"""Every example spec validates, with the same checks as `gsl run`."""

from pathlib import Path

import pytest

from tests.conftest import gsl

EXAMPLES = sorted(Path("examples").glob("*.yaml")) + sorted(
    Path("manifests/examples").glob("*.yaml")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_validates(example):
    proc = gsl("validate", str(example))
    assert proc.returncode == 0, proc.stderr
