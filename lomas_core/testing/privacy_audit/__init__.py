"""The privacy audit: measures an engine's privacy claims on neighbouring datasets.

Example (an engine author's test, or what ``lomas audit`` runs)::

    from lomas_core.testing.privacy_audit import AuditQuery, PrivacyAudit

    queries = [AuditQuery(name="count", query={"epsilon": 1.0}, stat=True)]
    report = PrivacyAudit("myengine", queries, workdir=tmp_path).run()
    print(report.table())
    assert report.ok, report.table()

See :mod:`.auditor` for the checks, :mod:`.report` for the findings, :mod:`.stats` for the
statistical test, :mod:`.neighbours` for D and D', :mod:`.catalogue` for catalogues and
:mod:`.planted` for the planted-bug engines.
Heavy imports (the server, numpy) happen when the submodules are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lomas_core.testing.privacy_audit.auditor import PrivacyAudit
    from lomas_core.testing.privacy_audit.catalogue import (
        AuditQuery,
        builtin_catalogue,
        load_catalogue,
    )
    from lomas_core.testing.privacy_audit.neighbours import audit_dataset, neighbours
    from lomas_core.testing.privacy_audit.report import AuditReport, QueryOutcome

__all__ = ["AuditQuery", "AuditReport", "PrivacyAudit", "QueryOutcome", "audit_dataset",
           "builtin_catalogue", "load_catalogue", "neighbours"]

_WHERE = {"AuditReport": "report", "PrivacyAudit": "auditor", "QueryOutcome": "report",
          "AuditQuery": "catalogue", "builtin_catalogue": "catalogue", "load_catalogue": "catalogue",
          "audit_dataset": "neighbours", "neighbours": "neighbours"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(name)
