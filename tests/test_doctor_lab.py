"""`lanchat doctor` in the multi-host lab with real rules: the server host and a client host both
run the real `python -m lanchat doctor ... --json`. Firewalls are real nft / iptables rules inside
the lab's namespaces; the printed fix is applied and must make the port reachable."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import Any

import pytest

from conftest import ROOT
from netlab import Host, LineReader, missing_tools

LAB_ENV = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "LANCHAT_PORT": ""}
BUDGET = 5.0  # a whole doctor run, from process start to exit (the limit)
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

pytestmark = pytest.mark.lab


def serve(
    host: Host, *extra: str, mdns: bool = False
) -> tuple[subprocess.Popen[str], LineReader, int]:
    """`lanchat serve --json` in a lab host; the process, its event reader and its port.
    Without `mdns` it does not announce itself (faster start; only mDNS tests need it)."""
    quiet = [] if mdns else ["--no-mdns"]
    proc = host.popen(
        [sys.executable, "-m", "lanchat", "serve", "--port", "0", "--json", *quiet, *extra],
        env=LAB_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    events = LineReader(proc.stdout)
    listening = json.loads(events.readline(10))
    return proc, events, int(listening["port"])


def doctor(
    host: Host, *args: str, user: list[str] | None = None, mdns: bool = False
) -> tuple[int, dict[str, Any]]:
    """Run the real doctor in a host; exit code and JSON. The run's timeout is a deadline, not
    a speed test. Without `mdns` its mDNS checks are skipped (they take ~3 s; only mDNS tests
    need them)."""
    quiet = [] if mdns else ["--no-mdns"]
    argv = [*(user or []), sys.executable, "-m", "lanchat", "doctor", *args, *quiet, "--json"]
    done = host.run(argv, timeout=BUDGET + 5, env=LAB_ENV)
    assert done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    return done.returncode, report


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


def statuses(report: dict[str, Any], *ids: str) -> dict[str, str]:
    found = checks(report)
    return {i: found[i]["status"] for i in ids}


def commands(check: dict[str, Any]) -> list[str]:
    return [c for fix in check["fixes"] for c in fix["commands"]]


SERVER_CHECKS = ("server.bind", "lan.address", "firewall.detect", "firewall.tcp", "firewall.mdns")


@pytest.mark.skipif(missing_tools("nft") is not None, reason=str(missing_tools("nft")))
def test_no_firewall_passes_on_both_hosts(lab_factory: Any) -> None:
    lab = lab_factory(2, default_route=True)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = serve(h1, mdns=True)
    serve(h2, mdns=True)  # another mDNS host on the link: a neighbour to hear
    code, report = doctor(h1, "--port", str(port), mdns=True)
    assert code == 0
    assert set(statuses(report, *SERVER_CHECKS).values()) == {"pass"}
    assert statuses(report, "mdns.self", "mdns.neighbours", "firewall.app-block") == {
        "mdns.self": "pass",
        "mdns.neighbours": "pass",
        "firewall.app-block": "skip",
    }
    assert checks(report)["mdns.neighbours"]["facts"]["hosts"] == [h2.ip]
    found = checks(report)
    assert found["server.bind"]["facts"]["scope"] == "all"
    assert found["lan.address"]["facts"]["join"] == f"lanchat join {h1.ip}:{port}"
    assert found["firewall.detect"]["summary"].startswith("No firewall rules are loaded")
    answer = report["answer"]
    assert answer["verdict"].startswith(
        f"Yes: other PCs on this network can join with `lanchat join {h1.ip}:{port}`"
    )
    assert answer["firewall_rule"].startswith("Not needed")
    assert answer["port_forwarding"].startswith("Not needed")

    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 0
    assert statuses(report, "peer.resolve", "peer.network", "peer.tcp", "peer.lanchat") == {
        "peer.resolve": "pass",
        "peer.network": "pass",
        "peer.tcp": "pass",
        "peer.lanchat": "pass",
    }
    assert checks(report)["peer.tcp"]["facts"]["source"] == h2.ip
    assert report["answer"]["verdict"] == f"Yes: `lanchat join {h1.ip}:{port}` works from this PC."
    # The handshake is a probe: it never joined the room, so nobody there saw it.
    status = h1.run(
        [sys.executable, "-m", "lanchat", "status", "--port", str(port), "--json"],
        timeout=5,
        env=LAB_ENV,
    )
    assert json.loads(status.stdout)["server"]["clients"] == 0


@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize(("action", "outcome"), [("drop", "timeout"), ("reject", "refused")])
def test_a_rule_that_blocks_the_port(
    lab_factory: Any, backend: str, action: str, outcome: str
) -> None:
    lab = lab_factory(2, default_route=True)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = serve(h1)
    h1.block("tcp", port, action, backend=backend)

    code, report = doctor(h1, "--port", str(port))
    assert code == 3
    tcp = checks(report)["firewall.tcp"]
    assert tcp["status"] == "fail"
    assert {v["action"] for v in tcp["facts"]["verdicts"].values()} == {action}
    seen = "a timeout" if action == "drop" else "'connection refused'"
    assert f"other PCs see {seen}" in tcp["summary"]
    fix = commands(tcp)
    if backend == "nft":
        assert fix[0] == (
            f"sudo nft insert rule inet netlab input iifname eth0 ip saddr 10.213.0.0/24 "
            f"tcp dport {port} accept"
        )
    else:
        assert fix[0] == (
            f"sudo iptables -I INPUT -i eth0 -p tcp -s 10.213.0.0/24 --dport {port} -j ACCEPT"
        )
        assert fix[1].startswith("sudo ip6tables -I INPUT -i eth0 -p tcp -s fe80::/64")
    assert report["answer"]["firewall_rule"].startswith("Needed on this PC")
    text = h1.run(
        [sys.executable, "-m", "lanchat", "doctor", "--port", str(port)], timeout=10, env=LAB_ENV
    )
    assert text.returncode == 3
    assert f"\n          {fix[0]}\n" in text.stdout  # what to type, on a line of its own
    assert "[✗] firewall.tcp" in text.stdout or "[x] firewall.tcp" in text.stdout

    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 3
    assert checks(report)["peer.tcp"]["facts"]["outcome"] == outcome
    assert checks(report)["peer.lanchat"]["status"] == "skip"

    for command in fix:  # the printed fix, as the user would type it (we are root: no sudo)
        argv = shlex.split(command)
        assert argv[0] == "sudo"
        done = h1.run(argv[1:], timeout=5)
        assert done.returncode == 0, done.stderr
    code, report = doctor(h1, "--port", str(port))
    assert code == 0 and checks(report)["firewall.tcp"]["status"] == "pass"
    # The rule just added is what lets the port in: never "no firewall rule needed".
    assert report["answer"]["firewall_rule"].startswith("In place: the firewall")
    assert "No firewall rule" not in report["answer"]["verdict"]
    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 0 and checks(report)["peer.lanchat"]["status"] == "pass"


def nft_default_drop(port: int) -> str:
    return (
        "table inet filter {\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        '    iifname "lo" accept\n'
        f"    ip saddr 10.213.0.0/24 tcp dport {port} accept\n"
        f"    ip6 saddr fe80::/64 tcp dport {port} accept\n"
        "  }\n"
        "}\n"
    )


def iptables_default_drop(port: int, source: str) -> str:
    return (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -i lo -j ACCEPT\n"
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        f"-A INPUT -s {source} -p tcp -m tcp --dport {port} -j ACCEPT\n"
        "COMMIT\n"
    )


def test_an_admin_prohibited_reject_is_named_on_the_client(lab_factory: Any) -> None:
    """firewalld rejects with ICMP "admin prohibited": Linux reports that as 'no route to host'
    over IPv4 and as 'permission denied' over IPv6. The client's doctor and join both say what
    it is and send the user to the server PC."""
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = serve(h1)
    h1.apply_firewall(
        nft="table inet firewall {\n"
        "  chain input { type filter hook input priority 0; policy accept;\n"
        f"    tcp dport {port} reject with icmpx type admin-prohibited\n"
        "  }\n}\n"
    )
    v6 = f"[{h1.ip6_link_local}%{h2.ifname}]:{port}"

    code, report = doctor(h2, v6)
    assert code == 3
    tcp = checks(report)["peer.tcp"]
    assert tcp["facts"]["outcome"] == "prohibited", tcp
    assert "as 'administratively prohibited'" in tcp["summary"]
    assert commands(tcp) == [f"lanchat doctor --port {port}"]
    assert report["answer"]["verdict"].startswith("No: a firewall rejects the connection")
    assert report["answer"]["firewall_rule"].startswith("Probably needed on the server PC")

    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 3
    assert checks(report)["peer.tcp"]["facts"]["outcome"] == "host-unreachable"
    assert report["answer"]["firewall_rule"].startswith("Maybe: a firewall that rejects")

    join = [sys.executable, "-m", "lanchat", "join", v6, "--name", "ada"]
    joined = h2.run(join, timeout=10, env=LAB_ENV)
    assert joined.returncode == 4, joined.stderr
    assert "rejected the connection" in joined.stderr and "Traceback" not in joined.stderr
    assert f"Run `lanchat doctor --port {port}` on {h1.ip6_link_local}:" in joined.stderr


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_accept_from_the_subnet_before_a_default_drop_passes(
    lab_factory: Any, backend: str
) -> None:
    lab = lab_factory(2, default_route=True)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = serve(h1)
    if backend == "nft":
        h1.apply_firewall(nft=nft_default_drop(port))
    else:
        h1.apply_firewall(
            iptables=iptables_default_drop(port, "10.213.0.0/24"),
            ip6tables=iptables_default_drop(port, "fe80::/64"),
        )
    code, report = doctor(h1, "--port", str(port))
    assert code == 0
    assert statuses(report, "server.bind", "firewall.detect", "firewall.tcp") == {
        "server.bind": "pass",
        "firewall.detect": "pass",
        "firewall.tcp": "pass",
    }
    # The default drop takes mDNS too: a warning, never a failure.
    assert checks(report)["firewall.mdns"]["status"] == "warn"
    assert report["answer"]["firewall_rule"].startswith("In place: the firewall")
    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 0 and checks(report)["peer.lanchat"]["status"] == "pass"


def test_udp_5353_dropped_is_an_mdns_warning_and_tcp_passes(lab_factory: Any) -> None:
    lab = lab_factory(2, default_route=True)
    h1 = lab.host(1)
    _, _, port = serve(h1)
    h1.block("udp", 5353, "drop", backend="nft")
    code, report = doctor(h1, "--port", str(port), mdns=True)
    assert code == 0
    found = checks(report)
    assert found["firewall.tcp"]["status"] == "pass"
    assert found["mdns.self"]["status"] == "warn"  # its own announcement no longer gets back in
    mdns = found["firewall.mdns"]
    assert mdns["status"] == "warn"
    assert commands(mdns)[0] == (
        "sudo nft insert rule inet netlab input iifname eth0 ip saddr 10.213.0.0/24 "
        "ip daddr 224.0.0.251 udp dport 5353 accept"
    )
    assert f"lanchat join {h1.ip}:{port}" in mdns["fixes"][-1]["text"]


def test_a_server_bound_to_loopback_fails_with_the_restart_command(lab_factory: Any) -> None:
    lab = lab_factory(2, default_route=True)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = serve(h1, "--host", "127.0.0.1")
    code, report = doctor(h1, "--port", str(port))
    assert code == 3
    bind = checks(report)["server.bind"]
    assert bind["status"] == "fail" and bind["facts"]["scope"] == "loopback"
    assert "listens on 127.0.0.1 only" in bind["summary"]
    assert commands(bind) == [f"lanchat serve --port {port}"]
    code, report = doctor(h2, f"{h1.ip}:{port}")
    assert code == 3 and checks(report)["peer.tcp"]["facts"]["outcome"] == "refused"


HOLD_PORT = (
    "import socket, sys\n"
    "s = socket.create_server(('0.0.0.0', 0))\n"
    "print(s.getsockname()[1], flush=True)\n"
    "sys.stdin.read()\n"
)


def test_a_port_held_by_another_program_is_named(lab_factory: Any) -> None:
    lab = lab_factory(2, default_route=True)
    h1, h2 = lab.host(1), lab.host(2)
    holder = h1.popen(
        [sys.executable, "-c", HOLD_PORT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdout is not None
    port = int(LineReader(holder.stdout).readline(5))
    code, report = doctor(h1, "--port", str(port))
    assert code == 3
    bind = checks(report)["server.bind"]
    assert bind["status"] == "fail" and bind["facts"]["scope"] == "taken"
    owner = bind["facts"]["owner"]
    assert owner["pid"] == holder.pid and owner["program"].startswith("python")
    assert f"already used by {owner['program']} (pid {holder.pid})" in bind["summary"]
    assert commands(bind) == [f"kill {holder.pid}", f"lanchat serve --port {port + 1}"]
    code, report = doctor(h2, f"{h1.ip}:{port}", "--timeout", "1")
    assert code == 3
    assert checks(report)["peer.tcp"]["status"] == "pass"
    hello = checks(report)["peer.lanchat"]
    assert hello["status"] == "fail" and hello["facts"]["outcome"] == "silent"


def test_without_root_the_firewall_is_unknown_and_names_the_command(lab_factory: Any) -> None:
    lab = lab_factory(1, default_route=True)
    h1 = lab.host(1)
    _, _, port = serve(h1)
    h1.block("tcp", port, "drop", backend="nft")
    code, report = doctor(h1, "--port", str(port), user=NOBODY)
    assert code == 0  # nothing is known to fail; nothing is claimed to pass either
    found = checks(report)
    assert found["server.bind"]["status"] == "pass"  # the relay answers its own PC
    for check in ("firewall.detect", "firewall.tcp", "firewall.mdns"):
        assert found[check]["status"] == "unknown"
        assert f"sudo lanchat doctor --port {port}" in commands(found[check])
    assert "needs root" in found["firewall.tcp"]["summary"]
    assert report["answer"]["firewall_rule"].startswith("Unknown")


NATPMP_ROUTER = (
    "import socket, struct, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 5351))\n"
    "s.settimeout(15)\n"
    "external = socket.inet_aton(sys.argv[1])\n"
    "print('ready', flush=True)\n"
    "for _ in range(10):\n"
    "    data, peer = s.recvfrom(64)\n"
    "    print(data.hex(), peer[0], flush=True)\n"
    "    if data[:2] == b'\\x00\\x00':\n"
    "        s.sendto(struct.pack('!BBHI', 0, 128, 0, 77) + external, peer)\n"
)


@pytest.mark.parametrize(
    ("external", "status", "words"),
    [
        ("100.71.3.9", "fail", "carrier-grade NAT"),
        ("192.168.178.20", "warn", "double NAT"),
        ("81.2.69.142", "pass", "is a public address"),
    ],
)
def test_internet_asks_a_fake_nat_pmp_router_in_the_lab(
    lab_factory: Any, external: str, status: str, words: str
) -> None:
    lab = lab_factory(2, default_route=True)
    router, pc = lab.host(1), lab.host(2)
    fake = router.popen([sys.executable, "-c", NATPMP_ROUTER, external], stdout=subprocess.PIPE)
    assert fake.stdout is not None
    heard = LineReader(fake.stdout)
    assert heard.readline(5) == "ready"
    done = pc.run(["ip", "route", "replace", "default", "via", router.ip, "dev", "eth0"], timeout=5)
    assert done.returncode == 0, done.stderr
    code, report = doctor(pc, "--internet")
    found = checks(report)
    assert found["nat.gateway"]["facts"]["gateway"] == router.ip
    assert found["nat.router"]["status"] == "pass"
    assert found["nat.router"]["facts"]["external"] == external
    assert found["nat.wan"]["status"] == status and words in found["nat.wan"]["summary"]
    assert code == (3 if status == "fail" else 0)
    assert heard.readline(5) == f"0000 {pc.ip}", "one 2-byte request (version 0, opcode 0)"
    assert report["answer"]["internet"][1]["status"] == status


def test_internet_with_a_silent_router_is_unknown(lab_factory: Any) -> None:
    lab = lab_factory(2, default_route=True)
    router, pc = lab.host(1), lab.host(2)
    pc.run(["ip", "route", "replace", "default", "via", router.ip, "dev", "eth0"], timeout=5)
    code, report = doctor(pc, "--internet")
    assert code == 0
    assert statuses(report, "nat.gateway", "nat.router", "nat.wan") == {
        "nat.gateway": "pass",
        "nat.router": "unknown",
        "nat.wan": "unknown",
    }
