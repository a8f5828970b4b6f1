"""Reading `nft -j list ruleset` (libnftables-json(5)) into chains, rules and sets; never raises."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NftChain:
    """A chain from the ruleset; base chains carry hook, priority and policy."""

    family: str
    table: str
    name: str
    hook: str | None = None
    prio: int = 0
    policy: str = "accept"
    type: str | None = None

    @property
    def where(self) -> str:
        """Where the chain is, in words a user can look up with nft."""
        return f"nft table {self.family} {self.table} chain {self.name}"


@dataclass(frozen=True)
class NftRule:
    """One rule: its place and its expression list as nft printed it."""

    family: str
    table: str
    chain: str
    handle: int | None
    expr: tuple[Any, ...]
    comment: str | None = None

    @property
    def where(self) -> str:
        """Where the rule is: table, chain and handle."""
        handle = f"handle {self.handle}" if self.handle is not None else "(no handle)"
        return f"nft table {self.family} {self.table} chain {self.chain} rule {handle}"


@dataclass(frozen=True)
class NftRuleset:
    """The parts of a ruleset the evaluator needs; ``error`` says why it could not be read."""

    chains: tuple[NftChain, ...] = ()
    rules: tuple[NftRule, ...] = ()
    sets: Mapping[tuple[str, str, str], Mapping[str, Any]] = field(default_factory=dict)
    tables: tuple[tuple[str, str], ...] = ()
    error: str | None = None

    def chain_rules(self, family: str, table: str, chain: str) -> list[NftRule]:
        """The rules of one chain, in order."""
        return [r for r in self.rules if (r.family, r.table, r.chain) == (family, table, chain)]

    @property
    def has_nat(self) -> bool:
        """Whether any rule rewrites destinations (then `ct status dnat` cannot be known)."""
        return any(
            isinstance(stmt, dict) and ("dnat" in stmt or "redirect" in stmt)
            for rule in self.rules
            for stmt in rule.expr
        )


def parse_nft_ruleset(data: str | bytes | Mapping[str, Any]) -> NftRuleset:
    """Read `nft -j list ruleset` output; never raises (``error`` says what was wrong)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return NftRuleset(error=f"the nft output is not JSON ({exc})")
    if not isinstance(data, Mapping) or not isinstance(data.get("nftables"), list):
        return NftRuleset(error='the nft output has no "nftables" list')
    chains: list[NftChain] = []
    rules: list[NftRule] = []
    sets: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    tables: list[tuple[str, str]] = []
    for item in data["nftables"]:
        if not isinstance(item, Mapping) or len(item) != 1:
            continue
        ((kind, body),) = item.items()
        if not isinstance(body, Mapping):
            continue
        family, table, name = body.get("family"), body.get("table"), body.get("name")
        if kind == "table" and isinstance(family, str) and isinstance(name, str):
            tables.append((family, name))
        elif kind == "chain" and _all_str(family, table, name):
            prio = body.get("prio", 0)
            if isinstance(prio, bool) or not isinstance(prio, int):
                prio = 0
            policy = body.get("policy", "accept")
            chains.append(
                NftChain(
                    family,  # type: ignore[arg-type]
                    table,  # type: ignore[arg-type]
                    name,  # type: ignore[arg-type]
                    body.get("hook") if isinstance(body.get("hook"), str) else None,
                    prio,
                    policy if isinstance(policy, str) else "accept",
                    body.get("type") if isinstance(body.get("type"), str) else None,
                )
            )
        elif kind == "rule" and _all_str(family, table, body.get("chain")):
            expr = body.get("expr")
            handle = body.get("handle")
            comment = body.get("comment")
            rules.append(
                NftRule(
                    family,  # type: ignore[arg-type]
                    table,  # type: ignore[arg-type]
                    body["chain"],
                    handle if isinstance(handle, int) and not isinstance(handle, bool) else None,
                    tuple(expr) if isinstance(expr, list) else ({"unparsable": expr},),
                    comment if isinstance(comment, str) else None,
                )
            )
        elif kind in ("set", "map") and _all_str(family, table, name):
            sets[(family, table, name)] = {**body, "_kind": kind}  # type: ignore[index]
    return NftRuleset(tuple(chains), tuple(rules), sets, tuple(tables))


def _all_str(*values: object) -> bool:
    return all(isinstance(v, str) for v in values)
