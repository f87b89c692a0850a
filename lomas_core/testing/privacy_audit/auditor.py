"""The privacy audit of one engine: two real servers, one on D and one on D', and the checks.

Every catalogue query goes through the full server path (HTTP, cost, charge, cache, engine) on
both servers, with the same users and the same sequence of requests:

1. uncharged channels (metadata, dataset list, dummy dataset, cost, dummy queries, refusals for
   lack of budget, errors, status codes, budget after the run) must be identical on D and D';
2. the released structure of charged answers must be identical unless a charged delta explains it;
3. the statistical test (:mod:`.stats`) compares many releases on D and on D', sampled through the
   engine's ``run`` on the very data handles the servers loaded (a fast path that skips HTTP),
   and fails when the measured lower bound on epsilon exceeds the charged epsilon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
from lomas_core.source import SourceHandle, SqlSource
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.privacy_audit.catalogue import AuditQuery
from lomas_core.testing.privacy_audit.channels import compare_exact, compare_shapes
from lomas_core.testing.privacy_audit.neighbours import neighbours
from lomas_core.testing.privacy_audit.report import AuditReport, QueryOutcome
from lomas_core.testing.privacy_audit.stats import epsilon_lower_bound

__all__ = ["AuditReport", "Placement", "PrivacyAudit", "QueryOutcome"]

DATASET = "audit"
#: The researcher's grant: large, so that no catalogue query runs out.
GRANT = (1e6, 0.5)
#: A second researcher whose budget is too small for anything (the refusal must not leak).
POOR_GRANT = (1e-9, 0.0)
DUMMY = {"rows": 60, "seed": 11}

Statistical = Literal["none", "marked", "all"]


@dataclass
class Placement:
    """Where an audit puts its two datasets when they live in a database (a push-down source).

    Attributes:
        config: config sections for both harnesses (``adapters``, ``secrets``).
        put: ``put(harness, side, table, metadata)`` stores ``table`` for ``side`` (``D`` or
            ``D'``) and registers it in ``harness`` as the dataset ``DATASET``.
    """

    config: dict[str, Any]
    put: Callable[[LomasHarness, str, pa.Table, Metadata], None]


class PrivacyAudit:
    """Audit ``engine`` on a pair of neighbouring datasets with a catalogue of queries.

    Args:
        engine: the engine's configured name.
        queries: the catalogue.
        workdir: scratch directory (two harnesses are created under it).
        metadata, table: the dataset D (default: the built-in audit dataset); D' adds the canary.
        engine_options: the engine's config options.
        plugin_paths: directories with plugin distributions (engines not pip-installed).
        samples: releases per dataset for each statistically tested query.
        statistical: which queries get the statistical test: ``"marked"`` (``stat: true``),
            ``"all"`` answered ones, or ``"none"``.
        alpha: probability that any of the statistical tests wrongly fails an honest engine.
        dummy_samples: dummy answers per dataset (through HTTP, fresh seeds) for each
            statistically tested query; their distribution must not depend on D (epsilon 0).
        progress: called with short human-readable progress messages.
        adapter: where both datasets live: ``local`` (read into memory) or a file-based
            push-down source such as ``duckdb`` (queries run where the data lives).
        placement: for other sources (a database), puts the datasets there:
            :class:`Placement` (the harness's config sections, and how to register one side).
    """

    def __init__(self, engine: str, queries: Sequence[AuditQuery], *, workdir: Path,
                 metadata: Metadata | None = None, table: pa.Table | None = None,
                 engine_options: Mapping[str, Any] | None = None,
                 plugin_paths: Sequence[Path] = (), samples: int = 2000,
                 statistical: Statistical = "marked", alpha: float = 1e-3,
                 canary: dict[str, Any] | None = None, dummy_samples: int = 100,
                 progress: Callable[[str], None] | None = None, adapter: str = "local",
                 placement: Placement | None = None) -> None:
        if (metadata is None) != (table is None):
            raise ValueError("give both metadata and table, or neither")
        if metadata is None or table is None:
            from lomas_core.testing.privacy_audit.neighbours import audit_dataset

            metadata, table = audit_dataset()
        self.engine = engine
        self.queries = list(queries)
        self.workdir = Path(workdir)
        self.d, self.d_prime = neighbours(metadata, table, canary)
        if metadata.rows is not None and metadata.rows < self.d_prime.num_rows:
            # `rows` is a public upper bound the server enforces: it must admit D' too.
            metadata = metadata.model_copy(update={"rows": self.d_prime.num_rows})
        self.metadata = metadata
        self.engine_options = dict(engine_options or {})
        self.plugin_paths = [Path(p) for p in plugin_paths]
        self.samples = samples
        self.dummy_samples = dummy_samples
        self.statistical = statistical
        self.alpha = alpha
        self.progress = progress or (lambda message: None)
        self.adapter = adapter
        self.placement = placement

    # -- servers -----------------------------------------------------------------------------------
    def _harness(self, side: str, data: pa.Table) -> tuple[LomasHarness, str, str]:
        folder = self.workdir / side
        if self.placement is not None:
            h = LomasHarness(folder, engines={self.engine: self.engine_options},
                             plugin_paths=list(self.plugin_paths),
                             limits={"max_dummy_rows": 1000}, **self.placement.config)
            self.placement.put(h, side, data, self.metadata)
        else:
            h = LomasHarness(folder, engines={self.engine: self.engine_options},
                             adapters={name: {"allowed_dirs": [str(folder)]}
                                       for name in {"local", self.adapter}},
                             plugin_paths=list(self.plugin_paths),
                             limits={"max_dummy_rows": 1000})
            h.add_dataset(DATASET, data, self.metadata, adapter=self.adapter)
        rich = h.add_user("researcher", grant={DATASET: GRANT})
        poor = h.add_user("pauper", grant={DATASET: POOR_GRANT})
        return h, rich, poor

    def run(self) -> AuditReport:
        """Run every check; never raises for a failing engine (see the report)."""
        started = time.monotonic()
        h_d, rich_d, poor_d = self._harness("D", self.d)
        h_p, rich_p, poor_p = self._harness("D_prime", self.d_prime)
        problems: list[str] = []
        outcomes: list[QueryOutcome] = []
        try:
            with ExitStack() as stack:
                try:
                    c_d, c_p, poor_c_d, poor_c_p = (
                        stack.enter_context(h.client(t)) for h, t in
                        ((h_d, rich_d), (h_p, rich_p), (h_d, poor_d), (h_p, poor_p)))
                except Exception as exc:  # noqa: BLE001 - a broken engine is a finding, not a crash
                    reason = f"the server did not start: {type(exc).__name__}: {str(exc)[:200]}"
                    outcomes = [QueryOutcome(q.name, status="not run", problems=[reason])
                                for q in self.queries]
                    return AuditReport(self.engine, self.samples, self.alpha, outcomes, [reason],
                                       time.monotonic() - started)
                problems += self._dataset_channels(c_d, c_p, self.engine)
                for i, q in enumerate(self.queries, 1):
                    self.progress(f"[{i}/{len(self.queries)}] {q.name}: server checks")
                    outcomes.append(self._server_checks(q, (c_d, c_p), (poor_c_d, poor_c_p)))
                problems += compare_exact("budget after the run", _get(c_d, "budget"),
                                          _get(c_p, "budget"))
                problems += compare_exact("archive after the run", _archive(c_d), _archive(c_p))
                tested = [(q, o) for q, o in zip(self.queries, outcomes, strict=True)
                          if o.status == "answered" and o.epsilon is not None
                          and (self.statistical == "all" or (self.statistical == "marked" and q.stat))]
                for q, o in tested:
                    self._statistical(q, o, (c_d, c_p), alpha=self.alpha / len(tested))
        finally:
            h_d.close()
            h_p.close()
        return AuditReport(self.engine, self.samples, self.alpha, outcomes, problems,
                           time.monotonic() - started)

    # -- checks --------------------------------------------------------------------------------------
    @staticmethod
    def _dataset_channels(c_d: Any, c_p: Any, engine: str) -> list[str]:
        problems: list[str] = []
        for what in ("", "metadata", "budget", "queries"):
            problems += compare_exact(f"GET {what or 'datasets'}", _get(c_d, what), _get(c_p, what))
        problems += compare_exact("dummy dataset", _post(c_d, "dummy", DUMMY), _post(c_p, "dummy", DUMMY))
        for what, body in (("unknown engine", {"engine": "zz-none", "query": {}}),
                           ("empty query", {"engine": engine, "query": {}}),
                           ("malformed query", {"engine": engine, "query": {"zz": [1, "x"]}})):
            for route in ("cost", "query"):
                problems += compare_exact(f"{what} ({route})", _post(c_d, route, body),
                                          _post(c_p, route, body))
        return problems

    def _server_checks(self, q: AuditQuery, clients: tuple[Any, Any],
                       poor: tuple[Any, Any]) -> QueryOutcome:
        out = QueryOutcome(q.name)
        c_d, c_p = clients
        body = {"engine": self.engine, "query": q.query}
        cost = _post(c_d, "cost", body), _post(c_p, "cost", body)
        out.problems += compare_exact("cost", *cost)
        dummy = {**body, "dummy": DUMMY}
        dummies = _post(c_d, "query", dummy), _post(c_p, "query", dummy)
        if dummies[0][0] != 200 or dummies[1][0] != 200:
            out.problems += compare_exact("dummy query", *dummies)
        out.problems += compare_exact("query without budget", _post(poor[0], "query", body),
                                      _post(poor[1], "query", body))
        charged = _post(c_d, "query", body), _post(c_p, "query", body)
        (s_d, b_d), (s_p, b_p) = charged
        out.status = "answered" if s_d == 200 else f"refused ({s_d})"
        if s_d != 200 or s_p != 200:
            out.problems += compare_exact("charged query", *charged)
        else:
            out.epsilon, out.delta = float(b_d["epsilon"]), float(b_d["delta"])
            if (b_p["epsilon"], b_p["delta"]) != (b_d["epsilon"], b_d["delta"]):
                out.problems.append(f"charge differs: ({b_d['epsilon']}, {b_d['delta']}) on D, "
                                    f"({b_p['epsilon']}, {b_p['delta']}) on D'")
            if cost[0][0] == 200 and (cost[0][1]["epsilon"], cost[0][1]["delta"]) != \
                    (b_d["epsilon"], b_d["delta"]):
                out.problems.append("the charge differs from the cost endpoint's answer")
            thresholded = q.thresholded if q.thresholded is not None else out.delta > 0
            problems, notes = compare_shapes("released structure", b_d["result"], b_p["result"],
                                             thresholded=thresholded)
            out.problems += problems
            out.notes += notes
            if dummies[0][0] == dummies[1][0] == 200:
                problems, notes = compare_shapes("dummy answer", dummies[0][1]["result"],
                                                 dummies[1][1]["result"], thresholded=thresholded)
                out.problems += problems
        if q.expect == "answered" and out.status != "answered":
            out.problems.append(f"expected an answer, got {out.status}: {_message(charged[0][1])}")
        if q.expect == "refused" and out.status == "answered":
            out.problems.append("expected a refusal, the engine answered")
        return out

    def _statistical(self, q: AuditQuery, out: QueryOutcome, clients: tuple[Any, Any], *,
                     alpha: float) -> None:
        releases = []
        for side, client in zip(("D", "D'"), clients, strict=True):
            state = LomasHarness.app_state(client)
            engine = state.engine(self.engine)
            description = state.store.get_dataset(DATASET)
            metadata = state.metadata(description)
            adapter = state.adapter(description)
            handle: DataHandle
            if isinstance(adapter, SqlSource):
                handle = SourceHandle(DATASET, "audit",
                                      adapter.open(DATASET, description.options, metadata))
            else:
                handle = state.cache.get(description, adapter, metadata)
            info = DatasetInfo(name=DATASET, metadata=metadata)
            query = engine.parse(q.query)
            got: list[Any] = []
            last = time.monotonic()
            for i in range(self.samples):
                got.append(engine.run(query, handle, info))
                if time.monotonic() - last > 2.0:
                    last = time.monotonic()
                    self.progress(f"{q.name}: {i + 1}/{self.samples} releases on {side}")
            releases.append(got)
            if isinstance(handle, SourceHandle):
                handle.target.close()
        if self.dummy_samples >= 4:
            alpha /= 2
            self._dummy_distribution(q, out, clients, alpha=alpha)
        bound = epsilon_lower_bound(releases[0], releases[1], out.delta or 0.0, alpha=alpha)
        out.epsilon_lb, out.event = bound.epsilon_lb, bound.event
        assert out.epsilon is not None
        if bound.epsilon_lb > out.epsilon * (1 + 1e-9) or math.isinf(bound.epsilon_lb):
            out.problems.append(f"measured epsilon >= {bound.epsilon_lb:.3f} with confidence "
                                f"{1 - alpha:.4g}, charged {out.epsilon:.4g} (event: {bound.event})")
        self.progress(f"{q.name}: epsilon lower bound {bound.epsilon_lb:.3f} "
                      f"(charged {out.epsilon:.4g})")


    def _dummy_distribution(self, q: AuditQuery, out: QueryOutcome, clients: tuple[Any, Any], *,
                            alpha: float) -> None:
        """Dummy answers are free: their distribution must be the same on D and D'."""
        answers: list[list[Any]] = [[], []]
        for i in range(self.dummy_samples):
            body = {"engine": self.engine, "query": q.query, "dummy": {**DUMMY, "seed": 1000 + i}}
            for side, client in enumerate(clients):
                status, got = _post(client, "query", body)
                answers[side].append(got.get("result") if status == 200 else {"status": status})
        bound = epsilon_lower_bound(answers[0], answers[1], 0.0, alpha=alpha)
        if bound.epsilon_lb > 0:
            out.problems.append(f"free dummy answers differ in distribution between D and D' "
                                f"(epsilon >= {bound.epsilon_lb:.3f}, event: {bound.event})")


def _get(client: Any, what: str) -> tuple[int, Any]:
    url = f"/v1/datasets/{DATASET}/{what}" if what else "/v1/datasets"
    r = client.get(url)
    return r.status_code, _json(r)


def _post(client: Any, what: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    r = client.post(f"/v1/datasets/{DATASET}/{what}", json=dict(body))
    return r.status_code, _json(r)


def _archive(client: Any) -> tuple[int, Any]:
    """The archive without results and times: which requests succeeded or failed, at what cost."""
    status, body = _get(client, "queries")
    if status != 200 or not isinstance(body, Mapping):
        return status, body
    keep = ("engine", "request", "epsilon", "delta", "status", "error")
    return status, [{k: r.get(k) for k in keep} for r in body.get("queries", [])]


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(body: Any) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return str(body["error"].get("message", ""))[:160]
    return str(body)[:160]
