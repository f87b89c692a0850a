"""Skip the spark source tests, with the reason, where pyspark or Java is missing."""

from __future__ import annotations

import importlib.util
import shutil

import pytest


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install lomas-source-spark)"
    if shutil.which("java") is None and not __import__("os").environ.get("JAVA_HOME"):
        return "no Java runtime (Spark needs Java 17: apt-get install openjdk-17-jre-headless)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = spark_missing()
    if reason is None:
        return
    for item in items:
        if "sources/spark" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))
