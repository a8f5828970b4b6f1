"""`lanchat doctor` for people: one line per check with a mark, details and fixes under the ones
that need attention, the answer block last. (`--json` prints DoctorReport.to_dict().)"""

from __future__ import annotations

from rich.console import Console, Group
from rich.text import Text

from lanchat.doctor.result import Answer, AnswerLine, CheckResult, DoctorReport, Fix, Status

MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "unknown": "?", "skip": "·"}
ASCII_MARKS = {"pass": "+", "warn": "!", "fail": "x", "unknown": "?", "skip": "-"}
STYLES = {
    "pass": "green",
    "warn": "yellow",
    "fail": "bold red",
    "unknown": "magenta",
    "skip": "dim",
}
MAX_EVIDENCE = 8  # lines of evidence under a check; --json has all of them
DETAILED: tuple[Status, ...] = ("fail", "warn", "unknown")
ADMIN_WORDS = {"windows": "as Administrator", "linux": "needs sudo", "darwin": "needs sudo"}


def _mark(status: Status, unicode: bool) -> Text:
    mark = (MARKS if unicode else ASCII_MARKS)[status]
    return Text(f"[{mark}]", style=STYLES[status])


def _fix_lines(fix: Fix, platform: str) -> list[Text]:
    notes = [f"run on {fix.run_on}"]
    if fix.needs_admin:
        notes.append(ADMIN_WORDS.get(platform, "as administrator"))
    lines = [Text.assemble(("      Fix", "bold"), (f" ({', '.join(notes)}): ", "bold"), fix.text)]
    for command in fix.commands:
        lines.append(Text.assemble("          ", (command, "bold cyan")))
    return lines


def _check_lines(check: CheckResult, unicode: bool, platform: str, width: int) -> list[Text]:
    head = Text.assemble(
        _mark(check.status, unicode),
        " ",
        (check.id.ljust(width), "bold" if check.status in DETAILED else ""),
        "  ",
        Text(check.summary, style="dim" if check.status == "skip" else ""),
    )
    lines = [head]
    if check.status not in DETAILED:
        return lines
    for fact in check.evidence[:MAX_EVIDENCE]:
        lines.append(Text(f"      {fact}", style="dim"))
    if len(check.evidence) > MAX_EVIDENCE:
        more = len(check.evidence) - MAX_EVIDENCE
        lines.append(Text(f"      ... {more} more in --json", style="dim"))
    for fix in check.fixes:
        lines.extend(_fix_lines(fix, platform))
    return lines


def _answer_line(line: AnswerLine, unicode: bool) -> Text:
    return Text.assemble("    ", _mark(line.status, unicode), " ", line.text)


def answer_view(answer: Answer, unicode: bool) -> Group:
    """The answer block: the question, the verdict, the LAN, firewall rule, forwarding, internet."""
    parts: list[Text] = [
        Text(""),
        Text.assemble(("Answer: ", "bold"), (answer.question, "bold")),
        Text.assemble("  ", (answer.verdict, "bold")),
        Text("  On this network:", style="bold"),
    ]
    parts += [_answer_line(line, unicode) for line in answer.lan]
    parts.append(Text.assemble(("  Firewall rule: ", "bold"), answer.firewall_rule))
    parts.append(Text.assemble(("  Port forwarding: ", "bold"), answer.port_forwarding))
    for step in answer.next_steps:
        parts.append(Text.assemble("  -> ", (step, "bold green")))
    parts.append(Text("  From the internet:", style="bold"))
    parts += [_answer_line(line, unicode) for line in answer.internet]
    for alternative in answer.alternatives:
        parts.append(Text(f"    {alternative}"))
    return Group(*parts)


def doctor_view(report: DoctorReport, *, unicode: bool = True) -> Group:
    """The whole report for a terminal (or a pipe: plain text, no colour)."""
    if report.mode == "server":
        title = f"lanchat doctor - this PC as a lanchat server on port {report.port}"
    else:
        title = f"lanchat doctor - can this PC reach {report.target}?"
    parts: list[Text | Group] = [Text(f"{title} ({report.platform})", style="bold")]
    width = max((len(c.id) for c in report.checks), default=10)
    for check in report.checks:
        parts.extend(_check_lines(check, unicode, report.platform, width))
    parts.append(answer_view(report.answer, unicode))
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    parts.append(Text(""))
    parts.append(
        Text(
            f"{len(report.checks)} checks: {summary} (took {report.seconds:.2f} s)."
            + (" Exit code 3: a check failed." if report.failed else ""),
            style="dim",
        )
    )
    return Group(*parts)


def print_doctor(console: Console, report: DoctorReport) -> None:
    """Print the report, with ASCII marks where the terminal cannot show the others."""
    encoding = (console.encoding or "").lower()
    console.print(doctor_view(report, unicode=encoding.startswith("utf")))
