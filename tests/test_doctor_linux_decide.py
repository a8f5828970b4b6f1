"""Combining nft, iptables-nft and iptables-legacy output; and a live cross-check in namespaces."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linux_fixtures import CASES, command, outputs, v4, v6

from lanchat.doctor.firewall.linux.decide import (
    LinuxFirewallOutputs,
    LinuxFirewallReport,
    assess_linux_firewall,
)
from lanchat.doctor.firewall.verdict import Packet
from lanchat.doctor.probe.interface import CommandOutput

MDNS4 = v4("udp", 5353, daddr="224.0.0.251")
MDNS6 = v6("udp", 5353, saddr="fe80::2", daddr="ff02::fb")


def assess(case: str, *packets: Packet) -> LinuxFirewallReport:
    """The combined report for a recorded case."""
    return assess_linux_firewall(outputs(case), packets)


def outcomes(report: LinuxFirewallReport) -> list[str]:
    """Outcome (and action) per packet, e.g. 'blocked/drop'."""
    return [f"{f.verdict.outcome}/{f.verdict.action}" for f in report.families]


@pytest.mark.parametrize(
    ("case", "status", "frontend", "expected"),
    [
        # expected: tcp 7000 v4, tcp 7000 v6, mDNS v4, mDNS v6
        ("empty", "no-firewall", "none", ["allowed/None"] * 4),
        (
            "ufw-like",
            "read",
            "iptables",
            ["allowed/accept", "allowed/accept", "allowed/accept", "allowed/accept"],
        ),
        (
            "ufw-stock",
            "read",
            "ufw",
            ["allowed/accept", "allowed/accept", "allowed/accept", "allowed/accept"],
        ),
        (
            "ipt-drop-reject",
            "read",
            "iptables",
            ["blocked/drop", "blocked/drop", "blocked/drop", "blocked/drop"],
        ),
        (
            "ipt-addrtype",
            "read",
            "iptables",
            ["unknown/None", "allowed/None", "blocked/drop", "allowed/None"],
        ),
        (
            "nft-drop-port",
            "read",
            "nftables",
            ["blocked/drop", "blocked/drop", "allowed/accept", "allowed/accept"],
        ),
        (
            "nft-reject-port",
            "read",
            "nftables",
            ["blocked/reject", "blocked/reject", "blocked/reject", "blocked/reject"],
        ),
        (
            "nft-two-chains",
            "read",
            "nftables",
            ["blocked/drop", "allowed/accept", "allowed/accept", "allowed/accept"],
        ),
        (
            "nft-udp-mdns-drop",
            "read",
            "nftables",
            ["allowed/accept", "allowed/accept", "blocked/drop", "blocked/drop"],
        ),
        (
            "firewalld-closed",
            "read",
            "firewalld",
            ["blocked/reject", "blocked/reject", "allowed/accept", "allowed/accept"],
        ),
        (
            "firewalld-open",
            "read",
            "firewalld",
            ["allowed/accept", "allowed/accept", "allowed/accept", "allowed/accept"],
        ),
        (
            "mixed",
            "read",
            "nftables",
            ["allowed/accept", "allowed/accept", "allowed/accept", "allowed/accept"],
        ),
        (
            "legacy",
            "read",
            "iptables-legacy",
            ["blocked/drop", "allowed/None", "unknown/None", "allowed/None"],
        ),
        ("nonroot", "cannot-read", "unknown", ["unknown/None"] * 4),
    ],
)
def test_recorded_cases(case: str, status: str, frontend: str, expected: list[str]) -> None:
    report = assess(case, v4("tcp", 7000), v6("tcp", 7000), MDNS4, MDNS6)
    assert (report.status, report.frontend) == (status, frontend), report.reason
    assert outcomes(report) == expected
    json.dumps(report.to_dict())


def test_cannot_read_is_not_no_firewall() -> None:
    denied = assess("nonroot", v4("tcp", 7000))
    assert denied.status == "cannot-read"
    assert "Operation not permitted (you must be root)" in denied.reason
    assert "root" in denied.families[0].verdict.reason
    empty = assess("empty", v4("tcp", 7000))
    assert empty.status == "no-firewall" and empty.frontend == "none"


@pytest.mark.parametrize(
    "message",
    [
        "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: "
        "Permission denied (you must be root)",
        "Failed to list table names in /proc/net/ip_tables_names: Permission denied",
        "netlink: Error: cache initialization failed: Operation not permitted",
    ],
)
def test_each_recorded_permission_message_means_cannot_read(message: str) -> None:
    failed = CommandOutput("", message + "\n", 1)
    report = assess_linux_firewall(
        LinuxFirewallOutputs(nft=CommandOutput('{"nftables": []}'), iptables=failed),
        [v4("tcp", 7000)],
    )
    assert report.status == "cannot-read"


def test_ipv4_blocked_ipv6_allowed_gap_is_reported_per_family() -> None:
    report = assess("ufw-like", v4("tcp", 8080), v6("tcp", 8080))
    ipv4, ipv6 = report.families
    assert (ipv4.verdict.outcome, ipv4.verdict.source) == (
        "blocked",
        "iptables filter/INPUT policy",
    )
    assert (ipv6.verdict.outcome, ipv6.verdict.source) == (
        "allowed",
        "ip6tables filter/INPUT policy",
    )


def test_iptables_nft_tables_are_read_from_iptables_save_not_nft_json() -> None:
    # In nft -j the multiport DROP is an opaque xt match; iptables-save shows it in full.
    report = assess("mixed", v4("tcp", 7001))
    verdict = report.families[0].verdict
    assert (verdict.outcome, verdict.source) == ("blocked", "iptables filter/INPUT rule 2")
    stores = [s.store for s in report.families[0].sources]
    assert stores == ["nft", "iptables"]
    nft_chains = [c.chain for c in report.families[0].sources[0].evaluation.chains]
    assert nft_chains == ["nft table inet guard chain input"]


def test_native_nft_table_blocks_what_iptables_accepts() -> None:
    report = assess("mixed", v4("tcp", 7000, saddr="10.9.9.9"))
    verdict = report.families[0].verdict
    assert (verdict.outcome, verdict.source) == (
        "blocked",
        "nft table inet guard chain input rule handle 2",
    )


def test_firewalld_zone_of_the_interface() -> None:
    home = assess("firewalld-closed", v4("tcp", 7000))
    assert (home.frontend, home.zone) == ("firewalld", "home")
    wlan = Packet("ip", "tcp", 7000, "wlan0", "10.213.0.2", "10.213.0.1")
    assert assess("firewalld-closed", wlan).zone == "public"
    assert any("raw_PREROUTING" in note for note in home.notes)


def test_legacy_rules_are_unknown_unless_they_block() -> None:
    report = assess("legacy", v4("tcp", 7000), v4("tcp", 7001))
    blocked, other = report.families
    assert blocked.verdict.source == "iptables-legacy filter/INPUT rule 1"
    assert other.verdict.outcome == "unknown"
    assert "iptables-legacy rules are loaded" in other.verdict.reason
    assert "iptables-legacy" in report.frontends


def test_legacy_tables_announced_but_not_read_make_it_unknown() -> None:
    # iptables-nft-save warns on stderr that legacy tables exist; without their dump: unknown.
    collected = replace(outputs("legacy"), iptables_legacy=None, ip6tables_legacy=None)
    assert "iptables-legacy tables present" in (collected.iptables or CommandOutput()).stderr
    verdict = assess_linux_firewall(collected, [v4("tcp", 7001)]).families[0].verdict
    assert verdict.outcome == "unknown" and "iptables-legacy-save" in verdict.reason


def test_without_nft_the_iptables_dump_is_used_and_the_gap_noted() -> None:
    collected = replace(outputs("ufw-stock"), nft=None)
    report = assess_linux_firewall(collected, [v4("tcp", 7000)])
    assert report.families[0].verdict.outcome == "allowed"
    assert any("nft is not installed" in note for note in report.notes)


def test_no_tools_and_failing_tools_are_errors_with_reasons() -> None:
    nothing = assess_linux_firewall(LinuxFirewallOutputs(), [v4("tcp", 7000)])
    assert nothing.status == "error" and "neither nft nor iptables-save" in nothing.reason
    broken = LinuxFirewallOutputs(nft=CommandOutput("", "nft: segmentation fault\n", 139))
    report = assess_linux_firewall(broken, [v4("tcp", 7000)])
    assert report.status == "error" and "exit 139" in report.reason
    garbage = LinuxFirewallOutputs(nft=CommandOutput("<html>"))
    assert assess_linux_firewall(garbage, [v4("tcp", 7000)]).status == "error"


def test_evidence_chain_and_rule_text_survive_to_dict() -> None:
    data = assess("ufw-stock", v4("tcp", 8082)).to_dict()
    family = data["families"][0]
    assert family["verdict"]["rule_text"] == (
        "-A ufw-user-input -p tcp -m tcp --dport 8082 -j REJECT --reject-with tcp-reset"
    )
    assert family["sources"][0]["store"] == "nft"
    assert family["sources"][1]["chains"][0]["trail"][0] == "INPUT"


OUTPUT_TEXT = st.sampled_from(
    [
        "",
        '{"nftables": []}',
        (CASES / "ufw-stock" / "nft.json").read_text(),
        (CASES / "ufw-stock" / "iptables-save.txt").read_text(),
        (CASES / "firewalld-open" / "nft.json").read_text(),
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -j nowhere\nCOMMIT\n",
        "# Warning: iptables-legacy tables present\n",
        "garbage {",
    ]
) | st.text(max_size=60)
COMMAND = st.none() | st.builds(
    CommandOutput,
    OUTPUT_TEXT,
    st.sampled_from(["", "Permission denied", "oops"]),
    st.sampled_from([0, 0, 1]),
)


@settings(max_examples=120, deadline=None)
@given(nft=COMMAND, ipt=COMMAND, ip6t=COMMAND, legacy=COMMAND)
def test_assess_never_raises(
    nft: CommandOutput | None,
    ipt: CommandOutput | None,
    ip6t: CommandOutput | None,
    legacy: CommandOutput | None,
) -> None:
    collected = LinuxFirewallOutputs(nft, ipt, ip6t, legacy, None)
    report = assess_linux_firewall(collected, [v4("tcp", 7000), v6("tcp", 7000)])
    assert report.status in ("read", "no-firewall", "cannot-read", "error")
    assert len(report.families) == 2
    json.dumps(report.to_dict())


# ---- live cross-check: real packets between two throwaway namespaces ------------------------

LAB_SERVER = """
import select, socket, sys, time
tcp = [int(p) for p in sys.argv[1].split(",")]
udp = [int(p) for p in sys.argv[2].split(",")]
socks = []
for kind, port in [(socket.SOCK_STREAM, p) for p in tcp] + [(socket.SOCK_DGRAM, p) for p in udp]:
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    socks.append(s)
print("ready", flush=True)
end = time.monotonic() + 300  # never outlive the test session by much
while time.monotonic() < end:
    ready, _, _ = select.select(socks, [], [], 0.5)
    for s in ready:
        if s.type == socket.SOCK_STREAM:
            conn, _ = s.accept()
            conn.close()
        else:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
"""

LAB_CLIENT = """
import errno, json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def attempt(proto, src, dst, port):
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    # Past the first SYN retransmission (1 s): an ICMP error that reaches the socket while
    # connect() still holds it is only noted, and ends the connect at the retransmission.
    s.settimeout(2.0)
    try:
        s.bind((src, 0))
        s.connect((dst, port))
        if proto == "udp":
            s.send(b"ping")
            s.recv(64)
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        named = {errno.EHOSTUNREACH: "unreachable", errno.EACCES: "prohibited"}
        return named.get(exc.errno or 0, f"error {exc}")
    finally:
        s.close()

probes = json.loads(sys.argv[1])
# Side by side: a case takes one timeout at most.
with ThreadPoolExecutor(max(1, len(probes))) as pool:
    print(json.dumps(list(pool.map(lambda p: attempt(*p), probes))))
"""

SERVER = {"main": "10.213.0.1", "other": "10.99.0.1", "v6": "fd00:213::1"}
CLIENT = {"main": "10.213.0.2", "other": "10.99.0.2", "v6": "fd00:213::2"}
TCP_PORTS = "22,7000,7001,8050,8080,8082,9000,9443"
UDP_PORTS = "5353,9999"

# case -> probes (protocol, port, which client address); each is a real packet from the
# client namespace, compared with the evaluator's verdict for the live dump of the rules.
LAB_CASES: dict[str, list[tuple[str, int, str]]] = {
    "nft-drop-port": [("tcp", 7000, "main"), ("tcp", 7001, "main"), ("tcp", 7000, "v6")],
    "nft-reject-port": [("tcp", 7000, "main"), ("udp", 5353, "main"), ("tcp", 8080, "v6")],
    "nft-subnet": [("tcp", 7000, "main"), ("tcp", 7000, "other"), ("tcp", 7000, "v6")],
    "nft-two-chains": [("tcp", 7000, "main"), ("tcp", 7000, "v6")],
    "nft-jump-goto": [
        ("tcp", 7000, "main"),
        ("tcp", 7000, "other"),
        ("udp", 9999, "main"),
        ("tcp", 8080, "main"),
    ],
    "nft-named-set": [
        ("tcp", 7001, "main"),
        ("tcp", 7000, "other"),
        ("tcp", 22, "other"),
        ("tcp", 8080, "main"),
    ],
    "nft-udp-mdns-drop": [("udp", 5353, "main"), ("tcp", 7000, "main")],
    "ufw-like": [
        ("tcp", 7000, "main"),
        ("tcp", 8080, "main"),
        ("tcp", 8080, "v6"),
        ("udp", 5353, "main"),
    ],
    "ufw-stock": [
        ("tcp", 7000, "main"),
        ("tcp", 7001, "other"),
        ("tcp", 8082, "main"),
        ("tcp", 8080, "main"),
        ("tcp", 7000, "v6"),
    ],
    "ipt-drop-reject": [
        ("tcp", 7000, "main"),
        ("tcp", 7001, "main"),
        ("tcp", 8050, "main"),
        ("tcp", 8050, "other"),
        ("tcp", 9000, "main"),
        ("tcp", 9443, "main"),
    ],
    "ipt-addrtype": [("tcp", 8080, "main")],
    "mixed": [("tcp", 7000, "main"), ("tcp", 7000, "other"), ("tcp", 7001, "main")],
    "firewalld-closed": [("tcp", 7000, "main"), ("tcp", 7000, "v6")],
    "firewalld-open": [("tcp", 7000, "main"), ("tcp", 7000, "v6")],
}
EXPECTED_REAL = {"accept": {"ok"}, "drop": {"timeout"}, "reject": {"refused", "unreachable"}}


def expected_real(packet: Packet, action: str, rule_text: str | None) -> set[str]:
    """What the client sees for a verdict.

    An ICMP "admin prohibited" reject (firewalld's `reject with icmpx admin-prohibited`) is
    EHOSTUNREACH over IPv4 and EACCES over IPv6 (Linux 6.x, seen here and in CI). The lab turns
    the server's ICMP rate limit off: with the default (one error per second per peer) the
    rejects of back-to-back probes are held back and a 1 s connect() times out instead.
    """
    if action == "reject" and "prohibited" in (rule_text or ""):
        return {"prohibited"} if packet.family == "ip6" else {"unreachable"}
    return set(EXPECTED_REAL[action])


class Lab:
    """Two namespaces joined by a veth (made inside them): a server and a client."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}"
        self.server = f"lcdrs{tag}"
        self.client = f"lcdrc{tag}"
        self.process: subprocess.Popen[str] | None = None

    def run(self, *args: str, ns: str | None = None, stdin: str | None = None) -> str:
        """Run a command (inside ``ns``), with a timeout; return stdout."""
        argv = ["ip", "netns", "exec", ns, *args] if ns else list(args)
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=20, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def up(self) -> None:
        s, c = self.server, self.client
        self.run("ip", "netns", "add", s)
        self.run("ip", "netns", "add", c)
        # The veth is created inside the server namespace, its peer placed straight into the
        # client's: no interface ever exists in the root namespace.
        self.run(
            "ip", "-n", s, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", c
        )
        for ns, side in ((s, SERVER), (c, CLIENT)):
            self.run("ip", "-n", ns, "link", "set", "lo", "up")
            self.run("sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=0", ns=ns)
            self.run("ip", "-n", ns, "addr", "add", f"{side['main']}/24", "dev", "eth0")
            self.run("ip", "-n", ns, "addr", "add", f"{side['other']}/24", "dev", "eth0")
            self.run("ip", "-n", ns, "addr", "add", f"{side['v6']}/64", "dev", "eth0", "nodad")
            self.run("ip", "-n", ns, "link", "set", "eth0", "up")
        # Every reject answers at once: no per-peer ICMP rate limit (1/s by default) in the lab.
        no_limit = ("net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
        self.run("sysctl", "-q", "-w", *no_limit, ns=s)
        # Static IPv6 neighbours: some test rulesets drop ICMPv6, which would break ND.
        for ns, peer_ns, peer in ((s, c, CLIENT), (c, s, SERVER)):
            mac = json.loads(self.run("ip", "-j", "-n", peer_ns, "link", "show", "eth0"))[0][
                "address"
            ]
            self.run(
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                peer["v6"],
                "lladdr",
                mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            )
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", s, sys.executable, "-c", LAB_SERVER, TCP_PORTS, UDP_PORTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        # The server prints "ready" once bound; wait for that line with a deadline.
        readable, _, _ = select.select([self.process.stdout], [], [], 10.0)
        line = self.process.stdout.readline() if readable else ""
        if line.strip() != "ready":
            error = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"lab server did not start: {error}")

    def down(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
        for ns in (self.server, self.client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)

    def load(self, case: str) -> None:
        """Flush the server's rules and load a case's sources (ufw-stock: its recorded dump)."""
        self.run("nft", "flush", "ruleset", ns=self.server)
        folder = CASES / case
        v4_src = folder / "iptables.rules"
        v6_src = folder / "ip6tables.rules"
        if case == "ufw-stock":  # replay what the real ufw made
            v4_src, v6_src = folder / "iptables-save.txt", folder / "ip6tables-save.txt"
        if v4_src.exists():
            self.run("iptables-nft-restore", ns=self.server, stdin=v4_src.read_text())
        if v6_src.exists():
            self.run("ip6tables-nft-restore", ns=self.server, stdin=v6_src.read_text())
        if (folder / "rules.nft").exists():
            self.run("nft", "-f", str(folder / "rules.nft"), ns=self.server)

    def dump(self) -> LinuxFirewallOutputs:
        """The server's rules, read the way the doctor would read them."""

        def out(*argv: str) -> CommandOutput:
            done = subprocess.run(
                ["ip", "netns", "exec", self.server, *argv],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            return CommandOutput(done.stdout, done.stderr, done.returncode)

        return LinuxFirewallOutputs(
            nft=out("nft", "-j", "list", "ruleset"),
            iptables=out("iptables-nft-save"),
            ip6tables=out("ip6tables-nft-save"),
            iptables_legacy=out("iptables-legacy-save"),
            ip6tables_legacy=out("ip6tables-legacy-save"),
        )

    def probe(self, probes: list[tuple[str, int, str]]) -> list[str]:
        """Real connection attempts from the client namespace, side by side, 2 s timeout each."""
        spec = [[proto, CLIENT[who], SERVER[who], port] for proto, port, who in probes]
        text = self.run(sys.executable, "-c", LAB_CLIENT, json.dumps(spec), ns=self.client)
        return list(json.loads(text))


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nft", "iptables-nft-restore", "ip6tables-nft-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    made = Lab()
    try:
        made.up()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        made.down()
        pytest.skip(f"cannot build the namespace lab: {exc}")
    yield made
    made.down()


@pytest.mark.lab
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(LAB_CASES))
def test_verdicts_match_real_packets(lab: Lab, case: str) -> None:
    lab.load(case)
    collected = lab.dump()
    probes = LAB_CASES[case]
    packets = [
        Packet("ip6" if who == "v6" else "ip", proto, port, "eth0", CLIENT[who], SERVER[who])  # type: ignore[arg-type]
        for proto, port, who in probes
    ]
    report = assess_linux_firewall(collected, packets)
    real = lab.probe(probes)  # in parallel; the test's timeout bounds it
    compared = []
    for family, seen in zip(report.families, real, strict=True):
        verdict = family.verdict
        assert verdict.outcome != "unknown", (family.packet.describe(), verdict)
        action = verdict.action or "accept"  # allowed with no rule at all: nothing filters
        compared.append((family.packet.describe(), verdict.outcome, action, seen))
        assert seen in expected_real(family.packet, action, verdict.rule_text), compared


def test_lab_cases_exist() -> None:
    assert all((CASES / case).is_dir() for case in LAB_CASES)
    assert Path(CASES / "ufw-stock" / "iptables-save.txt").exists()
    assert command("ufw-stock", "ufw-status.txt") is not None
