"""The iptables-save evaluator, on output recorded in throwaway namespaces (incl. real ufw)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linux_fixtures import read, v4, v6

from lanchat.doctor.firewall.linux.iptables.decide import evaluate_iptables
from lanchat.doctor.firewall.linux.iptables.parse import iptables_tables, parse_iptables_save
from lanchat.doctor.firewall.verdict import Packet, Verdict

OUTSIDE = "10.9.9.9"


def ipt(case: str, packet: Packet) -> Verdict:
    """The verdict for one packet against one recorded case's (ip6)iptables-save output."""
    name = "iptables-save.txt" if packet.family == "ip" else "ip6tables-save.txt"
    return evaluate_iptables(read(case, name), packet).verdict


@pytest.mark.parametrize(
    ("case", "packet", "outcome", "action", "source"),
    [
        # the ufw-like ruleset: v4 policy DROP, v6 policy left ACCEPT
        ("ufw-like", v4("tcp", 7000), "allowed", "accept", "iptables filter/INPUT rule 5"),
        ("ufw-like", v4("tcp", 22), "allowed", "accept", "iptables filter/INPUT rule 3"),
        ("ufw-like", v4("udp", 5353, daddr="224.0.0.251"), "allowed", "accept", "rule 4"),
        ("ufw-like", v4("tcp", 8080), "blocked", "drop", "iptables filter/INPUT policy"),
        ("ufw-like", v6("tcp", 8080), "allowed", "accept", "ip6tables filter/INPUT policy"),
        ("ufw-like", v6("tcp", 7001), "allowed", "accept", "ip6tables filter/INPUT rule 5"),
        # plain iptables: LOG then DROP, REJECT, jump + RETURN, goto
        ("ipt-drop-reject", v4("tcp", 7000), "blocked", "drop", "filter/INPUT rule 3"),
        ("ipt-drop-reject", v4("tcp", 7001), "blocked", "reject", "filter/INPUT rule 4"),
        ("ipt-drop-reject", v4("udp", 5353), "blocked", "drop", "filter/INPUT rule 5"),
        ("ipt-drop-reject", v4("tcp", 8050), "allowed", "accept", "filter/INPUT policy"),
        (
            "ipt-drop-reject",
            v4("tcp", 8050, saddr=OUTSIDE),
            "blocked",
            "reject",
            "filter/lan-only rule 2",
        ),
        ("ipt-drop-reject", v6("tcp", 8050), "allowed", "accept", "filter/INPUT policy"),
        ("ipt-drop-reject", v6("tcp", 8050, saddr="fe80::9"), "blocked", "reject", "lan-only"),
        ("ipt-drop-reject", v4("tcp", 9000), "allowed", "accept", "filter/INPUT policy"),
        ("ipt-drop-reject", v4("tcp", 9443), "allowed", "accept", "filter/web rule 1"),
        # addrtype: the destination type is known for a packet to this host or a group
        ("ipt-addrtype", v4("udp", 5353, daddr="224.0.0.251"), "blocked", "drop", "rule 3"),
        ("ipt-addrtype", v4("tcp", 8080), "blocked", "drop", "filter/INPUT policy"),
        # the real ufw 0.36.2 layout, recorded after `ufw enable` and five user rules
        ("ufw-stock", v4("tcp", 7000), "allowed", "accept", "filter/ufw-user-input rule 2"),
        ("ufw-stock", v4("tcp", 7001), "allowed", "accept", "filter/ufw-user-input rule 3"),
        ("ufw-stock", v4("tcp", 7001, saddr=OUTSIDE), "blocked", "drop", "filter/INPUT policy"),
        ("ufw-stock", v4("tcp", 8082), "blocked", "reject", "filter/ufw-user-input rule 4"),
        ("ufw-stock", v4("tcp", 8080), "blocked", "drop", "filter/INPUT policy"),
        (
            "ufw-stock",
            v4("udp", 5353, daddr="224.0.0.251"),
            "allowed",
            "accept",
            "filter/ufw-before-input rule 11",
        ),
        ("ufw-stock", v4("udp", 137), "blocked", "drop", "filter/ufw-skip-to-policy-input"),
        ("ufw-stock", v6("tcp", 7000), "allowed", "accept", "filter/ufw6-user-input rule 2"),
        ("ufw-stock", v6("tcp", 8080), "blocked", "drop", "ip6tables filter/INPUT policy"),
        (
            "ufw-stock",
            v6("udp", 5353, saddr="fe80::2", daddr="ff02::fb"),
            "allowed",
            "accept",
            "filter/ufw6-before-input",
        ),
        (
            "ufw-stock",
            Packet("ip", "tcp", 8080, "lo", "127.0.0.1", "127.0.0.1"),
            "allowed",
            "accept",
            "filter/ufw-before-input rule 1",
        ),
    ],
)
def test_recorded_rulesets(
    case: str, packet: Packet, outcome: str, action: str | None, source: str
) -> None:
    verdict = ipt(case, packet)
    assert (verdict.outcome, verdict.action) == (outcome, action), verdict
    assert source in verdict.source


def test_ufw_like_reports_the_ipv6_gap_with_evidence() -> None:
    blocked = ipt("ufw-like", v4("tcp", 8080))
    allowed = ipt("ufw-like", v6("tcp", 8080))
    assert "policy DROP" in blocked.reason and "policy ACCEPT" in allowed.reason


def test_multiport_rule_text_is_the_evidence() -> None:
    verdict = ipt("ufw-like", v4("tcp", 7000))
    assert verdict.rule_text == (
        "-A INPUT -p tcp -m multiport --dports 7000,7001 -m comment --comment lanchat -j ACCEPT"
    )


def test_addrtype_of_the_source_is_unknown_and_named() -> None:
    verdict = ipt("ipt-addrtype", v4("tcp", 7000))
    assert verdict.outcome == "unknown" and verdict.action is None
    assert "--src-type" in verdict.reason
    assert verdict.source == "iptables filter/INPUT rule 4"
    assert verdict.rule_text == "-A INPUT ! -i lo -m addrtype --src-type LOCAL -j DROP"


def test_stock_ufw_rate_limit_rule_is_unknown() -> None:
    verdict = ipt("ufw-stock", v4("tcp", 2222))  # `ufw limit 2222/tcp`: -m recent
    assert verdict.outcome == "unknown" and "-m recent" in verdict.reason


def test_ufw_chain_walk_shows_the_chains_passed() -> None:
    evaluation = evaluate_iptables(read("ufw-stock", "iptables-save.txt"), v4("tcp", 7000))
    (chain,) = [c for c in evaluation.chains if c.chain == "iptables filter/INPUT"]
    assert chain.trail[:3] == ("INPUT", "ufw-before-logging-input", "ufw-before-input")
    assert "ufw-user-input" in chain.trail
    # The ufw-not-local chain is decided by the packet's destination type (LOCAL).
    assert "ufw-not-local" in chain.trail and not chain.uncertain


def test_goto_skips_the_rest_of_the_calling_chain() -> None:
    # tcp 9000: -g web does not match 9000 inside web; goto returns past INPUT's later DROP.
    evaluation = evaluate_iptables(read("ipt-drop-reject", "iptables-save.txt"), v4("tcp", 9000))
    assert evaluation.verdict.source == "iptables filter/INPUT policy"
    assert evaluation.chains[0].trail == ("INPUT", "web")


def test_label_names_the_store() -> None:
    verdict = evaluate_iptables(
        read("legacy", "iptables-legacy-save.txt"), v4("tcp", 7000), label="iptables-legacy"
    ).verdict
    assert verdict.source == "iptables-legacy filter/INPUT rule 1"


def rules(*lines: str, policy: str = "ACCEPT", chains: tuple[str, ...] = ()) -> str:
    """A small iptables-save document for the filter table."""
    head = [
        "*filter",
        f":INPUT {policy} [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
    ]
    head += [f":{c} - [0:0]" for c in chains]
    return "\n".join([*head, *lines, "COMMIT", ""])


@pytest.mark.parametrize(
    ("line", "packet", "outcome"),
    [
        ("-A INPUT ! -i lo -p tcp --dport 7000 -j DROP", v4("tcp", 7000), "blocked"),
        ("-A INPUT -i eth+ -p tcp -m tcp --dport 7000 -j DROP", v4("tcp", 7000), "blocked"),
        ("-A INPUT -i wlan+ -p tcp -m tcp --dport 7000 -j DROP", v4("tcp", 7000), "allowed"),
        ("-A INPUT -p tcp -m tcp ! --dport 22 -j DROP", v4("tcp", 7000), "blocked"),
        ("-A INPUT -p tcp -m tcp --dport ! 22 -j DROP", v4("tcp", 22), "allowed"),
        ("-A INPUT -p tcp -m tcp --dport 6000:7999 -j DROP", v4("tcp", 7000), "blocked"),
        ("-A INPUT -p udp -m multiport --dports 1:100,7000 -j DROP", v4("udp", 7000), "blocked"),
        ("-A INPUT -p tcp -m multiport --dports 1:100,7000 -j DROP", v4("udp", 7000), "allowed"),
        ("-A INPUT -p all -j DROP", v4("udp", 5353), "blocked"),
        ("-A INPUT -p 6 -j DROP", v4("tcp", 1), "blocked"),
        ("-A INPUT -s 10.213.0.0/255.255.255.0 -j DROP", v4("tcp", 1), "blocked"),
        ("-A INPUT -d 10.213.0.1/32 -j REJECT", v4("tcp", 1), "blocked"),
        ("-A INPUT -m iprange --src-range 10.213.0.1-10.213.0.9 -j DROP", v4("tcp", 1), "blocked"),
        ("-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 -j DROP", v4("tcp", 1), "allowed"),
        ("-A INPUT -p tcp --syn -j DROP", v4("tcp", 7000), "blocked"),
        ("-A INPUT -p tcp --tcp-flags SYN,ACK ACK -j DROP", v4("tcp", 7000), "allowed"),
        ("-A INPUT -m conntrack --ctstate NEW -j DROP", v4("tcp", 1), "blocked"),
        ("-A INPUT -m state --state ESTABLISHED,RELATED -j DROP", v4("tcp", 1), "allowed"),
        (
            "-A INPUT -m pkttype --pkt-type multicast -j DROP",
            v4("udp", 5353, daddr="224.0.0.251"),
            "blocked",
        ),
        ("-A INPUT -f -j DROP", v4("tcp", 1), "allowed"),
        ("-A INPUT -m rt --rt-type 0 -j DROP", v6("tcp", 1), "allowed"),
        (
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m hl --hl-eq 255 -j DROP",
            v6("tcp", 1),
            "allowed",
        ),
        (
            '-A INPUT -p tcp -m comment --comment "drop \\"it\\" now" -j DROP',
            v4("tcp", 1),
            "blocked",
        ),
        ("[12:3456] -A INPUT -p tcp -j DROP", v4("tcp", 1), "blocked"),
        ("-A INPUT -p tcp -j MARK --set-mark 1", v4("tcp", 1), "allowed"),
        ("-A INPUT -p tcp -m limit --limit 3/min -j LOG", v4("tcp", 1), "allowed"),
        ("-A INPUT -p tcp", v4("tcp", 1), "allowed"),
        # undecidable with a verdict that matters
        ("-A INPUT -p tcp -m limit --limit 3/min -j DROP", v4("tcp", 1), "unknown"),
        ("-A INPUT -m set --match-set blocklist src -j DROP", v4("tcp", 1), "unknown"),
        ("-A INPUT -p tcp -m tcp --sport 1024:65535 -j DROP", v4("tcp", 1), "unknown"),
        ("-A INPUT -p tcp -j NFQUEUE --queue-num 1", v4("tcp", 1), "unknown"),
        ("-A INPUT -p tcp -j NOSUCHCHAIN", v4("tcp", 1), "unknown"),
        ("-A INPUT -p tcp -m weirdmodule --thing 1 -j DROP", v4("tcp", 1), "unknown"),
        ('-A INPUT -p tcp -m comment --comment "unbalanced -j DROP', v4("tcp", 1), "unknown"),
    ],
)
def test_matches_and_targets(line: str, packet: Packet, outcome: str) -> None:
    verdict = evaluate_iptables(rules(line), packet).verdict
    assert verdict.outcome == outcome, verdict


def test_user_chain_return_and_end_come_back() -> None:
    text = rules(
        "-A INPUT -j check",
        "-A INPUT -p tcp --dport 7000 -j DROP",
        "-A check -s 10.213.0.0/24 -j RETURN",
        "-A check -j ACCEPT",
        chains=("check",),
    )
    assert evaluate_iptables(text, v4("tcp", 7000)).verdict.outcome == "blocked"
    outside = evaluate_iptables(text, v4("tcp", 7000, saddr=OUTSIDE)).verdict
    assert (outside.outcome, outside.source) == ("allowed", "iptables filter/check rule 2")


def test_mangle_and_raw_chains_are_evaluated_too() -> None:
    text = (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p udp -m udp --dport 5353 -j DROP\nCOMMIT\n" + rules()
    )
    verdict = evaluate_iptables(text, v4("udp", 5353)).verdict
    assert (verdict.outcome, verdict.source) == ("blocked", "iptables raw/PREROUTING rule 1")
    assert evaluate_iptables(text, v4("tcp", 5353)).verdict.outcome == "allowed"


def test_family_mismatch_and_garbage_are_unknown() -> None:
    ipv4_text = read("ufw-like", "iptables-save.txt")
    mismatch = evaluate_iptables(parse_iptables_save(ipv4_text, "ip"), v6("tcp", 1)).verdict
    assert mismatch.outcome == "unknown" and "ip rules" in mismatch.reason
    garbage = evaluate_iptables("hello world\n", v4("tcp", 1)).verdict
    assert garbage.outcome == "unknown" and "not iptables-save output" in garbage.reason


def test_empty_dump_means_no_iptables_filtering() -> None:
    verdict = evaluate_iptables(read("empty", "iptables-save.txt"), v4("tcp", 1)).verdict
    assert (verdict.outcome, verdict.action) == ("allowed", None)


def test_tables_and_warnings_are_kept() -> None:
    parsed = parse_iptables_save(
        "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
        "# Table `filter' is incompatible, use 'nft' tool.\n"
        + rules("-A INPUT -j DROP")
        + "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
        "ip",
    )
    assert set(parsed.tables) == {"filter", "mangle"}
    assert iptables_tables(parsed) == {"mangle"}
    assert any("legacy" in w for w in parsed.warnings)
    assert parsed.rule_count == 1


def test_to_dict_is_json() -> None:
    evaluation = evaluate_iptables(read("ufw-stock", "iptables-save.txt"), v4("tcp", 7000))
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["verdict"]["outcome"] == "allowed"
    assert data["chains"][0]["chain"] == "iptables filter/INPUT"


WORDS = st.sampled_from(
    [
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "udp",
        "-m",
        "multiport",
        "--dports",
        "7000,7001:7005",
        "-j",
        "ACCEPT",
        "DROP",
        "REJECT",
        "RETURN",
        "-g",
        "x",
        "!",
        "-i",
        "eth+",
        "-s",
        "10.0.0.0/8",
        "--dport",
        "--ctstate",
        "NEW",
        "conntrack",
        '"',
        "*filter",
        "COMMIT",
        ":INPUT",
        ":x",
        "-",
        "[0:0]",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "\n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(WORDS, max_size=40))
def test_evaluator_never_raises_on_arbitrary_text(words: list[str]) -> None:
    text = " ".join(words)
    for candidate in (text, rules(text.replace("\n", " "), chains=("x",))):
        verdict = evaluate_iptables(candidate, v4("tcp", 7000)).verdict
        assert verdict.outcome in ("allowed", "blocked", "unknown")
