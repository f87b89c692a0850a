"""Paths, names and the parsed result of ``helm template`` for the deployment tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CHARTS", "NAMESPACE", "RELEASE", "ROOT", "HelmRun", "Render", "Rendered"]

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "deploy" / "helm"
RELEASE = "lomas"
NAMESPACE = "stats"


class Rendered:
    """The manifests of one ``helm template`` run, with look-ups by kind and name."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {sorted(self.names(kind))}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.of_kind(kind)}


HelmRun = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., Rendered]
