"""What the doctor's checks return, as plain data: results, fixes, the answer block, the report.

Rendering lives in lanchat/output/doctor.py; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "unknown", "skip"]
RunOn = Literal["this PC", "the server PC", "the other PCs", "the router"]
Mode = Literal["server", "client"]

STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "unknown", "skip")
RUN_ON: tuple[RunOn, ...] = ("this PC", "the server PC", "the other PCs", "the router")


@dataclass(frozen=True)
class Fix:
    """One way to fix a problem: what to do in words, the commands, where, and whether as admin."""

    text: str
    commands: tuple[str, ...] = ()
    needs_admin: bool = False
    run_on: RunOn = "this PC"

    def __post_init__(self) -> None:
        if self.run_on not in RUN_ON:
            raise ValueError(f"run_on must be one of {RUN_ON}, not {self.run_on!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "text": self.text,
            "commands": list(self.commands),
            "needs_admin": self.needs_admin,
            "run_on": self.run_on,
        }


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: id (e.g. server.bind), status, summary, evidence and fixes.

    ``facts`` carries the machine-readable findings the answer block and scripts use (the bind
    address, the firewall in charge, the verdict per IP family...).
    """

    id: str
    title: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fixes: tuple[Fix, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fixes": [f.to_dict() for f in self.fixes],
            "facts": dict(self.facts),
        }


def skipped(check_id: str, title: str, why: str) -> CheckResult:
    """A check that does not apply here (another OS, nothing to test), saying why."""
    return CheckResult(check_id, title, "skip", why)


@dataclass(frozen=True)
class AnswerLine:
    """One line of the answer block, with the status mark it is shown with."""

    status: Status
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"status": self.status, "text": self.text}


@dataclass(frozen=True)
class Answer:
    """The block printed last: the user's question answered for this machine."""

    question: str
    verdict: str  # one sentence: the answer
    lan: tuple[AnswerLine, ...]
    firewall_rule: str  # "not needed", "needed: ...", "unknown: ..."
    port_forwarding: str
    next_steps: tuple[str, ...]
    internet: tuple[AnswerLine, ...]
    alternatives: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "question": self.question,
            "verdict": self.verdict,
            "lan": [line.to_dict() for line in self.lan],
            "firewall_rule": self.firewall_rule,
            "port_forwarding": self.port_forwarding,
            "next_steps": list(self.next_steps),
            "internet": [line.to_dict() for line in self.internet],
            "alternatives": list(self.alternatives),
        }


@dataclass(frozen=True)
class DoctorReport:
    """Everything `lanchat doctor` found: the mode, each check in order, the answer block."""

    mode: Mode
    port: int
    target: str | None  # client mode: HOST:PORT as given
    platform: str
    checks: tuple[CheckResult, ...]
    answer: Answer
    seconds: float

    @property
    def failed(self) -> bool:
        """Whether any check failed (the exit code is then ExitCode.CHECK_FAILED)."""
        return any(c.status == "fail" for c in self.checks)

    def check(self, check_id: str) -> CheckResult | None:
        """The result with this id, if that check ran."""
        return next((c for c in self.checks if c.id == check_id), None)

    def counts(self) -> dict[str, int]:
        """How many checks ended with each status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (docs/troubleshooting.md describes it)."""
        return {
            "version": 1,
            "mode": self.mode,
            "port": self.port,
            "target": self.target,
            "platform": self.platform,
            "failed": self.failed,
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "checks": [c.to_dict() for c in self.checks],
            "answer": self.answer.to_dict(),
        }
