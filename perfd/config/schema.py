"""JSON Schema of perfd's YAML files, for editors (yaml-language-server) and CI linters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from perfd.config.models import BudgetsConfig, DaemonConfig, SuiteConfig
from perfd.errors import UsageError

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

SchemaKind = Literal["suite", "budgets", "daemon"]

_MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "suite": (SuiteConfig, "perfd suite"),
    "budgets": (BudgetsConfig, "perfd budgets"),
    "daemon": (DaemonConfig, "perfd daemon configuration"),
}


def json_schema(kind: SchemaKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of perfd file; raises UsageError."""
    try:
        model, title = _MODELS[kind]
    except KeyError:
        raise UsageError(
            f"unknown schema kind {kind!r}; choose one of: {', '.join(_MODELS)}"
        ) from None
    schema = model.model_json_schema(mode="validation")
    schema.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "title": title, **schema}
