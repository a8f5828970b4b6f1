"""Evaluating `iptables-save` / `ip6tables-save` text for one inbound packet.

The INPUT chains of the mangle, filter, security and nat tables run in that order (the
PREROUTING chains of raw, mangle and nat before them); each starts at its built-in chain and
follows -j into user chains (which come back on RETURN or at their end) and -g (which does
not). ACCEPT ends only the built-in chain of its table; DROP and REJECT are final. LOG and
other non-terminating targets never decide. A rule the evaluator cannot decide is followed
both ways; when the ways disagree the answer is "unknown", naming the match.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from lanchat.doctor.firewall.linux.chainwalk import (
    BaseChain,
    ChainResult,
    Evaluation,
    Jump,
    Step,
    combine_chains,
    walk_base_chain,
)
from lanchat.doctor.firewall.linux.iptables.match import condition_matches
from lanchat.doctor.firewall.linux.iptables.parse import (
    IptablesRuleset,
    IptRule,
    IptTable,
    parse_iptables_save,
)
from lanchat.doctor.firewall.verdict import Packet, Verdict, unknown

# The hooks a packet to this host passes, and the tables with a chain there, in kernel order.
HOOK_ORDER: tuple[tuple[str, str], ...] = (
    ("raw", "PREROUTING"),
    ("mangle", "PREROUTING"),
    ("nat", "PREROUTING"),
    ("mangle", "INPUT"),
    ("filter", "INPUT"),
    ("security", "INPUT"),
    ("nat", "INPUT"),
)
ACTION_WORDS = {"accept": "ACCEPT", "drop": "DROP"}
# Targets that do something to the packet and let it go on to the next rule.
NON_TERMINATING = frozenset(
    {
        "LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "NOTRACK", "TRACE", "TCPMSS", "SET",
        "AUDIT", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "CHECKSUM", "SECMARK", "CONNSECMARK",
        "IDLETIMER", "LED", "RATEEST", "TEE", "HMARK", "TCPOPTSTRIP",
    }
)  # fmt: skip


def evaluate_iptables(
    data: str | IptablesRuleset,
    packet: Packet,
    *,
    tables: Collection[str] | None = None,
    label: str | None = None,
) -> Evaluation:
    """The verdict of an iptables-save dump for ``packet``; never raises.

    ``data`` must be the dump of the packet's family (iptables-save for "ip",
    ip6tables-save for "ip6"). ``tables`` limits which tables are evaluated; ``label`` names
    the rule store in the evidence (default "iptables" / "ip6tables").
    """
    tool = label or ("iptables" if packet.family == "ip" else "ip6tables")
    ruleset = (
        data if isinstance(data, IptablesRuleset) else parse_iptables_save(data, packet.family)
    )
    if ruleset.error:
        return Evaluation(unknown(tool, f"cannot read the rules: {ruleset.error}"))
    if ruleset.family != packet.family:
        return Evaluation(
            unknown(tool, f"these are {ruleset.family} rules, the packet is {packet.family}")
        )
    try:
        return _evaluate(ruleset, packet, tool, tables)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        return Evaluation(unknown(tool, f"cannot evaluate the rules: {exc!r}"))


def _evaluate(
    ruleset: IptablesRuleset, packet: Packet, tool: str, only: Collection[str] | None
) -> Evaluation:
    results: list[ChainResult] = []
    for table_name, chain in HOOK_ORDER:
        if only is not None and table_name not in only:
            continue
        table = ruleset.tables.get(table_name)
        if table is None or chain not in table.policies:
            continue
        steps = {
            name: [_step(tool, rule, packet, table) for rule in found]
            for name, found in table.rules.items()
        }
        policy = "drop" if (table.policies.get(chain) or "ACCEPT").upper() == "DROP" else "accept"
        base = BaseChain(chain, f"{tool} {table_name}/{chain}", policy)  # type: ignore[arg-type]
        results.append(walk_base_chain(base, steps, ACTION_WORDS))
    nothing = Verdict(
        "allowed", None, tool, f"no {tool} chain filters incoming packets, so nothing blocks it"
    )
    # Chains that only pass packets on add nothing to the evidence of the answer.
    shown = tuple(r for r in results if not _silent(r, ruleset))
    return Evaluation(
        combine_chains(shown or tuple(results), nothing=nothing), tuple(results), ruleset.warnings
    )


def _silent(result: ChainResult, ruleset: IptablesRuleset) -> bool:
    """An empty built-in chain with policy ACCEPT (iptables-nft creates them for every table)."""
    tool_table_chain = result.chain.split(" ", 1)[-1]
    table_name, _, chain = tool_table_chain.partition("/")
    table = ruleset.tables.get(table_name)
    if table is None:
        return False
    return not table.rules.get(chain) and (table.policies.get(chain) or "ACCEPT") == "ACCEPT"


def _step(tool: str, rule: IptRule, packet: Packet, table: IptTable) -> Step:
    where = f"{tool} {rule.table}/{rule.chain} rule {rule.number}"
    if rule.problem:
        # The rule's target cannot be trusted either; if it has one, the rule may decide.
        has_target = re.search(r"\s(-j|--jump|-g|--goto)\s", f" {rule.text} ") is not None
        verdict = Jump("unknown", reason=f"the rule could not be parsed: {rule.problem}")
        return Step(where, rule.text, True, verdict if has_target else None)
    match: bool | str = True
    for condition in rule.conditions:
        result = condition_matches(condition, packet)
        if result is False:
            match = False
            break
        if isinstance(result, str) and match is True:
            match = result
    return Step(where, rule.text, match, _verdict(rule, table))


def _verdict(rule: IptRule, table: IptTable) -> Jump | None:
    target = rule.target
    if target is None:
        return None  # counting rule
    upper = target.upper()
    if target in table.policies and target not in (
        "INPUT",
        "FORWARD",
        "OUTPUT",
        "PREROUTING",
        "POSTROUTING",
    ):
        return Jump("goto" if rule.goto else "jump", target)
    if upper == "ACCEPT":
        return Jump("accept")
    if upper == "DROP":
        return Jump("drop")
    if upper == "REJECT":
        return Jump("reject")
    if upper == "RETURN":
        return Jump("return")
    if upper in NON_TERMINATING:
        return None
    if upper in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"):
        return Jump("unknown", reason=f"-j {target} (address translation) is not evaluated")
    if upper in ("QUEUE", "NFQUEUE", "TPROXY", "SYNPROXY"):
        return Jump("unknown", reason=f"-j {target} hands the packet elsewhere")
    return Jump("unknown", reason=f"the target {target!r} is neither built in nor a chain here")
