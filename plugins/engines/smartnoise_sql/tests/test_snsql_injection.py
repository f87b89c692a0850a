# mypy: disable-error-code="attr-defined,union-attr"
"""SQL injection as a class: a corpus of payloads where SmartNoise-SQL's reading of the text and
DuckDB's could differ, a spy proving researcher text never reaches DuckDB, and a property test
that DuckDB parses exactly the statement the engine rendered."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from snsql_targets import spy_rendered

from lomas_core.budget import Budget
from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.testing.harness import LomasHarness

DEMO = Path(__file__).resolve().parents[4] / "lomas_core" / "demo"
ENGINE = "smartnoise_sql"
GRANT = (100.0, 1e-2)
UNION = "UNION ALL SELECT CAST(body_mass_g AS VARCHAR), 1000000 FROM df"

#: Payloads by class. Each must be refused (4xx, nothing charged) or answered with a DP aggregate.
CORPUS: dict[str, str] = {
    # backslashes: SmartNoise-SQL reads \' as an escaped quote, DuckDB ends the literal there
    "backslash union (the reported attack)":
        f"SELECT species, COUNT(*) AS n FROM df WHERE species = 'x\\' ) ) AS per_key_all "
        f"GROUP BY species {UNION} --' GROUP BY species",
    "backslash union, no comment":
        f"SELECT species, COUNT(*) AS n FROM df WHERE species = 'x\\' ) ) AS t GROUP BY species "
        f"{UNION} WHERE \\'a\\' = \\'a' GROUP BY species",
    "double backslash": "SELECT COUNT(*) AS n FROM df WHERE species = 'a\\\\' OR 1 = 1",
    "backslash quote only": "SELECT island, COUNT(*) AS n FROM df WHERE island = '\\'' GROUP BY island",
    "trailing backslash": "SELECT COUNT(*) AS n FROM df WHERE species = 'Adelie\\'",
    "backslash n": "SELECT COUNT(*) AS n FROM df WHERE species = 'Ade\\nlie'",
    # prefixed literals
    "E string": f"SELECT species, COUNT(*) AS n FROM df WHERE species = E'x\\' ) ) AS t "
                f"GROUP BY species {UNION} --' GROUP BY species",
    "lower e string": "SELECT COUNT(*) AS n FROM df WHERE species = e'Adelie'",
    "N string": "SELECT COUNT(*) AS n FROM df WHERE species = N'Adelie'",
    "hex string": "SELECT COUNT(*) AS n FROM df WHERE species = X'41'",
    "bit string": "SELECT COUNT(*) AS n FROM df WHERE species = B'01'",
    # dollar quoting and parameters
    "dollar quoted": "SELECT COUNT(*) AS n FROM df WHERE species = $$Adelie$$",
    "tagged dollar": f"SELECT COUNT(*) AS n FROM df WHERE species = $t$x' {UNION} --$t$",
    "positional parameter": "SELECT COUNT(*) AS n FROM df WHERE species = $1",
    "question parameter": "SELECT COUNT(*) AS n FROM df WHERE species = ?",
    # unicode escapes
    "U& string": "SELECT COUNT(*) AS n FROM df WHERE species = U&'\\0041delie'",
    "U& identifier": "SELECT COUNT(*) AS n FROM df WHERE U&\"sp\\0065cies\" = 'Adelie'",
    # comments
    "line comment": "SELECT COUNT(*) AS n FROM df -- just a comment",
    "block comment": "SELECT COUNT(*) AS n /* c */ FROM df",
    "nested comment": f"SELECT species, COUNT(*) AS n FROM df /* /* */ {UNION} */ GROUP BY species",
    "unterminated comment": "SELECT COUNT(*) AS n FROM df /* never closed",
    "comment after literal": f"SELECT COUNT(*) AS n FROM df WHERE species = 'a' --' {UNION}",
    # literals the two lexers split differently
    "unterminated literal": "SELECT COUNT(*) AS n FROM df WHERE species = 'Adelie",
    "doubled quote union": f"SELECT species, COUNT(*) AS n FROM df WHERE species = 'a'' ) ) AS t "
                           f"GROUP BY species {UNION} --' GROUP BY species",
    "doubled quote": "SELECT COUNT(*) AS n FROM df WHERE species = 'it''s'",
    "string continuation": "SELECT COUNT(*) AS n FROM df WHERE species = 'Ade'\n'lie'",
    # quoted identifiers
    "quote in identifier": 'SELECT "species"" FROM df --", COUNT(*) AS n FROM df GROUP BY species',
    "backtick identifier": "SELECT `species`, COUNT(*) AS n FROM df GROUP BY `species`",
    "bracket identifier": "SELECT [species], COUNT(*) AS n FROM df GROUP BY [species]",
    "space in identifier": 'SELECT COUNT(*) AS "n n" FROM df',
    "backslash identifier": 'SELECT COUNT(*) AS "n\\" FROM df',
    # catalog, settings, files, extensions
    "current_setting": "SELECT current_setting('threads') AS s, COUNT(*) AS n FROM df",
    "duckdb_settings": "SELECT COUNT(*) AS n FROM duckdb_settings()",
    "pragma table": "SELECT COUNT(*) AS n FROM pragma_table_info('df')",
    "read_parquet": "SELECT COUNT(*) AS n FROM read_parquet('/tmp/x.parquet')",
    "glob": "SELECT COUNT(*) AS n FROM glob('/etc/*')",
    "getenv group": "SELECT COUNT(*) AS n FROM df GROUP BY getenv('HOME')",
    "install extension": "INSTALL httpfs",
    "set": "SET enable_external_access = true",
    # grouping on something else than a plain column
    "group by random": "SELECT COUNT(*) AS n FROM df GROUP BY RANDOM()",
    "group by newid": "SELECT COUNT(*) AS n FROM df GROUP BY NEWID()",
    "group by expression": "SELECT species, COUNT(*) AS n FROM df GROUP BY species, UPPER(island)",
    "group by arithmetic": "SELECT COUNT(*) AS n FROM df GROUP BY body_mass_g / 100",
    # other ways out
    "non-ASCII identifier": "SELECT COUNT(*) AS \uff4e FROM df",
    "NUL": "SELECT COUNT(*) AS n FROM df\x00; SELECT * FROM df",
    "two statements": "SELECT COUNT(*) AS n FROM df; SELECT * FROM df",
    "union": f"SELECT species, COUNT(*) AS n FROM df GROUP BY species {UNION}",
    "scalar subquery": "SELECT COUNT(*) AS n FROM df WHERE body_mass_g > (SELECT AVG(body_mass_g) FROM df)",
    "raw column": "SELECT species, body_mass_g FROM df",
    "cte": "WITH t AS (SELECT * FROM df) SELECT COUNT(*) AS n FROM t",
    "self join": "SELECT COUNT(*) AS n FROM df AS a, df AS b",
    "schema-qualified": "SELECT COUNT(*) AS n FROM main.df",
    "rowid": "SELECT COUNT(*) AS n FROM df WHERE rowid = 7",
    "window": "SELECT COUNT(*) AS n FROM df WHERE ROW_NUMBER() OVER (ORDER BY species) = 1",
    # accepted: these must come back as DP aggregates only
    "comment inside literal": "SELECT species, COUNT(*) AS n FROM df WHERE island = 'a -- b /* c' "
                              "GROUP BY species",
    "unicode literal": "SELECT COUNT(*) AS n FROM df WHERE island = 'Z\u00fcrich \u2603'",
    "quoted column": 'SELECT "species", COUNT(*) AS n FROM "penguins" GROUP BY "species"',
}


def _categories() -> set[Any]:
    meta = yaml.safe_load((DEMO / "penguins_metadata.yaml").read_text())
    return {v for col in meta["columns"].values() for v in col.get("categories") or []}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    h = LomasHarness(tmp_path_factory.mktemp("snsql-injection"), engines={ENGINE: {}})
    meta = yaml.safe_load((DEMO / "penguins_metadata.yaml").read_text())
    frame = pd.read_csv(DEMO / "penguins.csv")
    h.add_dataset("penguins", frame, meta)
    # the setting the attack was first seen with: no thresholding at all
    h.add_dataset("penguins_open", frame, {**meta, "censor_dims": False})
    yield h
    h.close()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("dataset", ["penguins", "penguins_open"])
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_payload_refused_free_or_answered_with_dp_aggregates(harness: LomasHarness, dataset: str,
                                                            case: str) -> None:
    user = f"i_{dataset}_" + "".join(ch for ch in case if ch.isalnum())
    token = harness.add_user(user, grant={dataset: GRANT})
    body = {"engine": ENGINE, "query": {"sql": CORPUS[case], "epsilon": 0.01, "delta": 1e-5}}
    allowed = _categories()
    charged = Budget.of(0, 0)
    with harness.client(token) as c:
        cost = c.post(f"/v1/datasets/{dataset}/cost", json=body)
        r = c.post(f"/v1/datasets/{dataset}/query", json=body)
        if cost.status_code != 200:
            assert 400 <= cost.status_code < 500 and 400 <= r.status_code < 500, (cost.text, r.text)
            assert r.json()["error"]["code"] in ("invalid_query", "invalid_request")
            assert "Traceback" not in r.text and "snsql" not in r.text
        else:
            assert r.status_code == 200, r.text
            out = r.json()
            charged = Budget.of(out["epsilon"], out["delta"])
            rows = out["result"]["rows"]
            assert len(rows) <= 3 * 3 * 2
            for row in rows:
                for value in row:
                    # a declared category (a public key) or a number (a noisy aggregate)
                    assert value is None or isinstance(value, (int, float)) or value in allowed, \
                        (case, row)
    assert harness.grant(user, dataset).spent == charged


def _penguins() -> tuple[DatasetInfo, DataHandle]:
    import pyarrow as pa

    meta = Metadata.model_validate(yaml.safe_load((DEMO / "penguins_metadata.yaml").read_text()))
    frame = pd.read_csv(DEMO / "penguins.csv")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return DatasetInfo(name="penguins", metadata=meta), DataHandle("penguins", "v1", table)


ACCEPTED = [
    "SELECT species, COUNT(*) AS n FROM df WHERE island = 'Dream' GROUP BY species",
    "SELECT COUNT(*) AS n, AVG(body_mass_g) AS m FROM penguins WHERE sex = 'MALE'",
    "SELECT island, sex, SUM(flipper_length_mm) AS s FROM df WHERE species IN ('Adelie', 'x y') "
    "GROUP BY island, sex ORDER BY island",
    "SELECT species, COUNT(*) AS n FROM df WHERE island = 'a -- b /* c' GROUP BY species",
    "SELECT COUNT(*) AS n FROM df WHERE EXTRACT(YEAR FROM CURRENT_DATE) > 2000",
]


def test_researcher_text_never_reaches_duckdb(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on the database: what runs is always a rendering of the parsed tree, never the text."""
    from lomas_engine_smartnoise_sql import backend
    from lomas_engine_smartnoise_sql.render import Statement

    dataset, handle = _penguins()
    seen: list[Any] = []
    original = backend.DuckDBDatabase.fetch

    def spy(self: Any, statement: Any) -> list[Any]:
        seen.append(statement)
        return original(self, statement)

    monkeypatch.setattr(backend.DuckDBDatabase, "fetch", spy)
    for sql in ACCEPTED:
        seen.clear()
        for postprocess in (True, False):
            engine.run(engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5,
                                     "postprocess": postprocess}), handle, dataset)
        assert len(seen) == 2
        for statement in seen:
            assert isinstance(statement, Statement)
            assert statement.text != sql and sql not in statement.text
            assert "per_key_all" in statement.text  # SmartNoise-SQL's rewritten aggregate query



def test_plain_text_is_refused_by_database_and_reader() -> None:
    from lomas_engine_smartnoise_sql.accounting import privacy_of
    from lomas_engine_smartnoise_sql.backend import DuckDBDatabase, make_reader
    from lomas_engine_smartnoise_sql.metadata import to_snsql_metadata
    from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery

    dataset, handle = _penguins()
    database = DuckDBDatabase(handle.table, dataset.metadata)
    try:
        with pytest.raises(TypeError):
            database.fetch("SELECT * FROM df")  # type: ignore[arg-type]
        query = SmartnoiseSQLQuery(sql="SELECT COUNT(*) FROM df", epsilon=1.0, delta=1e-5)
        reader = make_reader(database, to_snsql_metadata(dataset.metadata), privacy_of(query))
        with pytest.raises(TypeError):
            reader.reader.execute("SELECT * FROM df")
    finally:
        database.close()


def test_rendering_alone_stops_the_reported_attack(engine: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: even with the lexical check gone, the payload stays one literal."""
    from lomas_engine_smartnoise_sql import sql_check

    monkeypatch.setattr(sql_check, "lexical_check", lambda sql: None)
    dataset, handle = _penguins()
    sql = CORPUS["backslash union (the reported attack)"]
    query = engine.parse({"sql": sql, "epsilon": 0.01, "delta": 1e-5})
    try:
        engine.cost(query, dataset)
    except InvalidQuery:
        return
    out = engine.run(query, handle, dataset)
    assert [row[0] for row in out["rows"]] == ["Adelie", "Chinstrap", "Gentoo"]


# -- property: DuckDB reads exactly the statement rendered -----------------------------------------
_ALPHABET = "abcXYZ 09_-/*%'\"\\$&;()\n\t\u00e9\u2603"
_COLUMNS = ["species", "island", "sex", "body_mass_g", "flipper_length_mm"]


def _random_literal(rng: random.Random) -> str:
    return "'" + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 8))) + "'"


def _random_condition(rng: random.Random, depth: int = 0) -> str:
    pick = rng.random()
    if depth < 2 and pick < 0.3:
        op = rng.choice(["AND", "OR"])
        return f"({_random_condition(rng, depth + 1)} {op} {_random_condition(rng, depth + 1)})"
    if depth < 2 and pick < 0.4:
        return f"NOT {_random_condition(rng, depth + 1)}"
    column = rng.choice(_COLUMNS)
    if column in ("species", "island", "sex"):
        if rng.random() < 0.3:
            items = ", ".join(_random_literal(rng) for _ in range(rng.randint(1, 3)))
            return f"{column} IN ({items})"
        return f"{column} {rng.choice(['=', '<>', '>'])} {_random_literal(rng)}"
    number = rng.choice([str(rng.randint(-5, 7000)), f"{rng.uniform(0, 300):.3f}", "1e3"])
    return f"{column} {rng.choice(['<', '>=', '='])} {number}"


def _random_query(rng: random.Random) -> str:
    group = rng.choice([[], ["species"], ["island", "sex"]])
    select = ", ".join([*group, "COUNT(*) AS n"])
    where = f" WHERE {_random_condition(rng)}" if rng.random() < 0.9 else ""
    by = f" GROUP BY {', '.join(group)}" if group else ""
    return f"SELECT {select} FROM df{where}{by}"


def test_duckdb_parses_exactly_what_was_rendered(engine: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """For generated queries full of quotes, backslashes and comment markers: either refused at
    cost time, or DuckDB's parser reads the rendered statement with exactly the string values
    SmartNoise-SQL parsed, one table ``df`` and no set operation."""
    from lomas_engine_smartnoise_sql.render import _parse, _walk, parser_connection
    from lomas_engine_smartnoise_sql.sql_check import prepare_sql
    from snsql._ast.tokens import Literal

    rendered = spy_rendered(monkeypatch)
    dataset, handle = _penguins()
    rng = random.Random(20261130)
    accepted = refused = 0
    for _ in range(150):
        sql = _random_query(rng)
        query = engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5})
        rendered.clear()
        try:
            engine.cost(query, dataset)
        except InvalidQuery:
            refused += 1
            continue
        accepted += 1
        if not rendered:  # a cached cost: the same text was checked before
            continue
        researcher = sorted(str(lit.value) for lit in prepare_sql(sql, "penguins").query
                            .find_nodes(Literal) if isinstance(lit.value, str))
        tree = _parse(parser_connection(), rendered[0].text)
        assert len(tree["statements"]) == 1
        nodes = [node for _, node in _walk(tree["statements"][0])]
        duck = sorted(str(n["literal"]["text"]) for n in nodes
                      if n.get("type") == "VALUE_CONSTANT"
                      and str((n.get("literal") or {}).get("kind", "")).upper() == "STRING")
        assert duck == researcher, sql  # the same string values, no more, no fewer
        tables = [n for n in nodes if n.get("type") == "BASE_TABLE"]
        assert [t["table_name"] for t in tables] == ["df"], sql
        assert not [n for n in nodes if n.get("type") == "SET_OPERATION_NODE"]
        if accepted <= 10:  # and the engine answers them with the expected shape
            out = engine.run(query, handle, dataset)
            assert len(out["rows"]) <= 18
    assert accepted >= 30 and refused >= 30, (accepted, refused)
