"""Evaluating `nft -j list ruleset` (libnftables-json(5)) for one inbound packet.

Every base chain on the input hook of the packet's families (inet and ip, or inet and ip6)
runs in priority order. Within a chain the rules run in order, following jump (which comes
back), goto (which does not) and return; the chain policy decides what falls off the end. An
accept ends only its own base chain, a drop or reject is final. Anything with a verdict that
this module cannot interpret makes the answer "unknown", with the construct named.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from lanchat.doctor.firewall.linux.chainwalk import (
    BaseChain,
    ChainResult,
    Evaluation,
    Step,
    combine_chains,
    walk_base_chain,
)
from lanchat.doctor.firewall.linux.nft.match import RuleMatcher
from lanchat.doctor.firewall.linux.nft.parse import NftChain, NftRuleset, parse_nft_ruleset
from lanchat.doctor.firewall.verdict import Packet, Verdict, unknown

FAMILIES_FOR = {"ip": ("inet", "ip"), "ip6": ("inet", "ip6")}
ACTION_WORDS = {"accept": "accept", "drop": "drop"}


NftEvaluation = Evaluation  # the name other modules and tests use for nft results


def input_base_chains(
    ruleset: NftRuleset, family: str, skip_tables: Collection[tuple[str, str]] = ()
) -> list[NftChain]:
    """The input-hook base chains a packet of ``family`` runs through, in priority order."""
    wanted = FAMILIES_FOR.get(family, ())
    found = [
        c
        for c in ruleset.chains
        if c.hook == "input" and c.family in wanted and (c.family, c.table) not in skip_tables
    ]
    return sorted(found, key=lambda c: c.prio)  # sorted() is stable: ties keep their order


def evaluate_nft(
    data: str | bytes | Mapping[str, Any] | NftRuleset,
    packet: Packet,
    *,
    skip_tables: Collection[tuple[str, str]] = (),
) -> NftEvaluation:
    """The verdict of an nft ruleset for ``packet``; never raises.

    ``skip_tables`` names (family, table) pairs evaluated elsewhere (iptables-nft tables).
    """
    ruleset = data if isinstance(data, NftRuleset) else parse_nft_ruleset(data)
    if ruleset.error:
        return NftEvaluation(unknown("nft", f"cannot read the ruleset: {ruleset.error}"))
    try:
        return _evaluate(ruleset, packet, skip_tables)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # A shape of JSON the evaluator did not foresee: say so instead of guessing.
        return NftEvaluation(unknown("nft", f"cannot evaluate the ruleset: {exc!r}"))


def _evaluate(
    ruleset: NftRuleset, packet: Packet, skip_tables: Collection[tuple[str, str]]
) -> NftEvaluation:
    bases = input_base_chains(ruleset, packet.family, skip_tables)
    results: list[ChainResult] = []
    for base in bases:
        steps = _steps_for_table(ruleset, base.family, base.table, packet)
        policy = "drop" if base.policy == "drop" else "accept"
        chain = BaseChain(base.name, base.where, policy)  # type: ignore[arg-type]
        results.append(walk_base_chain(chain, steps, ACTION_WORDS))
    nothing = Verdict(
        "allowed",
        None,
        "nft",
        "no nftables chain filters incoming packets"
        + (" of this family" if ruleset.chains else "")
        + ", so nothing blocks it",
    )
    notes = tuple(_other_hook_notes(ruleset, packet.family, skip_tables))
    return NftEvaluation(combine_chains(results, nothing=nothing), tuple(results), notes)


def _other_hook_notes(
    ruleset: NftRuleset, family: str, skip_tables: Collection[tuple[str, str]]
) -> Iterable[str]:
    """Chains before the input hook that can drop packets: not evaluated, but worth saying."""
    wanted = (*FAMILIES_FOR.get(family, ()), "netdev")
    for chain in ruleset.chains:
        if chain.hook not in ("prerouting", "ingress") or chain.family not in wanted:
            continue
        if (chain.family, chain.table) in skip_tables:
            continue
        droppy = chain.policy == "drop" or any(
            isinstance(stmt, Mapping) and ("drop" in stmt or "reject" in stmt)
            for rule in ruleset.rules
            if (rule.family, rule.table) == (chain.family, chain.table)
            for stmt in rule.expr
        )
        if droppy:
            yield (
                f"{chain.where} (hook {chain.hook}) runs before the input hook and its table can "
                "drop packets; it is not evaluated"
            )


def _steps_for_table(
    ruleset: NftRuleset, family: str, table: str, packet: Packet
) -> dict[str, list[Step]]:
    """Every chain of one table, as Steps for ``packet`` (jumps stay inside a table)."""
    ctx = RuleMatcher(ruleset, family, table, packet)
    steps: dict[str, list[Step]] = {}
    for chain in ruleset.chains:
        if (chain.family, chain.table) == (family, table):
            steps[chain.name] = [
                ctx.step(rule) for rule in ruleset.chain_rules(family, table, chain.name)
            ]
    return steps
