"""The audit's findings: one :class:`QueryOutcome` per catalogue query, and the printed table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditReport", "QueryOutcome"]


@dataclass
class QueryOutcome:
    """What the audit found for one catalogue query."""

    name: str
    epsilon: float | None = None
    delta: float | None = None
    epsilon_lb: float | None = None
    event: str = ""
    status: str = ""  # "answered", "refused" (HTTP status of the charged request)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        if self.problems:
            return "FAIL (not run)" if self.status == "not run" else "FAIL"
        return "pass" if self.status == "answered" else "pass (refused)"

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.name, "epsilon": self.epsilon, "delta": self.delta,
                "epsilon_lb": self.epsilon_lb, "event": self.event, "status": self.status,
                "verdict": self.verdict, "problems": self.problems, "notes": self.notes}


@dataclass
class AuditReport:
    """All outcomes of one audit; ``ok`` is the overall verdict."""

    engine: str
    samples: int
    alpha: float
    outcomes: list[QueryOutcome]
    problems: list[str]  # dataset-level channels (metadata, dummy dataset, final budget)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(o.ok for o in self.outcomes)

    def outcome(self, name: str) -> QueryOutcome:
        return next(o for o in self.outcomes if o.name == name)

    def table(self) -> str:
        """The printed table: query, charged epsilon (delta), measured lower bound, verdict."""
        from lomas_core.cli.common import format_table

        def num(x: float | None, spec: str) -> str:
            return "-" if x is None else format(x, spec)

        rows = [{"query": o.name, "charged eps": num(o.epsilon, ".4g"),
                 "charged delta": num(o.delta, ".2g"), "measured eps lb": num(o.epsilon_lb, ".3f"),
                 "verdict": o.verdict} for o in self.outcomes]
        text = format_table(rows, ["query", "charged eps", "charged delta", "measured eps lb",
                                   "verdict"])
        lines = [f"privacy audit of engine '{self.engine}': {len(self.outcomes)} queries, "
                 f"{self.samples} releases per dataset per tested query, "
                 f"confidence {1 - self.alpha:g}, {self.seconds:.0f} s", text]
        problems = list(dict.fromkeys(self.problems + [p for o in self.outcomes for p in o.problems]))
        if problems:
            lines.append("problems:")
            lines += [f"  - {p}" for p in problems]
        lines.append("verdict: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "ok": self.ok, "samples": self.samples, "alpha": self.alpha,
                "problems": self.problems, "queries": [o.as_dict() for o in self.outcomes]}
