"""Matching one nft rule's JSON expressions against one packet: does it match, and what then.

Longer than the others (about 480 lines) on purpose: RuleMatcher is one class over the whole of
libnftables-json's expression language (payload, meta, ct, sets, maps, ranges, prefixes, flags);
cut in two, each half would need the other's private helpers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from lanchat.doctor.firewall.linux.chainwalk import Jump, Step
from lanchat.doctor.firewall.linux.netmatch import (
    address_in_range,
    iface_matches,
    port_number,
    proto_number,
)
from lanchat.doctor.firewall.linux.nft.parse import NftRule, NftRuleset
from lanchat.doctor.firewall.linux.nft.render import compact_json, render_expr, render_rule
from lanchat.doctor.firewall.verdict import Packet

NFPROTO = {"ip": "ipv4", "ip6": "ipv6"}


# Statements that neither match nor decide: they never change a verdict.
SIDE_EFFECTS = frozenset(
    {
        "counter",
        "log",
        "mangle",
        "notrack",
        "set",
        "ct helper",
        "ct timeout",
        "ct expectation",
        "flow",
        "dup",
        "secmark",
        "last",
    }
)


NAT_STATEMENTS = frozenset({"snat", "dnat", "masquerade", "redirect"})


# Transport headers a payload match can name; a packet of another protocol never matches it.
L4_PAYLOADS = frozenset(
    {"tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "ah", "esp", "comp", "igmp", "gre"}
)


TCP_SYN_FLAGS = frozenset({"syn"})  # a NEW TCP packet is a bare SYN


class _Unknown(str):
    """A reason why a value cannot be known; a str subclass so it can travel as a match."""


class _Absent:
    """The header a match needs is not in the packet: the rule cannot match, whatever the op."""


ABSENT = _Absent()


class RuleMatcher:
    """Evaluates the expressions of one table's rules for one packet (jumps stay in a table)."""

    def __init__(self, ruleset: NftRuleset, family: str, table: str, packet: Packet) -> None:
        self.ruleset = ruleset
        self.family = family
        self.table = table
        self.packet = packet

    def step(self, rule: NftRule) -> Step:
        """One rule as a Step: whether it matches this packet, and what it then does."""
        match: bool | str = True
        verdict: Jump | None = None
        for stmt in rule.expr:
            if not isinstance(stmt, Mapping) or len(stmt) != 1:
                match = _and(
                    match, _Unknown(f"an expression nft -j printed as {compact_json(stmt)}")
                )
                continue
            ((key, body),) = stmt.items()
            if key == "match":
                match = _and(match, self.match(body))
            elif key in ("accept", "drop", "continue", "return"):
                verdict = Jump(key)
            elif key == "reject":
                verdict = Jump("reject")
            elif key in ("jump", "goto"):
                target = body.get("target") if isinstance(body, Mapping) else None
                if isinstance(target, str):
                    verdict = Jump(key, target)
                else:
                    verdict = Jump("unknown", reason=f"a {key} without a target chain")
            elif key == "vmap":
                found = self.vmap(body)
                if isinstance(found, _Absent):
                    match = False
                elif isinstance(found, Jump | type(None)):
                    if found is None:
                        match = False  # no element matched: the rule does nothing
                    verdict = found
                else:
                    verdict = Jump("unknown", reason=found)
            elif key in NAT_STATEMENTS:
                verdict = Jump("unknown", reason=f"{key} (address translation) is not evaluated")
            elif key in ("queue", "tproxy", "synproxy", "fwd"):
                verdict = Jump("unknown", reason=f"{key} hands the packet elsewhere")
            elif key == "xt":
                verdict, match = self.xt(body, verdict, match)
            elif key in ("limit", "quota", "meter", "connlimit"):
                match = _and(match, _Unknown(f"{key} depends on the traffic seen so far"))
            elif key in SIDE_EFFECTS:
                continue
            else:
                match = _and(match, _Unknown(f"the statement {key!r} is not understood"))
        return Step(rule.where, render_rule(rule), match, verdict)

    def xt(
        self, body: Any, verdict: Jump | None, match: bool | str
    ) -> tuple[Jump | None, bool | str]:
        """iptables-nft's opaque matches and targets: nft -j does not show what they test."""
        name = body.get("name", "?") if isinstance(body, Mapping) else "?"
        xt_type = body.get("type", "match") if isinstance(body, Mapping) else "match"
        if name == "comment":
            return verdict, match
        what = f"xt {xt_type} {name!r} (an iptables extension nft -j shows only by name)"
        if xt_type == "target":
            if name in ("LOG", "NFLOG", "MARK", "CONNMARK", "TCPMSS", "CT", "NOTRACK"):
                return verdict, match
            return Jump("unknown", reason=what), match
        return verdict, _and(match, _Unknown(what))

    def match(self, body: Any) -> bool | str:
        """One `match` expression: True, False or the reason it cannot be decided."""
        if not isinstance(body, Mapping):
            return _Unknown(f"a match written as {compact_json(body)}")
        op = body.get("op", "==")
        value = self.value(body.get("left"))
        if isinstance(value, _Absent):
            return False
        if isinstance(value, _Unknown):
            return value
        return self.compare(op, value, body.get("right"))

    def value(self, expr: Any) -> Any:
        """The packet's value for a left-hand expression: a typed value, ABSENT or _Unknown."""
        pkt = self.packet
        if not isinstance(expr, Mapping) or len(expr) != 1:
            return _Unknown(f"the expression {compact_json(expr)}")
        ((kind, body),) = expr.items()
        if kind == "meta":
            return self.meta(body.get("key") if isinstance(body, Mapping) else None)
        if kind == "payload":
            if not isinstance(body, Mapping):
                return _Unknown("a raw payload match")
            return self.payload(body.get("protocol"), body.get("field"))
        if kind == "ct":
            key = body.get("key") if isinstance(body, Mapping) else None
            if key == "state":
                return ("ctstate", frozenset({"new"}))
            if key == "status":
                if self.ruleset.has_nat:
                    return _Unknown("ct status (the ruleset rewrites destinations)")
                return ("ctstatus", frozenset())
            if key == "direction":
                return ("str", "original")
            if key in ("l3proto", "protocol"):
                return ("nfproto", NFPROTO[pkt.family]) if key == "l3proto" else ("proto", _pn(pkt))
            return _Unknown(f"ct {key} (connection tracking data) cannot be known in advance")
        if kind == "concat" and isinstance(body, list):
            parts = [self.value(part) for part in body]
            for part in parts:
                if isinstance(part, _Absent | _Unknown):
                    return part
            return ("concat", tuple(parts))
        if kind == "&" and isinstance(body, list) and len(body) == 2:
            inner = self.value(body[0])
            if isinstance(inner, _Absent | _Unknown):
                return inner
            if inner[0] == "flags":
                mask = _flag_names(body[1])
                if mask is None:
                    return _Unknown(f"a bit mask {compact_json(body[1])}")
                return ("flags", inner[1] & mask)
            return _Unknown(f"a bit operation on {render_expr(body[0])}")
        if kind == "fib":
            return _Unknown("fib (a routing table lookup) is not evaluated")
        return _Unknown(f"{kind} {compact_json(body)} is not understood")

    def meta(self, key: Any) -> Any:
        pkt = self.packet
        if key in ("iifname", "iif"):
            return ("iface", pkt.iif)
        if key == "l4proto":
            return ("proto", _pn(pkt))
        if key == "nfproto":
            return ("nfproto", NFPROTO[pkt.family])
        if key == "protocol":
            return ("ethertype", pkt.family)
        if key == "pkttype":
            return (
                "str",
                {"LOCAL": "host", "MULTICAST": "multicast"}.get(pkt.dst_type, "broadcast"),
            )
        if key == "mark":
            return _Unknown("meta mark (packet marks set elsewhere) cannot be known")
        return _Unknown(f"meta {key} is not evaluated")

    def payload(self, protocol: Any, fld: Any) -> Any:
        pkt = self.packet
        if protocol in ("ip", "ip6"):
            if protocol != pkt.family:
                return ABSENT
            if fld == "saddr":
                return ("addr", pkt.source)
            if fld == "daddr":
                return ("addr", pkt.destination)
            if fld in ("protocol", "nexthdr"):
                return ("proto", _pn(pkt))
            if fld == "version":
                return ("int", 4 if pkt.family == "ip" else 6)
            return _Unknown(f"{protocol} {fld} is not evaluated")
        if protocol in ("th", pkt.proto):
            if fld == "dport":
                return ("port", pkt.dport)
            if fld == "flags" and pkt.proto == "tcp":
                return ("flags", TCP_SYN_FLAGS)
            if fld == "sport":
                return _Unknown(f"{protocol} sport (the client's source port is not known)")
            return _Unknown(f"{protocol} {fld} is not evaluated")
        if protocol in L4_PAYLOADS:
            return ABSENT  # e.g. `icmp type ...` never matches a TCP packet
        return _Unknown(f"{protocol} {fld} is not evaluated")

    def compare(self, op: Any, value: tuple[str, Any], right: Any) -> bool | str:
        """Apply ``op`` between the packet's value and the rule's right-hand side."""
        kind = value[0]
        if kind in ("ctstate", "ctstatus", "flags"):
            return self.compare_flags(op, value[1], right)
        if op in ("==", "!=", "in"):
            found = self.contains(value, right)
            if isinstance(found, str):
                return found
            return found if op != "!=" else not found
        if op in ("<", ">", "<=", ">="):
            number = _scalar(value)
            limit = _to_number(kind, right)
            if number is None or limit is None:
                return _Unknown(f"the comparison {op} {compact_json(right)}")
            return {
                "<": number < limit,
                ">": number > limit,
                "<=": number <= limit,
                ">=": number >= limit,
            }[op]
        return _Unknown(f"the operator {op!r}")

    def compare_flags(self, op: Any, have: frozenset[str], right: Any) -> bool | str:
        """Flag-like values: ct state (one state), ct status and tcp flags (sets of bits)."""
        if (isinstance(right, str) and right.startswith("@")) or (
            isinstance(right, Mapping) and "set" in right
        ):
            # A set lookup: the value must equal one of the elements.
            elements = self.named_set_elements(right) if isinstance(right, str) else right["set"]
            if isinstance(elements, _Unknown):
                return elements
            options = [
                _flag_names(e) for e in (elements if isinstance(elements, list) else [elements])
            ]
            if any(not isinstance(o, frozenset) for o in options):
                return _Unknown(f"the flag values {compact_json(right)}")
            hit = have in options
            return hit if op in ("==", "in") else not hit
        wanted = _flag_names(right)
        if not isinstance(wanted, frozenset):
            return _Unknown(f"the flag value {compact_json(right)}")
        if op == "in":
            return bool(have & wanted)
        if op == "==":
            return have == wanted
        if op == "!=":
            return not (have & wanted) if isinstance(right, list) else have != wanted
        return _Unknown(f"the operator {op!r} on flags")

    def contains(self, value: tuple[str, Any], right: Any) -> bool | str:
        """Whether ``right`` (a value, prefix, range, set or @named set) contains the value."""
        if isinstance(right, str) and right.startswith("@"):
            elements = self.named_set_elements(right)
            if isinstance(elements, _Unknown):
                return elements
            return self.any_element(value, elements)
        if isinstance(right, Mapping) and "set" in right:
            elements = right["set"]
            return self.any_element(value, elements if isinstance(elements, list) else [elements])
        return _element_contains(value, right)

    def any_element(self, value: tuple[str, Any], elements: Sequence[Any]) -> bool | str:
        doubt: str | None = None
        for element in elements:
            found = _element_contains(value, element)
            if found is True:
                return True
            if isinstance(found, str):
                doubt = found
        return _Unknown(doubt) if doubt else False

    def named_set_elements(self, ref: str) -> Sequence[Any] | _Unknown:
        """The elements of ``@name`` in this table, or why they cannot be had."""
        found = self.ruleset.sets.get((self.family, self.table, ref[1:]))
        if found is None:
            return _Unknown(f"the named set {ref} is not in the ruleset")
        elements = found.get("elem", [])
        if not isinstance(elements, list):
            return _Unknown(
                f"the named set {ref} has elements nft printed as {compact_json(elements)}"
            )
        if found.get("_kind") == "map":
            return [e[0] for e in elements if isinstance(e, list) and e]
        return elements

    def vmap(self, body: Any) -> Jump | _Absent | str | None:
        """A verdict map: the verdict for this packet's key, None if no element matches."""
        if not isinstance(body, Mapping):
            return _Unknown(f"a verdict map written as {compact_json(body)}")
        value = self.value(body.get("key"))
        if isinstance(value, _Absent):
            return ABSENT
        if isinstance(value, _Unknown):
            return _Unknown(f"a verdict map keyed on {value}")
        data = body.get("data")
        if isinstance(data, str) and data.startswith("@"):
            found = self.ruleset.sets.get((self.family, self.table, data[1:]))
            if found is None or found.get("_kind") != "map":
                return _Unknown(f"the verdict map {data} is not in the ruleset")
            pairs = found.get("elem", [])
        elif isinstance(data, Mapping) and "set" in data:
            pairs = data["set"]
        else:
            return _Unknown(f"a verdict map with data {compact_json(data)}")
        if not isinstance(pairs, list):
            return _Unknown(f"a verdict map with elements {compact_json(pairs)}")
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                return _Unknown(f"a verdict map element {compact_json(pair)}")
            key, target = pair
            if value[0] in ("ctstate", "ctstatus", "flags"):
                found_it: bool | str = _flag_names(key) == value[1]
            else:
                found_it = _element_contains(value, key)
            if isinstance(found_it, str):
                return _Unknown(found_it)
            if found_it:
                return _verdict_of(target)
        return None


def _verdict_of(target: Any) -> Jump:
    """A verdict written as JSON ({"accept": null}, {"jump": {"target": "x"}}, ...)."""
    if isinstance(target, Mapping) and len(target) == 1:
        ((key, body),) = target.items()
        if key in ("accept", "drop", "reject", "continue", "return"):
            return Jump(key)
        if (
            key in ("jump", "goto")
            and isinstance(body, Mapping)
            and isinstance(body.get("target"), str)
        ):
            return Jump(key, body["target"])
    return Jump("unknown", reason=f"the verdict {compact_json(target)}")


def _element_contains(value: tuple[str, Any], element: Any) -> bool | str:
    """Whether one right-hand element (value, prefix, range, concat) contains the value."""
    kind, have = value
    if isinstance(element, Mapping) and "elem" in element:
        inner = element["elem"]
        element = inner.get("val") if isinstance(inner, Mapping) else inner
    if kind == "concat":
        if not (isinstance(element, Mapping) and isinstance(element.get("concat"), list)):
            return _Unknown(f"a concatenation compared with {compact_json(element)}")
        parts = element["concat"]
        if len(parts) != len(have):
            return False
        results = [_element_contains(h, p) for h, p in zip(have, parts, strict=True)]
        if all(r is True for r in results):
            return True
        if any(r is False for r in results):
            return False
        return next(r for r in results if isinstance(r, str))
    if isinstance(element, Mapping) and "range" in element:
        bounds = element["range"]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            return _Unknown(f"a range {compact_json(bounds)}")
        if kind == "addr":
            inside = address_in_range(have, str(bounds[0]), str(bounds[1]))
            return _Unknown(f"the range {compact_json(bounds)}") if inside is None else inside
        low, high = _to_number(kind, bounds[0]), _to_number(kind, bounds[1])
        number = _scalar(value)
        if low is None or high is None or number is None:
            return _Unknown(f"the range {compact_json(bounds)}")
        return low <= number <= high
    if isinstance(element, Mapping) and "prefix" in element:
        if kind != "addr":
            return _Unknown(f"a prefix compared with {kind}")
        prefix = element["prefix"]
        try:
            network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)
        except (ValueError, KeyError, TypeError):
            return _Unknown(f"the prefix {compact_json(prefix)}")
        return network.version == have.version and have in network
    if isinstance(element, (Mapping, list)):
        return _Unknown(f"the value {compact_json(element)}")
    if kind == "iface":
        if isinstance(element, int):
            return _Unknown(f"interface index {element} (the name is not known)")
        return iface_matches(str(element), have, "*")
    if kind == "addr":
        try:
            other = ipaddress.ip_address(str(element))
        except ValueError:
            return _Unknown(f"the address {compact_json(element)}")
        return bool(other == have)
    if kind in ("port", "proto", "int"):
        number = _to_number(kind, element)
        if number is None:
            return _Unknown(f"the value {compact_json(element)}")
        return bool(number == have)
    return str(element) == str(have)


def _to_number(kind: str, value: Any) -> int | None:
    if kind == "port":
        return port_number(value)
    if kind == "proto":
        return proto_number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _scalar(value: tuple[str, Any]) -> int | None:
    kind, have = value
    if kind in ("port", "proto", "int"):
        return int(have)
    if kind == "addr":
        return int(have)
    return None


def _flag_names(right: Any) -> frozenset[str] | None:
    """Flag names from "syn", ["established", "related"] or {"|": ["fin", "syn"]}."""
    if isinstance(right, str) and not right.startswith("@"):
        return frozenset({right})
    if isinstance(right, list):
        names: set[str] = set()
        for item in right:
            inner = _flag_names(item)
            if inner is None:
                return None
            names |= inner
        return frozenset(names)
    if isinstance(right, Mapping) and len(right) == 1:
        ((key, body),) = right.items()
        if key == "|":
            return _flag_names(body if isinstance(body, list) else [body])
        if key == "elem" and isinstance(body, Mapping):
            return _flag_names(body.get("val"))
    return None


def _pn(packet: Packet) -> int:
    return 6 if packet.proto == "tcp" else 17


def _and(current: bool | str, new: bool | str) -> bool | str:
    """AND of three-valued matches: False wins, then unknown, then True."""
    if current is False or new is False:
        return False
    if isinstance(current, str):
        return current
    return new
