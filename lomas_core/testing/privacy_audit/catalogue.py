"""Query catalogues: what the audit sends to an engine.

A catalogue is a list of :class:`AuditQuery` (a name, the engine's query payload, and flags). In a
file (``lomas audit --queries FILE``) it is a YAML or JSON list::

    - name: count
      query: {sql: "SELECT COUNT(*) AS n FROM df", epsilon: 1.0, delta: 1.0e-5}
      stat: true            # also run the statistical test in fast mode (default: false)
    - name: select star
      query: {sql: "SELECT * FROM df", epsilon: 1.0, delta: 0}
      expect: refused       # the engine must refuse it (identically on D and D')

Built-in catalogues exist for ``smartnoise_sql``, ``opendp`` and ``diffprivlib``; they are written against the
built-in audit dataset (:func:`~lomas_core.testing.privacy_audit.neighbours.audit_dataset`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lomas_core.metadata import Metadata

__all__ = ["BUILTIN_CATALOGUES", "AuditQuery", "builtin_catalogue", "load_catalogue"]


class AuditQuery(BaseModel):
    """One catalogue entry."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    query: dict[str, Any]
    #: Run the statistical test for this query in fast mode too (the full mode runs it for all).
    stat: bool = False
    #: ``answered``: the engine must answer; ``refused``: it must refuse; ``any``: either.
    expect: Literal["answered", "refused", "any"] = "answered"
    #: May the released keys vary with the data (a threshold)? ``None``: yes when a delta is
    #: charged; ``false`` for queries grouped on public keys only (exactly the declared keys).
    thresholded: bool | None = None


def load_catalogue(path: str | Path) -> list[AuditQuery]:
    """A catalogue from a YAML or JSON file (a list of entries, or ``{"queries": [...]}``)."""
    import yaml

    text = Path(path).read_text()
    raw = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if isinstance(raw, dict) and "queries" in raw:
        raw = raw["queries"]
    return TypeAdapter(list[AuditQuery]).validate_python(raw)


# -- smartnoise_sql -----------------------------------------------------------------------------------
def _sql(name: str, sql: str, *, epsilon: float = 1.0, delta: float = 1e-5, stat: bool = False,
         expect: str = "answered", thresholded: bool | None = None) -> AuditQuery:
    return AuditQuery(name=name, query={"sql": sql, "epsilon": epsilon, "delta": delta},
                      stat=stat, expect=expect, thresholded=thresholded)  # type: ignore[arg-type]


def smartnoise_sql_catalogue(metadata: Metadata) -> list[AuditQuery]:
    """COUNT, SUM, AVG, GROUP BY on public keys and with thresholding, WHERE clauses, refusals."""
    return [
        _sql("count", "SELECT COUNT(*) AS n FROM df", stat=True),
        _sql("sum", "SELECT SUM(body_mass_g) AS s FROM df"),
        _sql("avg", "SELECT AVG(flipper_length_mm) AS m FROM df"),
        _sql("count where", "SELECT COUNT(*) AS n FROM df WHERE bill_depth_mm > 20"),
        _sql("sum where", "SELECT SUM(body_mass_g) AS s FROM df WHERE sex = 'MALE'"),
        _sql("group by public key", "SELECT species, COUNT(*) AS n FROM df GROUP BY species",
             thresholded=False),
        _sql("group by two public keys",
             "SELECT species, sex, AVG(body_mass_g) AS m FROM df GROUP BY species, sex",
             thresholded=False),
        _sql("group by thresholded", "SELECT island, COUNT(*) AS n FROM df GROUP BY island",
             stat=True),
        _sql("group by thresholded sum",
             "SELECT island, SUM(bill_depth_mm) AS s FROM df GROUP BY island"),
        _sql("select star", "SELECT * FROM df", expect="refused"),
        _sql("raw column", "SELECT body_mass_g FROM df WHERE body_mass_g > 6000", expect="refused"),
        _sql("unknown column", "SELECT SUM(salary) AS s FROM df", expect="refused"),
    ]


# -- opendp -------------------------------------------------------------------------------------------
def _bounds(metadata: Metadata, column: str) -> tuple[float, float]:
    col = metadata.columns[column]
    return float(col.lower), float(col.upper)  # type: ignore[arg-type]


def opendp_catalogue(metadata: Metadata) -> list[AuditQuery]:
    """Pipelines on one column (count, sum, mean, quantile) and plans (len, sum, mean, group-by)."""
    import opendp.prelude as dp
    import polars
    from lomas_engine_opendp.wire import empty_lazyframe, make_payload

    dp.enable_features("contrib")
    pl: Any = polars  # the .dp expression namespace is registered at run time
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance())
    lo, hi = _bounds(metadata, "bill_depth_mm")
    rows = int(metadata.rows or 100)
    pipelines: dict[str, Any] = {
        "pipeline count": space >> dp.t.then_count() >> dp.m.then_laplace(1.0),
        "pipeline sum": space >> dp.t.then_clamp((lo, hi)) >> dp.t.then_sum()
        >> dp.m.then_laplace(max(abs(lo), abs(hi))),
        "pipeline mean": space >> dp.t.then_clamp((lo, hi))
        >> dp.t.then_resize(size=rows, constant=(lo + hi) / 2) >> dp.t.then_mean()
        >> dp.m.then_laplace((hi - lo) / rows),
    }
    out = [AuditQuery(name=name, query=make_payload(m, column="bill_depth_mm"),
                      stat=name == "pipeline sum") for name, m in pipelines.items()]
    candidates = [lo + i * (hi - lo) / 20 for i in range(21)]
    try:
        quantile = (space >> dp.t.then_clamp((lo, hi))
                    >> dp.m.then_private_quantile(dp.max_divergence(), candidates=candidates,
                                                  alpha=0.5, scale=2.0))
        out.append(AuditQuery(name="pipeline median", expect="any",
                              query=make_payload(quantile, column="bill_depth_mm")))
    except Exception:  # noqa: BLE001 - this OpenDP has no such constructor: nothing to audit
        pass
    lf = empty_lazyframe(metadata.model_dump())
    blo, bhi = _bounds(metadata, "body_mass_g")
    flo, fhi = _bounds(metadata, "flipper_length_mm")
    plans: list[tuple[str, Any, dict[str, Any], bool | None]] = [
        ("plan len", lf.select(pl.len().dp.noise()), {"epsilon": 1.0}, None),
        ("plan sum", lf.select(pl.col("body_mass_g").dp.sum((blo, bhi))), {"epsilon": 1.0}, None),
        ("plan mean", lf.select(pl.col("flipper_length_mm").dp.mean((flo, fhi))),
         {"epsilon": 1.0}, None),
        ("plan group by public key", lf.group_by("species").agg(pl.len().dp.noise()),
         {"epsilon": 1.0}, False),
        ("plan group by thresholded", lf.group_by("island").agg(pl.len().dp.noise()),
         {"epsilon": 1.0, "delta": 1e-5}, True),
        ("plan group by thresholded sum",
         lf.group_by("island").agg(pl.len().dp.noise(), pl.col("body_mass_g").dp.sum((blo, bhi))),
         {"epsilon": 1.0, "delta": 1e-5}, True),
    ]
    fast = ("plan len", "plan group by public key", "plan group by thresholded")
    out += [AuditQuery(name=name, query=make_payload(plan, **opts), stat=name in fast,
                       thresholded=thresholded) for name, plan, opts, thresholded in plans]
    out.append(AuditQuery(name="pipeline without noise", expect="refused",
                          query={"pipeline": json.dumps({"__function__": "make_count",
                                                         "__module__": "transformations"})}))
    return out


# -- diffprivlib --------------------------------------------------------------------------------------
def _ml(name: str, steps: list[tuple[str, dict[str, Any]]], features: list[str],
        target: list[str] | None = None, *, stat: bool = False, expect: str = "answered",
        **extra: Any) -> AuditQuery:
    query = {"pipeline": [{"step": s, "params": p} for s, p in steps],
             "feature_columns": features, "target_columns": list(target or []), **extra}
    return AuditQuery(name=name, query=query, stat=stat, expect=expect,  # type: ignore[arg-type]
                      thresholded=False)


def diffprivlib_catalogue(metadata: Metadata) -> list[AuditQuery]:
    """Classifiers on public classes (one declared class is absent from D), a regression,
    clustering, transformers, a noisy test score, and refusals of server-owned parameters."""
    del metadata  # written for the built-in audit dataset's columns
    xs = ["bill_depth_mm", "flipper_length_mm"]
    return [
        _ml("gaussian nb", [("GaussianNB", {"epsilon": 1.0})], xs, ["species"], stat=True),
        _ml("scaled logistic regression", [("StandardScaler", {"epsilon": 0.5}),
                                           ("LogisticRegression", {"epsilon": 1.0})],
            xs, ["species"]),
        _ml("logistic regression with score", [("LogisticRegression", {"epsilon": 1.0})],
            ["bill_length_mm", *xs], ["sex"], score_epsilon=0.5),
        _ml("linear regression", [("LinearRegression", {"epsilon": 1.0})], xs, ["body_mass_g"]),
        _ml("kmeans", [("KMeans", {"epsilon": 1.0, "n_clusters": 3})], xs),
        _ml("scaler and pca", [("StandardScaler", {"epsilon": 0.5}),
                               ("PCA", {"epsilon": 0.5, "n_components": 1})], xs),
        _ml("norm from payload", [("LogisticRegression", {"data_norm": 1.0})], xs, ["species"],
            expect="refused"),
        _ml("classes from data", [("GaussianNB", {})], xs, ["body_mass_g"], expect="refused"),
        _ml("unknown estimator", [("SVC", {})], xs, ["species"], expect="refused"),
    ]


BUILTIN_CATALOGUES: dict[str, Callable[[Metadata], list[AuditQuery]]] = {
    "smartnoise_sql": smartnoise_sql_catalogue,
    "opendp": opendp_catalogue,
    "diffprivlib": diffprivlib_catalogue,
}


def builtin_catalogue(engine: str, metadata: Metadata) -> list[AuditQuery]:
    """The built-in catalogue of ``engine`` for ``metadata`` (KeyError for unknown engines)."""
    return BUILTIN_CATALOGUES[engine](metadata)
