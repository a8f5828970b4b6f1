"""Walking netfilter chains: jump, goto, return, policies, and rules whose match is uncertain.

The nft and iptables evaluators turn their rules into Steps for one packet (does the rule
match, and what does it do); this module follows the control flow. A rule whose match cannot
be decided is followed both ways: if every way ends the same, the answer is still certain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lanchat.doctor.firewall.verdict import Action, Verdict, unknown

JumpKind = Literal["accept", "drop", "reject", "return", "jump", "goto", "continue", "unknown"]
EndKind = Literal["accept", "drop", "reject", "unknown", "return"]

MAX_DEPTH = 32  # jumps deeper than this mean a loop or a broken ruleset
MAX_PATHS = 256  # uncertain rules double the paths; past this the answer is "unknown"


@dataclass(frozen=True)
class Jump:
    """What a rule does when it matches."""

    kind: JumpKind
    target: str | None = None  # chain name for jump/goto
    reason: str | None = None  # why it is unknown, for kind "unknown"


@dataclass(frozen=True)
class Step:
    """One rule as seen by one packet: where it is, its text, whether it matches, its verdict.

    ``match`` is True, False, or a string saying why the match cannot be decided.
    ``verdict`` None means the rule has no verdict (counter, log): it never decides anything.
    """

    where: str
    text: str
    match: bool | str
    verdict: Jump | None


@dataclass(frozen=True)
class BaseChain:
    """A chain attached to a hook; its policy decides what falls off its end."""

    name: str
    where: str  # e.g. "nft table inet filter chain input"
    policy: Literal["accept", "drop"]


@dataclass(frozen=True)
class _End:
    kind: EndKind
    where: str
    text: str | None
    reason: str
    trail: tuple[str, ...]
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChainResult:
    """The verdict of one base chain, the chains the packet went through, and the doubts."""

    chain: str  # where the base chain is, e.g. "nft table inet filter chain input"
    verdict: Verdict
    trail: tuple[str, ...]  # chain names visited on the path that gave the evidence
    uncertain: tuple[str, ...]  # rules whose match could not be decided ("where: why")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "chain": self.chain,
            "verdict": self.verdict.to_dict(),
            "trail": list(self.trail),
            "uncertain": list(self.uncertain),
        }


@dataclass(frozen=True)
class Evaluation:
    """An evaluator's answer: the overall verdict, each base chain's verdict, and notes."""

    verdict: Verdict
    chains: tuple[ChainResult, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "verdict": self.verdict.to_dict(),
            "chains": [c.to_dict() for c in self.chains],
            "notes": list(self.notes),
        }


def walk_base_chain(
    base: BaseChain, chains: Mapping[str, Sequence[Step]], action_words: Mapping[str, str]
) -> ChainResult:
    """Evaluate one base chain for the packet the Steps were made for.

    ``action_words`` names the actions in the ruleset's own language (e.g. "drop" -> "DROP").
    """
    walker = _Walker(chains)
    resolved: list[_End] = []
    for end in walker.run(base.name, 0, 0, assumptions=(), trail=(base.name,)):
        if end.kind != "return":
            resolved.append(end)
            continue
        # Fell off the end of the base chain, or returned from it: the policy decides.
        word = action_words.get(base.policy, base.policy)
        reason = f"no rule decided, so the chain policy {word} applies"
        resolved.append(
            _End(base.policy, f"{base.where} policy", None, reason, end.trail, end.assumptions)
        )
    uncertain = tuple(dict.fromkeys(walker.unknowns))
    verdict = _summarise(resolved, uncertain, walker.texts, exceeded=walker.exceeded)
    return ChainResult(base.where, verdict, _evidence(resolved).trail, uncertain)


class _Walker:
    """Follows the control flow through the Steps of one packet, counting uncertain paths."""

    def __init__(self, chains: Mapping[str, Sequence[Step]]) -> None:
        self.chains = chains
        self.paths = 1
        self.exceeded = False
        self.unknowns: list[str] = []
        self.texts: dict[str, str] = {}  # where -> rule text, for the evidence of doubts

    def run(
        self,
        chain: str,
        start: int,
        depth: int,
        *,
        assumptions: tuple[str, ...],
        trail: tuple[str, ...],
    ) -> list[_End]:
        """All the ways the packet can leave ``chain``, starting at rule ``start``.

        Ends of kind "return" mean it left the chain without a verdict; the caller goes on.
        """
        if depth > MAX_DEPTH:
            reason = f"chains nest deeper than {MAX_DEPTH} levels (a loop?)"
            return [_End("unknown", chain, None, reason, trail, assumptions)]
        steps = self.chains.get(chain)
        if steps is None:
            reason = f"a rule jumps to chain {chain!r}, which is not in the ruleset"
            return [_End("unknown", chain, None, reason, trail, assumptions)]
        for index in range(start, len(steps)):
            step = steps[index]
            if step.verdict is None or step.match is False:
                continue
            if step.match is True:
                return self.apply(chain, index, step, depth, assumptions=assumptions, trail=trail)
            # The match cannot be decided: follow both ways, within the budget.
            doubt = f"{step.where}: {step.match}"
            self.unknowns.append(doubt)
            self.texts.setdefault(step.where, step.text)
            self.paths += 1
            if self.paths > MAX_PATHS:
                self.exceeded = True
                reason = "too many rules whose match cannot be decided"
                return [_End("unknown", step.where, step.text, reason, trail, assumptions)]
            yes = (*assumptions, f"if {doubt} matches")
            no = (*assumptions, f"if {doubt} does not match")
            matched = self.apply(chain, index, step, depth, assumptions=yes, trail=trail)
            return matched + self.run(chain, index + 1, depth, assumptions=no, trail=trail)
        return [_End("return", chain, None, "", trail, assumptions)]

    def apply(
        self,
        chain: str,
        index: int,
        step: Step,
        depth: int,
        *,
        assumptions: tuple[str, ...],
        trail: tuple[str, ...],
    ) -> list[_End]:
        """The ways the packet leaves ``chain`` when the rule at ``index`` matches."""
        verdict = step.verdict or Jump("continue")
        kind = verdict.kind
        if kind == "accept" or kind == "drop" or kind == "reject":  # noqa: PLR1714 (narrows the type)
            return [_End(kind, step.where, step.text, "", trail, assumptions)]
        if kind == "unknown":
            reason = verdict.reason or "a verdict the evaluator does not understand"
            self.unknowns.append(f"{step.where}: {reason}")
            return [_End("unknown", step.where, step.text, reason, trail, assumptions)]
        if kind == "continue":
            return self.run(chain, index + 1, depth, assumptions=assumptions, trail=trail)
        if kind == "return":
            return [_End("return", chain, None, "", trail, assumptions)]
        target = verdict.target or ""
        out: list[_End] = []
        for end in self.run(target, 0, depth + 1, assumptions=assumptions, trail=(*trail, target)):
            # goto does not come back: the called chain's end is this chain's end too.
            if end.kind != "return" or kind == "goto":
                out.append(end)
            else:  # jump: carry on after the jump, with what the called chain assumed
                out.extend(
                    self.run(chain, index + 1, depth, assumptions=end.assumptions, trail=end.trail)
                )
        return out


def _evidence(ends: list[_End]) -> _End:
    """The path to show: the one that assumes the fewest undecidable rules matched."""
    return min(ends, key=lambda end: sum(a.endswith(" matches") for a in end.assumptions))


def _summarise(
    ends: list[_End], uncertain: tuple[str, ...], texts: Mapping[str, str], *, exceeded: bool
) -> Verdict:
    """One verdict from all the ways through a base chain."""
    kinds = {end.kind for end in ends}
    shown = _evidence(ends)
    doubt_note = ""
    if len(ends) > 1:
        doubt_note = (
            "; the same happens whichever way these undecidable rules go: "
            + "; ".join(uncertain[:3])
            + (" (and more)" if len(uncertain) > 3 else "")
        )
    if kinds <= {"drop", "reject"}:
        action: Action = "drop" if shown.kind == "drop" else "reject"
        return Verdict("blocked", action, shown.where, _because(shown) + doubt_note, shown.text)
    if kinds == {"accept"}:
        return Verdict("allowed", "accept", shown.where, _because(shown) + doubt_note, shown.text)
    hard = [end for end in ends if end.kind == "unknown"]
    if hard:
        end = hard[0]
        return unknown(end.where, f"cannot tell: {end.reason}", end.text)
    reason = (
        "cannot tell: the result depends on rules the evaluator cannot interpret: "
        + "; ".join(uncertain[:3])
        + (" (and more)" if exceeded or len(uncertain) > 3 else "")
    )
    first_doubt = uncertain[0].split(": ", 1)[0] if uncertain else shown.where
    return unknown(first_doubt, reason, texts.get(first_doubt))


def _because(end: _End) -> str:
    """Plain words for how a path ended."""
    via = ""
    if len(end.trail) > 1:
        via = " (chains passed: " + " -> ".join(end.trail) + ")"
    if end.text is None:
        return end.reason + via
    word = {"accept": "accepts", "drop": "drops", "reject": "rejects"}.get(end.kind, end.kind)
    return f"the rule `{end.text}` matches and {word} the packet{via}"


def combine_chains(results: Sequence[ChainResult], *, nothing: Verdict) -> Verdict:
    """The overall verdict of several base chains on one hook, in the order they run.

    A drop or reject in any chain is final; an accept ends only its own chain, so the packet
    is allowed only if every chain accepts it. ``nothing`` is the answer when there are none.
    """
    if not results:
        return nothing
    for result in results:
        if result.verdict.outcome == "blocked":
            return result.verdict
    for result in results:
        if result.verdict.outcome == "unknown":
            return result.verdict
    if len(results) == 1:
        return results[0].verdict
    reason = f"all {len(results)} input chains accept it: " + "; ".join(
        f"[{r.chain}] {r.verdict.reason}" for r in results
    )
    texts = [r.verdict.rule_text for r in results if r.verdict.rule_text]
    return Verdict(
        "allowed",
        "accept",
        "; ".join(r.verdict.source for r in results),
        reason,
        "\n".join(texts) if texts else None,
    )
