"""The plugin seam's own guarantees: core-only defaults, names, memo accounting."""

from __future__ import annotations

import gc

import pyarrow as pa

from lomas_core.config import Config
from lomas_core.data import DataHandle, Memo
from lomas_core.plugins import installed_plugins, load_plugins


def test_the_default_config_needs_only_what_the_core_ships() -> None:
    enabled = [p for p in installed_plugins(Config()) if p.enabled]
    assert {(p.kind, p.name) for p in enabled} == {("adapter", "local"), ("store", "sqlite"),
                                                   ("authenticator", "token")}
    assert {p.distribution for p in enabled} == {"lomas-core"}
    loaded = load_plugins(Config(), with_store=False)
    try:
        assert loaded.adapters["local"].name == "local"
    finally:
        loaded.close()


class _Copy:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_memo_entries_carry_their_size_and_are_released() -> None:
    table = pa.table({"x": list(range(1000))})
    handle = DataHandle("ds", "v1", table)
    base = handle.nbytes
    assert base == table.nbytes
    copy = _Copy()
    assert handle.memo("sized", lambda: Memo(copy, nbytes=5000, close=copy.close)) is copy
    frame = handle.pandas()
    assert handle.nbytes == base + 5000 + int(frame.memory_usage(deep=False).sum())
    handle.close()
    assert copy.closed and handle.nbytes == base


def test_memo_entries_are_released_when_the_last_user_lets_go() -> None:
    copy = _Copy()
    handle = DataHandle("ds", "v1", pa.table({"x": [1, 2]}))
    handle.memo("copy", lambda: copy)  # a plain value: its own close() is used
    del handle
    gc.collect()
    assert copy.closed
