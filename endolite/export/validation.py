"""The JSON Schemas shipped with the export writers (``endolite/export/schemas/*.json``) and
the check every JSON document passes before it is returned as bytes."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from endolite.errors import ExportRefused


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``endolite/export/schemas/<name>.schema.json`` (package data)."""
    text = (resources.files("endolite.export") / "schemas" / f"{name}.schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


def field_path(path: Any) -> str:
    """A jsonschema error path as ``frame_annotations[3].label.name`` (``<document>`` if empty)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def validate(document: Any, name: str) -> None:
    """Check ``document`` against schema ``name``; ExportRefused names the first bad field
    (jsonschema's ``best_match``) and why."""
    import jsonschema
    from jsonschema.exceptions import best_match

    schema = load_schema(name)
    validator = jsonschema.Draft202012Validator(schema)
    error = best_match(validator.iter_errors(document))
    if error is not None:
        raise ExportRefused(f"{name} document: field {field_path(error.absolute_path)}: "
                            f"{error.message}")


def to_json_bytes(document: Any) -> bytes:
    """UTF-8 JSON (2-space indent, non-ASCII kept)."""
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
