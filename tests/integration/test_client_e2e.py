"""The researcher client against a live lomas server process on loopback.

One uvicorn process (``LomasHarness.serve``: embedded sqlite store, local adapter, engines
``smartnoise_sql`` and ``opendp``) serves every test of this module; each test uses its own user so
budgets do not interfere.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lomas_client as lc

harness_mod = pytest.importorskip("lomas_core.testing.harness", reason="server harness not built")
LomasHarness = harness_mod.LomasHarness

GRANTS = {"alice": (10.0, 1e-4), "bob": (0.3, 1e-5), "carol": (5.0, 1e-5), "dave": (10.0, 1e-4),
          "erin": (10.0, 1e-4)}
ENGINES = ("smartnoise_sql", "opendp")
SQL = "SELECT species, COUNT(*) AS n FROM df GROUP BY species"

METADATA: dict[str, Any] = {
    "max_ids": 1,
    "rows": 300,
    "row_privacy": True,
    "columns": {
        "species": {"type": "string", "categories": ["Adelie", "Chinstrap", "Gentoo"]},
        "island": {"type": "string", "categories": ["Biscoe", "Dream", "Torgersen"]},
        "bill_length_mm": {"type": "float", "lower": 30.0, "upper": 65.0, "nullable": True},
        "bill_depth_mm": {"type": "float", "lower": 13.0, "upper": 23.0},
        "flipper_length_mm": {"type": "float", "lower": 150.0, "upper": 240.0},
        "body_mass_g": {"type": "float", "lower": 2000.0, "upper": 7000.0},
        "sex": {"type": "string", "categories": ["MALE", "FEMALE"], "nullable": True},
    },
}


def _penguins(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    bill = rng.uniform(32, 60, rows)
    bill[::17] = np.nan
    return pd.DataFrame({
        "species": rng.choice(["Adelie", "Chinstrap", "Gentoo"], rows),
        "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
        "bill_length_mm": bill,
        "bill_depth_mm": rng.uniform(14, 22, rows),
        "flipper_length_mm": rng.uniform(170, 230, rows),
        "body_mass_g": rng.uniform(2800, 6300, rows),
        "sex": rng.choice(np.array(["MALE", "FEMALE", None], dtype=object), rows),
    })


class DropOnceProxy:
    """A loopback TCP proxy. When armed, the first upstream response to a request containing
    ``marker`` is swallowed: the server has answered (and charged) but the client's connection is
    closed before it sees a byte."""

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream = upstream
        self.marker = marker
        self.armed = False
        self.dropped = 0
        self.marked_requests = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            marked = threading.Event()
            threading.Thread(target=self._pump_up, args=(client, upstream, marked),
                             daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client, marked),
                             daemon=True).start()

    def _pump_up(self, src: socket.socket, dst: socket.socket, marked: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if self.marker in data:
                    with self._lock:
                        self.marked_requests += 1
                    marked.set()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(dst)

    def _pump_down(self, src: socket.socket, dst: socket.socket, marked: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if marked.is_set():
                    with self._lock:
                        drop = self.armed
                        self.armed = False
                    marked.clear()
                    if drop:
                        self.dropped += 1
                        _close(dst)
                        _close(src)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("client-e2e")
    # Both engines are required (see _need); a missing one fails only the tests that use it.
    engines = [e for e in ENGINES if e in _installed_engines()]
    harness = LomasHarness(tmp, engines={e: {} for e in engines})
    harness.add_dataset("penguins", _penguins(), METADATA)
    harness.add_dataset("secret", _penguins(50), METADATA)
    tokens = {user: harness.add_user(user, grant={"penguins": grant})
              for user, grant in GRANTS.items()}
    with harness.serve() as url:
        yield {"url": url, "tokens": tokens, "harness": harness, "engines": engines}
    harness.close()


def _installed_engines() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="lomas.engines")}


def _need(live: dict[str, Any], engine: str) -> None:
    if engine not in live["engines"]:
        pytest.fail(f"the '{engine}' engine plugin is not installed; install "
                    f"plugins/engines/{engine} (pip install -e ... --no-deps)")


def _mass_plan(client: lc.Client, pl: Any, dp: Any) -> Any:
    lf = client.opendp.lazyframe()
    return lf.select(dp.len(), pl.col("body_mass_g").fill_null(4000.0).dp.sum((2000.0, 7000.0)))


@pytest.fixture(scope="module")
def odp() -> tuple[Any, Any]:
    dp = pytest.importorskip("opendp.prelude")
    pl = pytest.importorskip("polars")
    dp.enable_features("contrib")
    return dp, pl


def _client(live: dict[str, Any], user: str = "alice", **kw: Any) -> lc.Client:
    return lc.Client(url=kw.pop("url", live["url"]), token=live["tokens"][user],
                     dataset_name=kw.pop("dataset_name", "penguins"), backoff=0.05, **kw)


def test_explore_metadata_and_dummy(live: dict[str, Any]) -> None:
    with _client(live) as client:
        assert client.health()["status"] == "ok"
        names = [d["name"] for d in client.list_datasets()]
        assert names == ["penguins"]  # "secret" is not granted
        metadata = client.get_dataset_metadata()
        assert set(metadata["columns"]) == set(METADATA["columns"])
        assert metadata["columns"]["body_mass_g"]["upper"] == 7000.0

        dummy = client.get_dummy_dataset(nb_rows=57, seed=3)
        assert len(dummy) == 57 and list(dummy.columns) == list(METADATA["columns"])
        assert dummy["species"].dtype == "string"
        assert dummy["body_mass_g"].dtype == "float64"
        assert dummy["body_mass_g"].between(2000, 7000).all()
        assert set(dummy["species"].dropna()) <= {"Adelie", "Chinstrap", "Gentoo"}
        pd.testing.assert_frame_equal(dummy, client.get_dummy_dataset(nb_rows=57, seed=3))
        assert not dummy.equals(client.get_dummy_dataset(nb_rows=57, seed=4))
        assert client.get_total_spent_budget() == {"epsilon": 0.0, "delta": 0.0}


def test_smartnoise_sql_cost_dummy_and_real(live: dict[str, Any]) -> None:
    _need(live, "smartnoise_sql")
    with _client(live) as client:
        initial = client.get_initial_budget()
        assert initial == {"epsilon": 10.0, "delta": 1e-4}
        cost = client.smartnoise_sql.cost(SQL, epsilon=0.5, delta=1e-5)
        assert cost["epsilon"] > 0

        dummy = client.smartnoise_sql.query(SQL, epsilon=0.5, delta=1e-5, dummy=True, nb_rows=200)
        assert dummy.dummy and dummy.epsilon == 0 and dummy.query_id is None
        assert dummy.remaining is None
        assert isinstance(dummy.result, pd.DataFrame) and list(dummy.result.columns) == ["species", "n"]
        assert client.get_total_spent_budget() == {"epsilon": 0.0, "delta": 0.0}

        res = client.smartnoise_sql.query(SQL, epsilon=0.5, delta=1e-5)
        assert not res.dummy and res.query_id
        assert (res.epsilon, res.delta) == (cost["epsilon"], cost["delta"])
        assert isinstance(res.result, pd.DataFrame) and len(res.result) == 3
        assert client.get_total_spent_budget() == cost
        assert res.remaining == client.get_remaining_budget()
        assert res.remaining == pytest.approx({"epsilon": 10.0 - cost["epsilon"],
                                               "delta": 1e-4 - cost["delta"]})

        past = client.get_previous_queries()
        assert [p["id"] for p in past] == [res.query_id]
        assert past[0]["status"] == "success" and past[0]["engine"] == "smartnoise_sql"
        pd.testing.assert_frame_equal(past[0]["result"], res.result)

        with pytest.raises(lc.InvalidQueryError) as invalid:
            client.smartnoise_sql.query("SELECT wingspan FROM df", epsilon=0.1, delta=1e-5)
        assert invalid.value.code == "invalid_query" and invalid.value.status == 422
        with pytest.raises(lc.InvalidQueryError) as malformed:
            client.smartnoise_sql.query(SQL, epsilon=-1.0, delta=1e-5)
        assert malformed.value.code in ("invalid_request", "invalid_query")
        assert client.get_total_spent_budget() == cost
        assert len(client.get_previous_queries()) == 1


def test_generic_engine_calls(live: dict[str, Any]) -> None:
    _need(live, "smartnoise_sql")
    payload = {"sql": "SELECT COUNT(*) AS n FROM df", "epsilon": 0.2, "delta": 1e-5}
    with _client(live, "dave") as client:
        cost = client.cost(engine="smartnoise_sql", payload=payload)
        dummy = client.query(engine="smartnoise_sql", payload=payload, dummy=True, nb_rows=30)
        assert dummy.dummy and dummy.epsilon == 0
        res = client.query(engine="smartnoise_sql", payload=payload)
        assert (res.epsilon, res.delta) == (cost["epsilon"], cost["delta"])
        assert res.result.shape == (1, 1)
        assert client.get_total_spent_budget() == cost


def test_opendp_plan_and_pipeline(live: dict[str, Any], odp: tuple[Any, Any]) -> None:
    _need(live, "opendp")
    dp, pl = odp
    with _client(live, "erin") as client:
        lf = client.opendp.lazyframe()
        assert lf.collect_schema()["body_mass_g"] == pl.Float64
        plan = _mass_plan(client, pl, dp)
        cost = client.opendp.cost(plan, **OPENDP_PLAN_OPTIONS)
        assert cost["epsilon"] > 0
        dummy = client.opendp.query(plan, dummy=True, nb_rows=40, **OPENDP_PLAN_OPTIONS)
        assert dummy.dummy and dummy.epsilon == 0
        res = client.opendp.query(plan, **OPENDP_PLAN_OPTIONS)
        assert (res.epsilon, res.delta) == (cost["epsilon"], cost["delta"])
        assert isinstance(res.result, pd.DataFrame) and res.result.shape == (1, 2)

        pipeline = opendp_pipeline(dp)
        pcost = client.opendp.cost(pipeline, column="body_mass_g")
        assert pcost["epsilon"] == pytest.approx(pipeline.map(METADATA["max_ids"]))
        pres = client.opendp.query(pipeline, column="body_mass_g")
        assert isinstance(pres.result, float)
        spent = client.get_total_spent_budget()
        assert spent["epsilon"] == pytest.approx(cost["epsilon"] + pcost["epsilon"])
        assert len(client.get_previous_queries()) == 2


def test_typed_errors(live: dict[str, Any], odp: tuple[Any, Any]) -> None:
    _need(live, "opendp")
    dp, pl = odp
    with lc.Client(url=live["url"], token="not-a-token", dataset_name="penguins") as bad, \
            pytest.raises(lc.AuthenticationError) as auth:
        bad.get_dataset_metadata()
    assert (auth.value.status, auth.value.code) == (401, "unauthenticated")

    with _client(live, dataset_name="secret") as client, pytest.raises(lc.AccessDeniedError) as den:
        client.get_dataset_metadata()
    with _client(live, dataset_name="no_such_dataset") as client, \
            pytest.raises(lc.AccessDeniedError) as missing:
        client.get_remaining_budget()
    assert den.value.status == missing.value.status == 403
    assert den.value.message.replace("secret", "X") == missing.value.message.replace(
        "no_such_dataset", "X")

    with _client(live) as client:
        with pytest.raises(lc.NotFoundError) as nf:
            client._get("/v1/no/such/route")
        assert nf.value.status == 404
        with pytest.raises(lc.AccessDeniedError):
            client._get("/v1/admin/users")  # researchers are not admins
        before = client.get_total_spent_budget()
        with pytest.raises(lc.InvalidQueryError):
            client.query(engine="no_such_engine", payload={})
        with pytest.raises(lc.InvalidQueryError):
            client.get_dummy_dataset(nb_rows=0)
        unknown_column = client.opendp.lazyframe().select(pl.col("wingspan").dp.sum((0.0, 1.0)))
        with pytest.raises(lc.InvalidQueryError) as invalid:
            client.opendp.query(unknown_column, epsilon=1.0)
        assert (invalid.value.status, invalid.value.code) == (422, "invalid_query")
        with pytest.raises(lc.InvalidQueryError):  # a plan needs epsilon (or a scale)
            client.opendp.query(_mass_plan(client, pl, dp))
        assert client.get_total_spent_budget() == before

    with _client(live, "bob") as client:
        remaining = client.get_remaining_budget()
        with pytest.raises(lc.BudgetExceededError) as broke:
            client.opendp.query(_mass_plan(client, pl, dp), epsilon=5.0)
        assert (broke.value.status, broke.value.code) == (403, "insufficient_budget")
        assert broke.value.message
        assert client.get_remaining_budget() == remaining
        assert client.get_previous_queries() == []


def test_retry_after_dropped_response_is_charged_once(live: dict[str, Any],
                                                     odp: tuple[Any, Any]) -> None:
    _need(live, "opendp")
    dp, pl = odp
    host, port = live["url"].removeprefix("http://").rsplit(":", 1)
    proxy = DropOnceProxy((host, int(port)), marker=b"/v1/datasets/penguins/query")
    try:
        with _client(live, "carol", url=proxy.url) as client:
            plan = _mass_plan(client, pl, dp)
            cost = client.opendp.cost(plan, epsilon=1.0)
            proxy.armed = True
            res = client.opendp.query(plan, epsilon=1.0)
            assert proxy.dropped == 1 and proxy.marked_requests >= 2
            # Charged exactly once, and the retry returned the first attempt's answer.
            assert client.get_total_spent_budget() == cost
            past = client.get_previous_queries()
            assert [p["id"] for p in past] == [res.query_id]
            pd.testing.assert_frame_equal(past[0]["result"], res.result)
            assert res.remaining == client.get_remaining_budget()
    finally:
        proxy.close()


# --- OpenDP wire details (kept together so they follow the engine's README) ----------------------

OPENDP_PLAN_OPTIONS: dict[str, Any] = {"epsilon": 1.0}


def opendp_pipeline(dp: Any) -> Any:
    """A DP sum of body mass: the engine feeds the named ``column`` as a vector of floats."""
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    return (dp.t.make_clamp(domain, dp.symmetric_distance(), (2000.0, 7000.0)) >> dp.t.then_sum()
            >> dp.m.then_laplace(10000.0))
