"""Per-request cost of authentication: static lomas tokens vs OpenID Connect JWTs (prints figures).

    .venv/bin/python benchmarks/bench_auth.py [--calls 2000] [--http-calls 400]

In-process: the authenticator chain alone (``lomas_core.authenticator.authenticate``) on an sqlite
store, for a static token (hash + store look-up) and for RS256 and ES256 access tokens (signature,
claims, user look-up; keys already cached). Over HTTP: ``GET /v1/datasets`` on a real server process
with ``authenticators: {oidc, token}``, one keep-alive connection, for each kind of credential.
The provider is the plugin's loopback test provider.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from lomas_authenticator_oidc.authenticator import OidcAuthenticator
from lomas_authenticator_oidc.options import parse_options
from lomas_authenticator_oidc.testing import LoopbackProvider

from lomas_core.authenticator import Authenticator, authenticate
from lomas_core.testing.harness import LomasHarness
from lomas_core.token_authenticator import TokenAuthenticator


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1e6:9.1f} us   p99 {p99 * 1e6:9.1f} us"


def _time(fns: dict[str, Callable[[], object]], calls: int) -> dict[str, list[float]]:
    """Samples per label; calls interleave the labels so that load noise hits them alike."""
    for fn in fns.values():
        for _ in range(min(50, calls)):  # warm-up
            fn()
    samples: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(calls):
        for label, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[label].append(time.perf_counter() - start)
    return samples


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--http-calls", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LoopbackProvider(audience="lomas") as rsa, \
            LoopbackProvider(audience="lomas", key_kind="EC") as ec:
        h = LomasHarness(Path(tmp), authenticators={
            "oidc": {"issuer": rsa.issuer, "audience": "lomas"}, "token": {}})
        token = h.add_user("alice")
        store = h.store
        chains: dict[str, tuple[list[Authenticator], str]] = {"token": ([TokenAuthenticator()], token)}
        for label, idp in (("oidc RS256", rsa), ("oidc ES256", ec)):
            oidc = OidcAuthenticator(parse_options({"issuer": idp.issuer, "audience": "lomas"}))
            chains[label] = ([oidc, TokenAuthenticator()], idp.mint("alice"))
        print(f"in-process authenticator chain, {args.calls} calls each (sqlite store)")
        timed = _time({label: (lambda c=chain, t=credential: authenticate(c, t, store))
                       for label, (chain, credential) in chains.items()}, args.calls)
        for label, samples in timed.items():
            print(f"  {label:<11} {_percentiles(samples)}")
        print(f"HTTP GET /v1/datasets on a server process, {args.http_calls} calls each")
        with h.serve() as url, httpx.Client(base_url=url, timeout=30) as client:
            def call(credential: str) -> Callable[[], None]:
                headers = {"Authorization": f"Bearer {credential}"}
                return lambda: assert_ok(client.get("/v1/datasets", headers=headers))

            timed = _time({"token": call(token), "oidc RS256": call(rsa.mint("alice"))},
                          args.http_calls)
            for label, samples in timed.items():
                print(f"  {label:<11} {_percentiles(samples)}")
        h.close()


if __name__ == "__main__":
    main()
