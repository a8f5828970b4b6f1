"""The nft JSON evaluator, on `nft -j list ruleset` output recorded in throwaway namespaces."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linux_fixtures import read, v4, v6

from lanchat.doctor.firewall.linux.nft.decide import evaluate_nft
from lanchat.doctor.firewall.linux.nft.parse import parse_nft_ruleset
from lanchat.doctor.firewall.linux.nft.render import render_rule
from lanchat.doctor.firewall.verdict import Packet, Verdict

MDNS4 = {"daddr": "224.0.0.251"}
OUTSIDE = "10.9.9.9"


def nft(case: str, packet: Packet) -> Verdict:
    """The verdict for one packet against one recorded case's nft JSON."""
    return evaluate_nft(read(case, "nft.json"), packet).verdict


@pytest.mark.parametrize(
    ("case", "packet", "outcome", "action", "source"),
    [
        # nothing loaded: no chain filters anything
        ("empty", v4("tcp", 7000), "allowed", None, "nft"),
        # one port dropped, everything else falls to policy accept
        ("nft-drop-port", v4("tcp", 7000), "blocked", "drop", "chain input rule handle 3"),
        ("nft-drop-port", v6("tcp", 7000), "blocked", "drop", "chain input rule handle 3"),
        ("nft-drop-port", v4("tcp", 7001), "allowed", "accept", "chain input policy"),
        (
            "nft-drop-port",
            Packet("ip", "tcp", 7000, "lo", "127.0.0.1", "127.0.0.1"),
            "allowed",
            "accept",
            "rule handle 2",
        ),
        # reject, tcp reset and icmpx
        ("nft-reject-port", v4("tcp", 7000), "blocked", "reject", "rule handle 2"),
        ("nft-reject-port", v6("udp", 5353, daddr="ff02::fb"), "blocked", "reject", "handle 3"),
        # accept from the subnet before the default drop
        ("nft-subnet", v4("tcp", 7000), "allowed", "accept", "rule handle 5"),
        ("nft-subnet", v4("tcp", 7000, saddr=OUTSIDE), "blocked", "drop", "chain input policy"),
        ("nft-subnet", v6("tcp", 7000), "allowed", "accept", "rule handle 6"),
        ("nft-subnet", v6("tcp", 7000, saddr="fe80::5"), "blocked", "drop", "policy"),
        ("nft-subnet", v4("udp", 5353, **MDNS4), "blocked", "drop", "policy"),
        # two base chains: the first accepts, the second (ip only) drops
        ("nft-two-chains", v4("tcp", 7000), "blocked", "drop", "table ip second"),
        ("nft-two-chains", v6("tcp", 7000), "allowed", "accept", "table inet first"),
        # jump comes back, return goes back, goto does not come back
        ("nft-jump-goto", v4("tcp", 7000), "allowed", "accept", "rule handle 13"),
        ("nft-jump-goto", v4("tcp", 7000, saddr=OUTSIDE), "blocked", "drop", "chain lan_only"),
        ("nft-jump-goto", v6("tcp", 7000), "allowed", "accept", "rule handle 13"),
        ("nft-jump-goto", v4("udp", 5353, **MDNS4), "allowed", "accept", "chain mdns"),
        ("nft-jump-goto", v6("udp", 5353, daddr="ff02::fb"), "blocked", "drop", "input policy"),
        ("nft-jump-goto", v4("udp", 9999), "allowed", "accept", "rule handle 15"),
        ("nft-jump-goto", v4("tcp", 8080), "allowed", "accept", "rule handle 17"),
        # named sets (plain and interval) and verdict maps (named and anonymous)
        (
            "nft-named-set",
            v4("tcp", 7001, saddr="192.168.44.5"),
            "allowed",
            "accept",
            "rule handle 8",
        ),
        ("nft-named-set", v4("tcp", 7000, saddr=OUTSIDE), "blocked", "drop", "policy"),
        ("nft-named-set", v6("tcp", 7000, saddr="fe80::2"), "allowed", "accept", "handle 9"),
        ("nft-named-set", v4("tcp", 22, saddr=OUTSIDE), "allowed", "accept", "handle 10"),
        ("nft-named-set", v4("tcp", 8080), "blocked", "drop", "handle 10"),
        ("nft-named-set", v6("udp", 5353, daddr="ff02::fb"), "allowed", "accept", "handle 11"),
        # mDNS dropped, TCP untouched
        ("nft-udp-mdns-drop", v4("udp", 5353, **MDNS4), "blocked", "drop", "rule handle 2"),
        ("nft-udp-mdns-drop", v4("tcp", 7000), "allowed", "accept", "policy"),
    ],
)
def test_recorded_rulesets(
    case: str, packet: Packet, outcome: str, action: str | None, source: str
) -> None:
    verdict = nft(case, packet)
    assert (verdict.outcome, verdict.action) == (outcome, action), verdict
    assert source in verdict.source


def test_accept_in_one_chain_does_not_save_the_packet_from_the_next() -> None:
    evaluation = evaluate_nft(read("nft-two-chains", "nft.json"), v4("tcp", 7000))
    first, second = evaluation.chains
    assert "table inet first" in first.chain and first.verdict.outcome == "allowed"
    assert "table ip second" in second.chain and second.verdict.outcome == "blocked"
    assert evaluation.verdict.rule_text == "tcp dport 7000 drop"


def test_goto_does_not_come_back_but_jump_does() -> None:
    # udp 5353 over IPv6: goto mdns does not match, and the later "meta l4proto udp accept"
    # is never reached; any other udp port reaches it.
    goto = evaluate_nft(read("nft-jump-goto", "nft.json"), v6("udp", 5353, daddr="ff02::fb"))
    assert goto.chains[0].trail == ("input", "common", "mdns")
    assert (goto.verdict.outcome, goto.verdict.source) == (
        "blocked",
        "nft table inet filter chain input policy",
    )
    other = nft("nft-jump-goto", v6("udp", 9999))
    assert other.outcome == "allowed" and other.rule_text == "meta l4proto udp accept"


def test_firewalld_like_ruleset_closed_and_open() -> None:
    closed = evaluate_nft(read("firewalld-closed", "nft.json"), v4("tcp", 7000))
    assert closed.verdict.outcome == "blocked" and closed.verdict.action == "reject"
    assert closed.verdict.rule_text == "reject with icmpx admin-prohibited"
    assert "filter_IN_home_allow" in closed.chains[0].trail
    assert any("raw_PREROUTING" in note for note in closed.notes)  # not evaluated, but said
    opened = nft("firewalld-open", v4("tcp", 7000))
    assert opened.outcome == "allowed"
    assert opened.rule_text == "tcp dport 7000 ct state new,untracked accept"
    assert "filter_IN_home_allow" in opened.source
    # another interface lands in the default zone "public", where 7000 is closed
    wlan = Packet("ip", "tcp", 7000, "wlan0", "10.213.0.2", "10.213.0.1")
    elsewhere = evaluate_nft(read("firewalld-open", "nft.json"), wlan)
    assert elsewhere.verdict.outcome == "blocked"
    assert "filter_IN_public" in elsewhere.chains[0].trail
    # mDNS is allowed in zone home for both families
    assert nft("firewalld-closed", v4("udp", 5353, **MDNS4)).outcome == "allowed"
    assert nft("firewalld-closed", v6("udp", 5353, daddr="ff02::fb")).outcome == "allowed"


def test_xt_opaque_match_with_a_verdict_is_unknown() -> None:
    # iptables-nft's multiport rule is only {"xt": {"name": "multiport"}} in nft -j.
    verdict = nft("ufw-like", v4("tcp", 7000))
    assert verdict.outcome == "unknown" and verdict.action is None
    assert "xt match 'multiport'" in verdict.reason


def test_uncertain_rule_that_cannot_change_the_outcome_still_gives_an_answer() -> None:
    # The xt conntrack (established) rule accepts or passes on; either way tcp 22 is accepted.
    verdict = nft("ufw-like", v4("tcp", 22))
    assert verdict.outcome == "allowed"
    assert verdict.rule_text == "tcp dport 22 counter accept"
    assert "whichever way" in verdict.reason and "conntrack" in verdict.reason


def test_addrtype_from_iptables_nft_is_unknown_in_nft_json() -> None:
    verdict = nft("ipt-addrtype", v4("tcp", 7000))
    assert verdict.outcome == "unknown"
    assert "addrtype" in verdict.reason


def test_skip_tables_leaves_iptables_nft_tables_to_iptables_save() -> None:
    evaluation = evaluate_nft(
        read("mixed", "nft.json"), v4("tcp", 7001), skip_tables={("ip", "filter")}
    )
    assert [c.chain for c in evaluation.chains] == ["nft table inet guard chain input"]
    assert evaluation.verdict.outcome == "allowed"
    with_it = evaluate_nft(read("mixed", "nft.json"), v4("tcp", 7001))
    assert with_it.verdict.outcome == "unknown"  # the multiport DROP is opaque here


def test_evidence_names_table_chain_handle_and_rule_text() -> None:
    verdict = nft("nft-subnet", v4("tcp", 7000))
    assert verdict.source == "nft table inet filter chain input rule handle 5"
    assert verdict.rule_text == "ip saddr 10.213.0.0/24 tcp dport 7000 accept"
    assert "matches and accepts" in verdict.reason
    json.dumps(evaluate_nft(read("nft-subnet", "nft.json"), v4("tcp", 7000)).to_dict())


# ---- constructs that must give "unknown", in small hand-made rulesets ------------------------


def ruleset(*rules: list[Any], extra: list[Any] | None = None, policy: str = "accept") -> str:
    """An nft -j document with one inet input chain holding ``rules``."""
    items: list[Any] = [
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "input",
                "handle": 1,
                "type": "filter",
                "hook": "input",
                "prio": 0,
                "policy": policy,
            }
        },
    ]
    items += extra or []
    for handle, expr in enumerate(rules, start=2):
        items.append(
            {
                "rule": {
                    "family": "inet",
                    "table": "t",
                    "chain": "input",
                    "handle": handle,
                    "expr": expr,
                }
            }
        )
    return json.dumps({"nftables": items})


def dport(port: int) -> dict[str, Any]:
    """`tcp dport PORT` as nft -j writes it."""
    return {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
            "right": port,
        }
    }


DROP = {"drop": None}
ACCEPT = {"accept": None}


@pytest.mark.parametrize(
    ("expr", "named"),
    [
        ({"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}, "meta mark"),
        (
            {
                "match": {
                    "op": "==",
                    "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                    "right": "local",
                }
            },
            "fib",
        ),
        ({"limit": {"rate": 5, "per": "second"}}, "limit"),
        (
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "tcp", "field": "sport"}},
                    "right": 1234,
                }
            },
            "sport",
        ),
        (
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                    "right": "@nosuchset",
                }
            },
            "@nosuchset",
        ),
        ({"match": {"op": "==", "left": {"ct": {"key": "mark"}}, "right": 7}}, "ct mark"),
        ({"xt": {"type": "match", "name": "recent"}}, "recent"),
    ],
)
def test_constructs_the_evaluator_cannot_interpret_make_it_unknown(
    expr: dict[str, Any], named: str
) -> None:
    # The construct guards a drop of the port; policy accept otherwise: the answer hinges on it.
    verdict = evaluate_nft(ruleset([dport(7000), expr, DROP]), v4("tcp", 7000)).verdict
    assert verdict.outcome == "unknown", verdict
    assert named in verdict.reason
    assert verdict.rule_text is not None


@pytest.mark.parametrize(
    ("verdict_stmt", "named"),
    [
        ({"queue": {"num": 1}}, "queue"),
        ({"jump": {"target": "missing"}}, "missing"),
        ({"vmap": {"key": {"meta": {"key": "mark"}}, "data": {"set": [[1, ACCEPT]]}}}, "meta mark"),
        (
            {"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@nomap"}},
            "@nomap",
        ),
        ({"dnat": {"addr": "10.0.0.5", "port": 80}}, "dnat"),
    ],
)
def test_verdicts_the_evaluator_cannot_follow_make_it_unknown(
    verdict_stmt: dict[str, Any], named: str
) -> None:
    verdict = evaluate_nft(ruleset([dport(7000), verdict_stmt]), v4("tcp", 7000)).verdict
    assert verdict.outcome == "unknown", verdict
    assert named in verdict.reason


def test_unknown_match_that_fails_elsewhere_in_the_rule_does_not_matter() -> None:
    # `icmp type echo-request limit rate ... accept`: a TCP packet never matches icmp, so the
    # limit is irrelevant.
    icmp = {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "icmp", "field": "type"}},
            "right": "echo-request",
        }
    }
    text = ruleset([icmp, {"limit": {"rate": 5, "per": "second"}}, ACCEPT], policy="drop")
    verdict = evaluate_nft(text, v4("tcp", 7000)).verdict
    assert (verdict.outcome, verdict.action) == ("blocked", "drop")
    assert "whichever way" not in verdict.reason


def test_counter_only_rules_are_skipped_and_comments_ignored() -> None:
    counter = [dport(7000), {"counter": {"packets": 0, "bytes": 0}}]
    log = [
        dport(7000),
        {"log": {"prefix": "x"}},
        {"xt": {"type": "match", "name": "comment"}},
        DROP,
    ]
    verdict = evaluate_nft(ruleset(counter, log), v4("tcp", 7000)).verdict
    assert (verdict.outcome, verdict.action) == ("blocked", "drop")
    assert verdict.rule_text == 'tcp dport 7000 log prefix "x" xt match comment drop'


def test_ct_status_dnat_is_known_only_without_nat_rules() -> None:
    status = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}
    plain = ruleset([status, ACCEPT], policy="drop")
    assert evaluate_nft(plain, v4("tcp", 7000)).verdict.outcome == "blocked"
    nat_chain = [
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "pre",
                "handle": 9,
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
                "policy": "accept",
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "t",
                "chain": "pre",
                "handle": 10,
                "expr": [dport(80), {"dnat": {"addr": "10.0.0.5"}}],
            }
        },
    ]
    natted = ruleset([status, ACCEPT], extra=nat_chain, policy="drop")
    verdict = evaluate_nft(natted, v4("tcp", 7000)).verdict
    assert verdict.outcome == "unknown" and "ct status" in verdict.reason


def test_interface_wildcards_and_negation() -> None:
    iface = {
        "match": {
            "op": "==",
            "left": {"meta": {"key": "iifname"}},
            "right": {"set": ["wl*", "eth*"]},
        }
    }
    not_lo = {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}
    text = ruleset([iface, not_lo, dport(7000), DROP])
    assert evaluate_nft(text, v4("tcp", 7000)).verdict.outcome == "blocked"
    lo = Packet("ip", "tcp", 7000, "lo", "127.0.0.1", "127.0.0.1")
    assert evaluate_nft(text, lo).verdict.outcome == "allowed"
    literal = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth\\*"}}
    assert evaluate_nft(ruleset([literal, DROP]), v4("tcp", 1)).verdict.outcome == "allowed"


def test_ranges_inequalities_and_concatenations() -> None:
    ranged = {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "th", "field": "dport"}},
            "right": {"range": [6000, 7999]},
        }
    }
    above = {
        "match": {
            "op": ">=",
            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
            "right": 1024,
        }
    }
    concat = {
        "match": {
            "op": "==",
            "left": {
                "concat": [
                    {"payload": {"protocol": "ip", "field": "saddr"}},
                    {"payload": {"protocol": "tcp", "field": "dport"}},
                ]
            },
            "right": {"set": [{"concat": ["10.213.0.2", 7000]}]},
        }
    }
    assert evaluate_nft(ruleset([ranged, DROP]), v4("udp", 7000)).verdict.outcome == "blocked"
    assert evaluate_nft(ruleset([above, DROP]), v4("tcp", 80)).verdict.outcome == "allowed"
    assert evaluate_nft(ruleset([concat, DROP]), v4("tcp", 7000)).verdict.outcome == "blocked"
    other = v4("tcp", 7000, saddr="10.213.0.3")
    assert evaluate_nft(ruleset([concat, DROP]), other).verdict.outcome == "allowed"


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"nftables": 3}', '{"nftables": [{"rule": 5}]}', "{" * 5000],
)
def test_malformed_input_gives_unknown_or_a_plain_answer_never_an_exception(text: str) -> None:
    verdict = evaluate_nft(text, v4("tcp", 7000)).verdict
    assert verdict.outcome in ("unknown", "allowed")
    if verdict.outcome == "unknown":
        assert "cannot read" in verdict.reason


def test_parse_keeps_sets_and_chains() -> None:
    parsed = parse_nft_ruleset(read("nft-named-set", "nft.json"))
    assert parsed.error is None
    assert ("inet", "filter", "lanchat_ports") in parsed.sets
    assert [c.name for c in parsed.chains if c.hook == "input"] == ["input"]
    rule = next(r for r in parsed.rules if r.handle == 8)
    assert render_rule(rule) == "ip saddr @lan4 tcp dport @lanchat_ports accept"


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.sampled_from(
        [
            "tcp",
            "udp",
            "input",
            "inet",
            "ip",
            "ip6",
            "accept",
            "drop",
            "@s",
            "eth*",
            "==",
            "!=",
            "in",
            "dport",
            "saddr",
            "10.0.0.0",
            "meta",
            "payload",
            "iifname",
            "set",
            "range",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "match",
                    "left",
                    "right",
                    "op",
                    "payload",
                    "protocol",
                    "field",
                    "meta",
                    "key",
                    "set",
                    "prefix",
                    "addr",
                    "len",
                    "range",
                    "jump",
                    "goto",
                    "target",
                    "vmap",
                    "data",
                    "accept",
                    "drop",
                    "reject",
                    "ct",
                    "concat",
                    "elem",
                    "val",
                    "xt",
                    "name",
                    "counter",
                ]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(
    exprs=st.lists(st.lists(JSONISH, max_size=4), max_size=5),
    policy=st.sampled_from(["accept", "drop", "bogus"]),
)
def test_evaluator_never_raises_on_arbitrary_rule_expressions(
    exprs: list[list[Any]], policy: str
) -> None:
    evaluation = evaluate_nft(ruleset(*exprs, policy=policy), v4("tcp", 7000))
    assert isinstance(evaluation.verdict, Verdict)
    json.dumps(evaluation.to_dict())


@settings(max_examples=100, deadline=None)
@given(doc=JSONISH)
def test_evaluator_never_raises_on_arbitrary_documents(doc: Any) -> None:
    verdict = evaluate_nft(json.dumps({"nftables": doc}), v6("udp", 5353)).verdict
    assert verdict.outcome in ("allowed", "blocked", "unknown")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"family": "ipv4"}, "family must be"),
        ({"proto": "sctp"}, "proto must be"),
        ({"dport": 0}, "dport must be 1-65535"),
        ({"dport": True}, "dport must be an integer"),
        ({"iif": ""}, "iif"),
        ({"saddr": "fd00::1"}, "not an IPv4 address"),
        ({"daddr": "host.local"}, "not an IP address"),
    ],
)
def test_packet_rejects_bad_fields_with_a_clear_message(
    fields: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "family": "ip",
        "proto": "tcp",
        "dport": 7000,
        "iif": "eth0",
        "saddr": "10.213.0.2",
        "daddr": "10.213.0.1",
    }
    with pytest.raises(ValueError, match=message):
        Packet(**{**base, **fields})


def test_packet_and_verdict_describe_themselves() -> None:
    packet = v6("udp", 5353, saddr="fe80::2", daddr="ff02::fb")
    assert packet.describe() == "new udp to [ff02::fb]:5353 from fe80::2 on eth0 (IPv6)"
    assert packet.dst_type == "MULTICAST" and v4("tcp", 1).dst_type == "LOCAL"
    assert packet.to_dict()["dport"] == 5353
    with pytest.raises(ValueError, match="outcome"):
        Verdict("maybe", None, "x", "y")  # type: ignore[arg-type]
