"""Reading and writing one JSON record: a malformed record is a `StoreError` naming it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from gsl_k8s.store import ArtifactStore, StoreError, join_uri, write_json

T = TypeVar("T")


def read_record(store: ArtifactStore, key: str, parse: Callable[[dict[str, Any]], T]) -> T:
    """The record at `key`, parsed by `parse` (a `from_json`); one whose JSON or fields do
    not parse raises a `StoreError` that names it and what is wrong."""
    data = store.read_bytes(key)
    try:
        return parse(json.loads(data))
    except KeyError as err:
        problem = f"no field {err}"
    except (TypeError, ValueError, AttributeError) as err:
        problem = str(err)
    raise StoreError(f"{join_uri(store.uri, key)}: malformed record: {problem}")


def read_optional(store: ArtifactStore, key: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """As `read_record`, or None where nothing is written at `key`."""
    return read_record(store, key, parse) if store.exists(key) else None


def write_record(store: ArtifactStore, key: str, record: Any) -> None:
    """Store a record (anything with `to_json`) as indented JSON."""
    write_json(store, key, record.to_json())
