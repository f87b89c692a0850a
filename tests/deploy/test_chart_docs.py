"""Both charts: every value is documented in values.yaml and known to values.schema.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from chart_render import CHARTS

CHART_NAMES = ["lomas-server", "lomas-client"]
_KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_.-]*):")


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_value_is_documented(chart: str) -> None:
    """Each mapping key in values.yaml (outside list items) has a comment line right above it."""
    lines = (CHARTS / chart / "values.yaml").read_text().splitlines()
    undocumented = []
    list_indent: int | None = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if list_indent is not None and stripped and indent <= list_indent and not stripped.startswith("-"):
            list_indent = None
        if stripped.startswith("- "):
            list_indent = indent if list_indent is None else min(list_indent, indent)
            continue
        match = _KEY.match(line)
        if not match or list_indent is not None:
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(f"line {i + 1}: {stripped}")
    assert not undocumented, "values without a comment:\n" + "\n".join(undocumented)


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict) and value and key != "config":
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_schema_knows_every_value(chart: str) -> None:
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    assert schema.get("additionalProperties") is False
    for path in _leaves(values):
        node = schema
        for part in path.split("."):
            props = node.get("properties") or {}
            if part in props:
                node = props[part]
                continue
            extra = node.get("additionalProperties")
            assert extra is not False, f"{chart}: {path} is refused by the schema"
            if not isinstance(extra, dict):
                break  # an open object (e.g. a Kubernetes securityContext)
            node = extra


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_chart_directory_is_named_as_the_chart_and_helpers_are_prefixed(chart: str) -> None:
    meta = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
    assert meta["name"] == chart and meta["apiVersion"] == "v2"
    defines = re.findall(r'define "([^"]+)"', (CHARTS / chart / "templates" / "_helpers.tpl").read_text())
    assert defines and all(d.startswith(f"{chart}.") for d in defines), defines
    for template in (CHARTS / chart / "templates").rglob("*"):
        if template.is_file():
            for used in re.findall(r'include "([^"]+)"', template.read_text()):
                assert used.startswith(f"{chart}."), f"{template.name}: include {used}"
    assert (CHARTS / chart / "templates" / "NOTES.txt").is_file()
    assert list((CHARTS / chart / "templates" / "tests").glob("*.yaml"))


def test_charts_exist() -> None:
    assert sorted(p.name for p in CHARTS.iterdir() if p.is_dir()) == sorted(CHART_NAMES)
