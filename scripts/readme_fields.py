"""Write the README's table of `trainer` fields from the schema's descriptions.

    python scripts/readme_fields.py [--check]

The table sits between the `trainer-fields` markers in README.md; `--check` (run by
`make lint`) fails if it differs from the schema, so the README, `gsl validate` and
`kubectl explain gslexperiment.spec.trainer` always say the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from gsl_k8s.spec import TrainerSpec

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- trainer-fields:begin -->", "<!-- trainer-fields:end -->"


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One table row per field of `model`, nested models' fields under their dotted name."""
    lines = []
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            lines += rows(type(default), f"{key}.")
            continue
        shown = "" if default is PydanticUndefined else f"`{json.dumps(default)}`"
        lines.append(f"| `{key}` | {shown} | {info.description} |")
    return lines


def table() -> str:
    """The markdown table of every trainer field."""
    return "\n".join(["| field | default | meaning |", "| --- | --- | --- |", *rows(TrainerSpec)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if args.check:
        if updated != text:
            print("README.md's trainer table is stale: run python scripts/readme_fields.py")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
