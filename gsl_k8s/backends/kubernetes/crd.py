"""The CustomResourceDefinition of `gslexperiments.gsl.dev`, generated from the pydantic
schema that validates specs locally (`gsl crd` prints it; manifests/crd.yaml is its output).

JSON Schema becomes a structural OpenAPI v3 schema: references are inlined, `Optional` becomes
`nullable`, exclusive bounds become OpenAPI 3.0 booleans, free-form mappings preserve unknown
fields. What OpenAPI cannot say (cross-field rules, unknown keys, which Kubernetes 1.20 prunes
instead of rejecting) the operator checks with the same pydantic model.
"""

from __future__ import annotations

from typing import Any

import yaml

from gsl_k8s.backends.kubernetes.status import ExperimentStatus
from gsl_k8s.spec import API_VERSION, KIND, ExperimentSpec

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "gslexperiments"
_KEPT = (
    "type",
    "description",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
)


def openapi_schema(schema: dict[str, Any], defaults: bool = True) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for a pydantic JSON schema; with `defaults`, the
    server fills in the schema's defaults."""
    return _convert(schema, schema.get("$defs", {}), defaults)


def _convert(node: dict[str, Any], defs: dict[str, Any], defaults: bool) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _convert(
            {**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, defaults
        )
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        if len(options) == 1:
            inner = {k: v for k, v in node.items() if k != "anyOf"}
            out = _convert({**options[0], **inner}, defs, defaults)
        else:  # e.g. `int | list[int]`: no structural type; the operator validates it
            out = {"x-kubernetes-preserve-unknown-fields": True}
            if "description" in node:
                out["description"] = node["description"]
        if nullable:
            out["nullable"] = True
        return out
    out = {key: node[key] for key in _KEPT if key in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[inclusive] = node[bound]
            out[bound] = True
    if defaults and node.get("default") is not None:
        out["default"] = node["default"]
    if "items" in node:
        out["items"] = _convert(node["items"], defs, defaults)
    if "properties" in node:
        out["properties"] = {k: _convert(v, defs, defaults) for k, v in node["properties"].items()}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out["additionalProperties"] = _convert(extra, defs, defaults)
    elif node.get("type") == "object" and "properties" not in node and extra is not False:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec_schema = openapi_schema(ExperimentSpec.model_json_schema(by_alias=True))
    status_schema = openapi_schema(
        ExperimentStatus.model_json_schema(by_alias=True), defaults=False
    )
    status_schema["x-kubernetes-preserve-unknown-fields"] = True  # kopf keeps notes here too
    columns = [  # priority 1: shown by `kubectl get gsl -o wide` only
        ("Stage", "string", ".status.stage", 0),
        ("Round", "integer", ".status.round", 0),
        ("Specialists", "string", ".status.specialistsReady", 0),
        ("Best success", "number", ".status.bestSuccess", 0),
        ("Progress", "string", ".status.progress.summary", 0),
        ("Age", "date", ".metadata.creationTimestamp", 0),
        ("CPU-h", "number", ".status.cpuHours", 1),
        ("GPU-h", "number", ".status.gpuHours", 1),
        ("Baseline CPU-h", "number", ".status.baselineCpuHours", 1),
        ("Baseline GPU-h", "number", ".status.baselineGpuHours", 1),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["gsl"],
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": name, "type": kind, "jsonPath": path, "priority": priority}
                        for name, kind, path, priority in columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Generalist-Specialist Learning experiment.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {**spec_schema, "default": {}},
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as YAML, with a header saying where it comes from."""
    header = "# Generated by `gsl crd` from gsl_k8s/spec.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
