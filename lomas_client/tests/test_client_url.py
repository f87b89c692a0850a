"""A URL without a scheme is refused when the client is built (issue: first hour, item 6)."""

from __future__ import annotations

import pytest

from lomas_client import Client


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000", "ftp://host", "http://"])
def test_url_without_scheme_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="needs a scheme and a host") as info:
        Client(url=url, token="t", dataset_name="d")
    if url == "127.0.0.1:8000":
        assert "http://127.0.0.1:8000" in str(info.value)


def test_http_and_https_urls_are_accepted() -> None:
    for url in ("http://127.0.0.1:8000", "https://lomas.example.org/"):
        Client(url=url, token="t", dataset_name="d")
