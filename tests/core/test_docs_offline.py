"""/docs and /redoc load every asset from the server itself: they work with no internet access."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lomas_core.testing.harness import LomasHarness


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_use_only_local_assets(tmp_path: Path, page: str) -> None:
    h = LomasHarness(tmp_path)
    try:
        with h.client() as c:
            r = c.get(page)
            assert r.status_code == 200
            html = r.text
            assert "cdn" not in html.lower() and "//fonts." not in html
            assert not re.search(r"(src|href)=[\"']https?://", html), html
            assets = re.findall(r"(?:src|href)=[\"'](/[^\"']+)", html)
            assert assets, html
            for asset in assets:
                got = c.get(asset)
                assert got.status_code == 200 and len(got.content) > 1000, asset
            assert c.get("/openapi.json").status_code == 200
    finally:
        h.close()
