"""Authentication latency of a store: ``user_for_token`` with the last-used time debounced (the
default, 60 s) and recorded on every use (``token_last_used_seconds: 0``), plus the store writes
each made.

Usage::

    python benchmarks/bench_auth_last_used.py                  # sqlite in a temporary folder
    python benchmarks/bench_auth_last_used.py --calls 5000
    python benchmarks/bench_auth_last_used.py --store mongodb --uri mongodb://127.0.0.1:27017

Prints, per setting, p50/p99 latency in milliseconds and how many last-used writes were made
(by the background recorder, never on the request path).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from lomas_core.config import Config, PluginConfig
from lomas_core.models import User
from lomas_core.plugins import make_store
from lomas_core.tokens import LastUsed, hash_token, new_token

__all__ = ["main", "run"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(options: dict[str, Any], name: str, calls: int, seconds: float) -> dict[str, float]:
    """``calls`` authentications of one token with ``token_last_used_seconds = seconds``."""
    store = make_store(Config(store=PluginConfig(
        name=name, options={**options, "token_last_used_seconds": seconds})), create=True)
    try:
        user = f"bench_{uuid.uuid4().hex[:10]}"
        store.add_user(User(name=user))
        token = new_token()
        store.add_token(user, hash_token(token))
        recorder = getattr(store, "last_used")  # noqa: B009 - both stores have one
        assert isinstance(recorder, LastUsed)
        writes = 0
        real = recorder._write

        def counting(token_hash: str, when: datetime) -> None:
            nonlocal writes
            writes += 1
            real(token_hash, when)

        recorder._write = counting
        hashed = hash_token(token)
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            assert store.user_for_token(hashed) is not None
            latencies.append((time.perf_counter() - start) * 1000)
        recorder.flush()
        return {"p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
                "writes": float(writes)}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "mongodb"])
    parser.add_argument("--uri", default=None)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (60.0, 0.0):
            if args.store == "sqlite":
                options: dict[str, Any] = {"path": str(Path(tmp) / f"auth-{seconds:g}.db")}
            else:
                options = {"uri": args.uri or "mongodb://127.0.0.1:27017",
                           "database": f"lomas_bench_{uuid.uuid4().hex[:8]}"}
            figures = run(options, args.store, args.calls, seconds)
            print(f"{args.store} token_last_used_seconds={seconds:g}: {args.calls} auths, "
                  f"p50 {figures['p50_ms']:.3f} ms, p99 {figures['p99_ms']:.3f} ms, "
                  f"{figures['writes']:.0f} last-used writes (off the request path)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
