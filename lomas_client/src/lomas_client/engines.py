"""Engine-specific helpers: ``client.smartnoise_sql``, ``client.opendp`` and ``client.diffprivlib``.

They only build the engine's payload (see ``docs/api.md``, "Engine payloads") and call the generic
:meth:`Client.cost` / :meth:`Client.query`; any other engine is reachable through those directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lomas_client import diffprivlib_model, opendp_wire
from lomas_client.budget import Budget
from lomas_client.results import QueryResult

if TYPE_CHECKING:
    import polars as pl

    from lomas_client.client import Client

__all__ = ["DiffPrivLibClient", "OpenDPClient", "SmartnoiseSQLClient"]


class SmartnoiseSQLClient:
    """Queries in SQL answered by SmartNoise-SQL. The table is named ``df`` in the SQL."""

    engine = "smartnoise_sql"

    def __init__(self, client: Client) -> None:
        self._client = client

    @staticmethod
    def payload(query: str, epsilon: float, delta: float, mechanisms: dict[str, str] | None = None,
                postprocess: bool = True) -> dict[str, Any]:
        """The engine payload for a SQL query."""
        return {"sql": query, "epsilon": epsilon, "delta": delta, "mechanisms": mechanisms,
                "postprocess": postprocess}

    def cost(self, query: str, epsilon: float, delta: float,
             mechanisms: dict[str, str] | None = None) -> Budget:
        """The (epsilon, delta) the query would really cost (SmartNoise may spend more than the
        epsilon you pass when it needs several mechanisms); free."""
        return self._client.cost(self.engine, self.payload(query, epsilon, delta, mechanisms))

    def query(self, query: str, epsilon: float, delta: float,
              mechanisms: dict[str, str] | None = None, postprocess: bool = True, dummy: bool = False,
              nb_rows: int = 100, seed: int = 42) -> QueryResult:
        """Run a SQL query; ``result`` is a pandas DataFrame.

        Args:
            query: SQL over the table ``df``, e.g. ``SELECT island, COUNT(*) AS n FROM df GROUP BY
                island``.
            epsilon, delta: the privacy parameters for the query.
            mechanisms: override SmartNoise's mechanism per statistic, e.g. ``{"count":
                "gaussian"}``.
            postprocess: let SmartNoise post-process (e.g. averages from noisy sums and counts).
            dummy: run on a dummy dataset instead (free); ``nb_rows``/``seed`` shape it.
        """
        return self._client.query(self.engine, self.payload(query, epsilon, delta, mechanisms,
                                                            postprocess),
                                  dummy=dummy, nb_rows=nb_rows, seed=seed)


class OpenDPClient:
    """Queries as OpenDP measurements (pipelines) or polars plans with OpenDP expressions.

    Needs the optional extra: ``pip install 'lomas-client[opendp]'``. Engine options (see the
    OpenDP engine's README):

    * plans: ``epsilon`` (pure DP, ``output_measure="max_divergence"``, the default), or ``rho``
      with ``output_measure="zero_concentrated_divergence"``, optionally ``delta``; or a fixed
      ``global_scale`` (and ``threshold``) instead of a loss;
    * pipelines: ``column`` (required) names the dataset column fed to the pipeline; the pipeline
      must be built on exactly the server's input domain for it, :meth:`input_domain`, with
      ``dp.symmetric_distance()`` (unsized, no bounds: clamp, resize or impute inside the
      pipeline). Raw-text inputs (``make_split_lines``, CSV) are not offered;
    * ``fixed_delta``: the delta used to convert zCDP / smoothed outputs to (epsilon, delta).
    """

    engine = "opendp"

    def __init__(self, client: Client) -> None:
        self._client = client

    @staticmethod
    def payload(pipeline_or_plan: Any, fixed_delta: float | None = None, *,
                epsilon: float | None = None, rho: float | None = None,
                delta: float | None = None, output_measure: str | None = None,
                global_scale: float | None = None, threshold: int | None = None,
                column: str | None = None, **extra: Any) -> dict[str, Any]:
        """The engine payload: the serialized measurement or plan plus its options."""
        return opendp_wire.make_payload(
            pipeline_or_plan, fixed_delta=fixed_delta, epsilon=epsilon, rho=rho, delta=delta,
            output_measure=output_measure, global_scale=global_scale, threshold=threshold,
            column=column, **extra)

    def cost(self, pipeline_or_plan: Any, fixed_delta: float | None = None,
             **options: Any) -> Budget:
        """The (epsilon, delta) the measurement or plan would cost; free, reads no data."""
        return self._client.cost(self.engine, self.payload(pipeline_or_plan, fixed_delta, **options))

    def query(self, pipeline_or_plan: Any, fixed_delta: float | None = None, dummy: bool = False,
              nb_rows: int = 100, seed: int = 42, **options: Any) -> QueryResult:
        """Run a measurement or a plan. A plan's table comes back as a pandas DataFrame, a
        pipeline's value as a number (or list)."""
        return self._client.query(self.engine,
                                  self.payload(pipeline_or_plan, fixed_delta, **options),
                                  dummy=dummy, nb_rows=nb_rows, seed=seed)

    def input_domain(self, column: str) -> Any:
        """The OpenDP input domain the server feeds a pipeline reading ``column``.

        Example::

            domain = client.opendp.input_domain("body_mass_g")
            pipeline = (dp.t.make_clamp(domain, dp.symmetric_distance(), (2500.0, 6500.0))
                        >> dp.t.then_sum() >> dp.m.then_laplace(4000.0))
            client.opendp.query(pipeline, column="body_mass_g")
        """
        return opendp_wire.input_domain(self._client._cached_metadata(), column)

    def lazyframe(self) -> pl.LazyFrame:
        """An empty ``polars.LazyFrame`` with the dataset's columns and types, to build plans on.

        Example::

            lf = client.opendp.lazyframe()
            plan = lf.select(dp.len(), pl.col("body_mass_g").fill_null(4000.0).dp.sum((2000., 7000.)))
            client.opendp.query(plan, epsilon=1.0)
        """
        return opendp_wire.empty_lazyframe(self._client._cached_metadata())


class DiffPrivLibClient:
    """Machine learning with DiffPrivLib: a pipeline sent as data, the trained model returned as
    data and rebuilt locally (``result.result`` is a :class:`~lomas_client.diffprivlib_model.
    DiffPrivLibModel`; ``.predict(X)`` works). Rebuilding needs the optional extra: ``pip install
    'lomas-client[diffprivlib]'``.

    ``pipeline`` is a list of steps, each ``step("Name", **params)`` (or ``(name, params)``):
    transformers ``StandardScaler``, ``PCA`` then at most one of ``LogisticRegression``,
    ``GaussianNB``, ``LinearRegression``, ``KMeans``. Bounds, norms and classes are the server's
    (from the metadata): do not pass them. The cost is the sum of the steps' ``epsilon`` (plus
    ``score_epsilon`` for a noisy test accuracy), times the dataset's ``max_ids``.

    Example::

        from lomas_client.diffprivlib_model import step
        res = client.diffprivlib.query(
            [step("StandardScaler", epsilon=0.5), step("LogisticRegression", epsilon=1.0)],
            feature_columns=["bill_length_mm", "flipper_length_mm"], target_columns=["species"])
        res.result.predict(frame)
    """

    engine = "diffprivlib"
    step = staticmethod(diffprivlib_model.step)

    def __init__(self, client: Client) -> None:
        self._client = client

    @staticmethod
    def payload(pipeline: list[Any], feature_columns: list[str],
                target_columns: list[str] | None = None, **options: Any) -> dict[str, Any]:
        """The engine payload (see :func:`lomas_client.diffprivlib_model.make_payload`)."""
        return diffprivlib_model.make_payload(pipeline, feature_columns, target_columns, **options)

    def cost(self, pipeline: list[Any], feature_columns: list[str],
             target_columns: list[str] | None = None, **options: Any) -> Budget:
        """The (epsilon, delta) the training would cost; free, computed from public metadata."""
        return self._client.cost(self.engine, self.payload(pipeline, feature_columns,
                                                           target_columns, **options))

    def query(self, pipeline: list[Any], feature_columns: list[str],
              target_columns: list[str] | None = None, dummy: bool = False, nb_rows: int = 100,
              seed: int = 42, rebuild: bool = True, **options: Any) -> QueryResult:
        """Train the pipeline on the dataset (or, with ``dummy=True``, on a free dummy dataset).

        ``result`` is the rebuilt model (``rebuild=False``: the JSON model as sent).
        """
        answer = self._client.query(self.engine, self.payload(pipeline, feature_columns,
                                                              target_columns, **options),
                                    dummy=dummy, nb_rows=nb_rows, seed=seed)
        if rebuild and isinstance(answer.result, dict) and "steps" in answer.result:
            answer.result = diffprivlib_model.rebuild(answer.result)
        return answer
