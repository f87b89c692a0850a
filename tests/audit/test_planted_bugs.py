"""The audit catches the three planted bugs, and passes the honest control engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from lomas_core.testing.privacy_audit import AuditQuery, PrivacyAudit
from lomas_core.testing.privacy_audit.planted import planted_plugin_dir

COUNT = AuditQuery(name="count", query={"epsilon": 1.0}, stat=True)


def _audit(tmp_path: Path, engine: str, query: AuditQuery, samples: int = 2000) -> PrivacyAudit:
    plugins = planted_plugin_dir(tmp_path / "plugins")
    return PrivacyAudit(engine, [query], workdir=tmp_path / "audit", plugin_paths=[plugins],
                        samples=samples)


def test_honest_engine_passes(tmp_path: Path) -> None:
    report = _audit(tmp_path, "honest_count", COUNT).run()
    assert report.ok, report.table()
    assert 0 < report.outcome("count").epsilon_lb <= 1.0  # type: ignore[operator]


def test_under_noised_engine_is_caught_by_the_statistical_test(tmp_path: Path) -> None:
    report = _audit(tmp_path, "audit_undernoised", COUNT, samples=4000).run()
    outcome = report.outcome("count")
    assert not report.ok
    assert outcome.epsilon == 1.0 and outcome.epsilon_lb is not None and outcome.epsilon_lb > 1.0
    assert [p for p in outcome.problems if p.startswith("measured epsilon")], outcome.problems
    assert not report.problems  # every uncharged channel is clean: only the noise is wrong
    assert "FAIL" in report.table()


def test_exact_key_release_is_caught_by_the_structure_check(tmp_path: Path) -> None:
    query = AuditQuery(name="groups", query={"epsilon": 1.0, "column": "island"})
    report = _audit(tmp_path, "audit_exact_key", query).run()
    problems = report.outcome("groups").problems
    assert any("released keys differ without a charged threshold" in p and "Anvers" in p
               for p in problems), problems


def test_data_dependent_cost_is_caught_by_the_uncharged_channel_check(tmp_path: Path) -> None:
    report = _audit(tmp_path, "audit_peeking_cost", COUNT, samples=50).run()
    problems = report.outcome("count").problems
    assert any(p.startswith("cost: the answer differs") for p in problems), problems
    assert any(p.startswith("budget after the run") for p in report.problems), report.problems


def test_dummy_answers_that_depend_on_the_data_are_caught(tmp_path: Path) -> None:
    report = _audit(tmp_path, "audit_dummy_leak", COUNT, samples=200).run()
    problems = report.outcome("count").problems
    assert any(p.startswith("free dummy answers differ in distribution") for p in problems), problems


@pytest.mark.slow
def test_under_noise_is_caught_at_small_epsilon_and_large_samples(tmp_path: Path) -> None:
    query = AuditQuery(name="count", query={"epsilon": 0.3}, stat=True)
    report = _audit(tmp_path, "audit_undernoised", query, samples=20_000).run()
    assert report.outcome("count").epsilon_lb > 0.45, report.table()  # type: ignore[operator]
