"""/docs renders with no internet: headless Chromium (Debian's ``chromium``) loads Swagger UI from a
real server with every non-loopback address unreachable, lists the operations, and a screenshot is
taken. Skips when chromium is not installed (.ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lomas_core.testing.harness import LomasHarness

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run",
         # No network: everything but loopback goes to a proxy that does not exist.
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
         "--virtual-time-budget=15000", "--window-size=1280,2000", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_docs_render_offline_and_list_the_operations(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path)
    try:
        with h.serve() as url:
            dom = _chromium(tmp_path, "--dump-dom", f"{url}/docs")
            assert dom.returncode == 0, dom.stderr[-2000:]
            assert "opblock" in dom.stdout, dom.stdout[-2000:]  # Swagger UI's operation blocks
            for path in ("/v1/datasets/{name}/query", "/v1/admin/grants", "/health"):
                assert path in dom.stdout, path
            shot = tmp_path / "docs.png"
            run = _chromium(tmp_path, f"--screenshot={shot}", f"{url}/docs")
            assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
            assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
            keep = os.environ.get("LOMAS_DOCS_SCREENSHOT")  # e.g. a CI artifact path
            if keep:
                shutil.copyfile(shot, keep)
    finally:
        h.close()
