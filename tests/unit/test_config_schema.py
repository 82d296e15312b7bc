"""JSON Schema export for editors (yaml-language-server)."""

from __future__ import annotations

import json

import pytest

from perfd.config import json_schema
from perfd.config.schema import SCHEMA_DIALECT
from perfd.errors import UsageError


@pytest.mark.parametrize(
    ("kind", "title", "required"),
    [
        ("suite", "perfd suite", {"name", "repository", "build", "harness", "benchmarks"}),
        ("budgets", "perfd budgets", {"version"}),
        ("daemon", "perfd daemon configuration", set()),
    ],
)
def test_schema_is_json_with_dialect_title_and_properties(
    kind: str, title: str, required: set[str]
) -> None:
    schema = json.loads(json.dumps(json_schema(kind)))  # type: ignore[arg-type]
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == title
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["properties"]
    assert set(schema.get("required", [])) == required
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{kind}.{name} has no description"


def test_refs_resolve_and_constraints_use_json_schema_keywords() -> None:
    schema = json_schema("suite")
    text = json.dumps(schema)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]
    defaults = schema["$defs"]["MeasurementDefaults"]["properties"]
    assert defaults["warmup"]["minimum"] == 0
    assert defaults["samples"]["minimum"] == 1
    assert defaults["min_time_s"]["exclusiveMinimum"] == 0
    assert defaults["metrics"]["default"] == ["time"]
    assert '"ge"' not in text and '"gt"' not in text


def test_metric_short_form_is_allowed_by_the_schema() -> None:
    metric = json_schema("suite")["$defs"]["MetricSpec"]
    kinds = [alt.get("type") for alt in metric["anyOf"]]
    assert kinds == ["string", "object"]


def test_budgets_version_is_const_1() -> None:
    assert json_schema("budgets")["properties"]["version"]["const"] == 1


def test_unknown_kind() -> None:
    with pytest.raises(UsageError, match="choose one of: suite, budgets, daemon"):
        json_schema("bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["suite", "budgets", "daemon"])
def test_committed_schema_files_are_current(kind):
    """schemas/*.schema.json (what editors point at) match `perfd schema KIND`.

    Regenerate with: for k in suite budgets daemon; do perfd schema $k > schemas/$k.schema.json; done
    """
    import json
    from pathlib import Path

    committed = Path(__file__).parents[2] / "schemas" / f"{kind}.schema.json"
    assert json.loads(committed.read_text()) == json_schema(kind)
