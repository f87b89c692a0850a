"""The privacy audit of the DiffPrivLib engine with its built-in catalogue (models as data).

Fast mode (CI): every catalogue query through both servers (uncharged channels and released
structure), the statistical test for the queries marked ``stat``. ``--run-slow`` runs the
statistical test for every answered query with more samples and prints the table.

The catalogue trains classifiers whose target declares a class absent from D (the canary brings
it in D'), a regression, clustering and transformers on the built-in audit dataset, plus
refusals of server-owned parameters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lomas_engine_diffprivlib")

from lomas_core.testing.privacy_audit import (  # noqa: E402
    AuditReport,
    PrivacyAudit,
    audit_dataset,
    builtin_catalogue,
)

ENGINE = "diffprivlib"
FAST_SAMPLES = 1000
FULL_SAMPLES = 5000
CATALOGUE = builtin_catalogue(ENGINE, audit_dataset()[0])

@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> AuditReport:
    return PrivacyAudit(ENGINE, CATALOGUE, workdir=tmp_path_factory.mktemp("audit-diffprivlib"),
                        samples=FAST_SAMPLES, statistical="marked").run()


def test_dataset_channels_identical(report: AuditReport) -> None:
    assert not report.problems, report.table()


@pytest.mark.parametrize("name", [q.name for q in CATALOGUE])
def test_catalogue_query(report: AuditReport, name: str) -> None:
    outcome = report.outcome(name)
    assert outcome.ok, "\n".join(outcome.problems)


def test_statistical_check_ran_in_fast_mode(report: AuditReport) -> None:
    tested = {o.name for o in report.outcomes if o.epsilon_lb is not None}
    marked = {q.name for q in CATALOGUE if q.stat and report.outcome(q.name).status == "answered"}
    assert tested and tested == marked


@pytest.mark.slow
@pytest.mark.timeout(3600)  # KMeans' bounded-domain Laplace is slow: 10,000 fits per query
def test_full_statistical_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = PrivacyAudit(ENGINE, CATALOGUE, workdir=tmp_path, samples=FULL_SAMPLES,
                        statistical="all").run()
    with capsys.disabled():
        print("\n" + full.table())
    assert full.ok, full.table()
