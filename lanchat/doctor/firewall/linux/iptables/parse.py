"""Reading `iptables-save` / `ip6tables-save` text into tables, chain policies and parsed rules."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lanchat.doctor.firewall.verdict import Family

_COUNTERS = re.compile(r"^\[\d+:\d+\]\s+")


@dataclass(frozen=True)
class Condition:
    """One test of a rule: what it tests, its arguments, and whether it is negated with `!`."""

    kind: str  # e.g. "in", "src", "proto", "tcp --dport", "multiport --dports"
    args: tuple[str, ...] = ()
    negated: bool = False


@dataclass(frozen=True)
class IptRule:
    """One `-A` line: its place, its conditions and its target."""

    table: str
    chain: str
    number: int  # 1-based position in its chain, as `iptables -L --line-numbers` shows
    text: str
    conditions: tuple[Condition, ...] = ()
    target: str | None = None
    goto: bool = False
    target_args: tuple[str, ...] = ()
    problem: str | None = None  # why the line could not be parsed


@dataclass(frozen=True)
class IptTable:
    """One `*table` section: chain policies (None for user chains) and rules per chain."""

    name: str
    policies: Mapping[str, str | None]
    rules: Mapping[str, tuple[IptRule, ...]]


@dataclass(frozen=True)
class IptablesRuleset:
    """A parsed iptables-save dump; ``error`` says why it could not be read at all."""

    family: Family
    tables: Mapping[str, IptTable] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # lines such as "# Warning: iptables-legacy tables present"
    error: str | None = None

    @property
    def rule_count(self) -> int:
        """How many rules the dump holds, over all tables."""
        return sum(len(rules) for t in self.tables.values() for rules in t.rules.values())


def parse_iptables_save(text: str, family: Family = "ip") -> IptablesRuleset:
    """Read iptables-save (family "ip") or ip6tables-save ("ip6") output; never raises."""
    if not isinstance(text, str):
        return IptablesRuleset(family, error="the iptables-save output is not text")
    tables: dict[str, IptTable] = {}
    warnings: list[str] = []
    name: str | None = None
    policies: dict[str, str | None] = {}
    rules: dict[str, list[IptRule]] = {}
    for raw in text.splitlines():
        line = _COUNTERS.sub("", raw.strip())
        if not line:
            continue
        if line.startswith("#"):
            if "Warning" in line or "incompatible" in line:
                warnings.append(line.lstrip("# ").strip())
            continue
        if line.startswith("*"):
            name, policies, rules = line[1:].strip(), {}, {}
        elif name is None:
            return IptablesRuleset(family, error=f"not iptables-save output: {raw[:60]!r}")
        elif line == "COMMIT":
            frozen = {chain: tuple(found) for chain, found in rules.items()}
            tables[name] = IptTable(name, dict(policies), frozen)
            name = None
        elif line.startswith(":"):
            parts = line[1:].split()
            if parts:
                policy = parts[1] if len(parts) > 1 and parts[1] != "-" else None
                policies[parts[0]] = policy
                rules.setdefault(parts[0], [])
        elif line.startswith("-A ") or line.startswith("--append "):
            rule = _parse_rule(name, line, rules)
            rules.setdefault(rule.chain, []).append(rule)
        else:
            warnings.append(f"line not understood: {line[:80]}")
    if name is not None:
        warnings.append(f"table {name} has no COMMIT line (output cut short?)")
        frozen = {chain: tuple(found) for chain, found in rules.items()}
        tables[name] = IptTable(name, dict(policies), frozen)
    return IptablesRuleset(family, tables, tuple(warnings))


def _parse_rule(table: str, line: str, rules: Mapping[str, list[IptRule]]) -> IptRule:
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        chain = line.split()[1] if len(line.split()) > 1 else "?"
        number = len(rules.get(chain, [])) + 1
        return IptRule(table, chain, number, line, problem=f"cannot split the line ({exc})")
    chain = tokens[1] if len(tokens) > 1 else "?"
    number = len(rules.get(chain, [])) + 1
    try:
        conditions, target, goto, target_args = _parse_tokens(tokens[2:])
    except _RuleError as exc:
        return IptRule(table, chain, number, line, problem=str(exc))
    return IptRule(table, chain, number, line, conditions, target, goto, target_args)


class _RuleError(ValueError):
    """A rule line the parser cannot follow."""


_GENERIC = {
    "-i": "in",
    "--in-interface": "in",
    "-o": "out",
    "--out-interface": "out",
    "-s": "src",
    "--source": "src",
    "--src": "src",
    "-d": "dst",
    "--destination": "dst",
    "--dst": "dst",
    "-p": "proto",
    "--protocol": "proto",
}


def _parse_tokens(
    tokens: Sequence[str],
) -> tuple[tuple[Condition, ...], str | None, bool, tuple[str, ...]]:
    conditions: list[Condition] = []
    target: str | None = None
    goto = False
    target_args: list[str] = []
    module: str | None = None
    proto: str | None = None
    negate = False
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word == "!":
            negate = True
            i += 1
            continue
        if word in _GENERIC:
            value, i = _take(tokens, i + 1, word)
            kind = _GENERIC[word]
            if kind == "proto":
                proto = value.lower()
            conditions.append(Condition(kind, (value,), negate))
        elif word in ("-f", "--fragment"):
            conditions.append(Condition("fragment", (), negate))
            i += 1
        elif word in ("-m", "--match"):
            module, i = _take(tokens, i + 1, word)
            conditions.append(Condition(f"module {module}", (), False))
        elif word in ("-j", "--jump", "-g", "--goto"):
            target, i = _take(tokens, i + 1, word)
            goto = word in ("-g", "--goto")
            module = "target"
        elif word.startswith("--"):
            args: list[str] = []
            i += 1
            while i < len(tokens) and not _is_option(tokens[i]):
                if tokens[i] == "!":  # old syntax: --dport ! 22
                    negate = True
                else:
                    args.append(tokens[i])
                i += 1
            if module == "target":
                target_args.extend([word, *args])
            else:
                owner = module or proto or "?"
                conditions.append(Condition(f"{owner} {word}", tuple(args), negate))
            negate = False
            continue
        else:
            raise _RuleError(f"unexpected word {word!r}")
        negate = False
    return tuple(conditions), target, goto, tuple(target_args)


def _is_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not token[1].isdigit()


def _take(tokens: Sequence[str], i: int, option: str) -> tuple[str, int]:
    if i >= len(tokens):
        raise _RuleError(f"{option} has no value")
    return tokens[i], i + 1


def iptables_tables(ruleset: IptablesRuleset) -> frozenset[str]:
    """Names of the tables in the dump that iptables-save could show in full."""
    incompatible = {
        match.group(1)
        for warning in ruleset.warnings
        for match in [re.search(r"Table `?'?(\w+)'? is incompatible", warning)]
        if match
    }
    return frozenset(name for name in ruleset.tables if name not in incompatible)
