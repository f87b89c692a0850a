"""The privacy audit of one shipped engine with its built-in catalogue, as a base test class.

Fast mode (CI): every catalogue query through both servers (uncharged channels and released
structure), and the statistical test for the queries marked ``stat``. ``--run-slow`` runs the
statistical test for every answered query with more samples and prints the table.

Each engine's module subclasses :class:`EngineAudit` as ``Test<Engine>Audit`` and sets the engine
name and sample counts; ``conftest.py`` parametrizes ``test_catalogue_query`` over its catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from lomas_core.testing.privacy_audit import (
    AuditQuery,
    AuditReport,
    PrivacyAudit,
    audit_dataset,
    builtin_catalogue,
)
from lomas_core.testing.privacy_audit.auditor import Placement

__all__ = ["EngineAudit"]


class EngineAudit:
    """The audit tests; subclasses set :attr:`engine` (and may change the sample counts)."""

    engine: ClassVar[str]
    fast_samples: ClassVar[int] = 1000
    #: Free dummy answers compared per query in fast mode (None: the auditor's default).
    fast_dummy_samples: ClassVar[int | None] = None
    full_samples: ClassVar[int] = 5000
    #: Where the audited datasets live: ``local`` (in memory) or a push-down source.
    adapter: ClassVar[str] = "local"

    @classmethod
    def catalogue(cls) -> list[AuditQuery]:
        return builtin_catalogue(cls.engine, audit_dataset()[0])

    @pytest.fixture(scope="class")
    def placement(self) -> Placement | None:
        """Where the datasets live when that is a database (see ``Placement``); None: files."""
        return None

    @pytest.fixture(scope="class")
    def report(self, tmp_path_factory: pytest.TempPathFactory,
               placement: Placement | None) -> AuditReport:
        extra = {} if self.fast_dummy_samples is None else {"dummy_samples": self.fast_dummy_samples}
        return PrivacyAudit(self.engine, self.catalogue(),
                            workdir=tmp_path_factory.mktemp(f"audit-{self.engine}"),
                            samples=self.fast_samples, statistical="marked",
                            adapter=self.adapter, placement=placement, **extra).run()

    def test_dataset_channels_identical(self, report: AuditReport) -> None:
        assert not report.problems, report.table()

    def test_catalogue_query(self, report: AuditReport, name: str) -> None:
        outcome = report.outcome(name)
        assert outcome.ok, "\n".join(outcome.problems)

    def test_statistical_check_ran_in_fast_mode(self, report: AuditReport) -> None:
        tested = {o.name for o in report.outcomes if o.epsilon_lb is not None}
        marked = {q.name for q in self.catalogue()
                  if q.stat and report.outcome(q.name).status == "answered"}
        assert tested and tested == marked

    @pytest.mark.slow
    @pytest.mark.timeout(3600)  # e.g. DiffPrivLib's KMeans: 10,000 fits per query
    def test_full_statistical_audit(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    placement: Placement | None) -> None:
        full = PrivacyAudit(self.engine, self.catalogue(), workdir=tmp_path,
                            samples=self.full_samples, statistical="all",
                            adapter=self.adapter, placement=placement).run()
        with capsys.disabled():
            print("\n" + full.table())
        assert full.ok and not full.problems, full.table()
        assert all(o.epsilon_lb is not None for o in full.outcomes if o.status == "answered")
