"""Running the doctor: the checks of each mode in order, then the answer block, as one report.

`run_doctor(options)` uses the real probes; tests pass fakes (`probe=`, `mdns=`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lanchat.doctor.answer import client_answer, server_answer
from lanchat.doctor.checks.firewall import firewall_checks
from lanchat.doctor.checks.lan import check_lan_address, choose_lan
from lanchat.doctor.checks.mdns import (
    BROWSE_TIMEOUT,
    check_mdns_neighbours,
    check_mdns_self,
    check_peer_mdns,
)
from lanchat.doctor.checks.nat import check_gateway, check_router, check_wan, default_gateway
from lanchat.doctor.checks.peer import (
    CONNECT_TIMEOUT,
    check_peer_lanchat,
    check_peer_network,
    check_peer_resolve,
    check_peer_tcp,
    same_network,
)
from lanchat.doctor.checks.server import check_server_bind
from lanchat.doctor.checks.virtual import check_env_virtualized
from lanchat.doctor.checks.web import PAGE_TIMEOUT, check_web_page
from lanchat.doctor.context import LanFacts, ServerContext
from lanchat.doctor.probe.interface import MdnsProbe, Probe
from lanchat.doctor.result import CheckResult, DoctorReport
from lanchat.netinfo import LocalAddress, host_port


@dataclass(frozen=True)
class DoctorOptions:
    """What the user asked: this PC as a server on `port`, or the server at host:port."""

    port: int
    host: str | None = None  # client mode when set
    internet: bool = False
    timeout: float = CONNECT_TIMEOUT
    rerun: str = "lanchat doctor"  # this command line, for "run it again as admin"

    @property
    def target(self) -> str | None:
        """HOST:PORT in client mode."""
        if self.host is None:
            return None
        return host_port(self.host, self.port)


def default_mdns_probe() -> MdnsProbe:
    """The real mDNS probe, over lanchat.discovery (imported here: it loads zeroconf)."""
    from lanchat.doctor.probe.mdns import DiscoveryMdnsProbe

    return DiscoveryMdnsProbe()


def run_doctor(
    options: DoctorOptions, probe: Probe | None = None, mdns: MdnsProbe | None = None
) -> DoctorReport:
    """Every check of the mode, in order, and the answer block; never raises for findings."""
    if probe is None:
        from lanchat.doctor.probe.system import SystemProbe

        probe = SystemProbe()
    mdns = mdns or default_mdns_probe()
    started = probe.monotonic()
    if options.host is None:
        checks = _server_checks(options, probe, mdns)
        answer = server_answer(checks, options.port)
        mode = "server"
    else:
        checks = _client_checks(options, probe, mdns)
        answer = client_answer(checks, options.target or "", options.port)
        mode = "client"
    return DoctorReport(
        mode,  # type: ignore[arg-type]
        options.port,
        options.target,
        probe.platform,
        tuple(checks),
        answer,
        probe.monotonic() - started,
    )


def _server_checks(options: DoctorOptions, probe: Probe, mdns: MdnsProbe) -> list[CheckResult]:
    addresses = probe.addresses()
    lan = choose_lan(addresses)
    own = [a.address for a in addresses]
    # mDNS listens for seconds: it runs beside the other checks to keep the run under 5 s.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="doctor-mdns") as pool:
        mdns_self = pool.submit(check_mdns_self, mdns, lan, options.port)
        neighbours = pool.submit(check_mdns_neighbours, mdns, own)
        checks = _server_main_checks(options, probe, addresses, lan)
        checks += [mdns_self.result(), neighbours.result()]
    if options.internet:
        checks += _internet_checks(probe, options.port, lan.address if lan else None)
    return checks


def _server_main_checks(
    options: DoctorOptions, probe: Probe, addresses: list[LocalAddress], lan: LanFacts | None
) -> list[CheckResult]:
    bind = check_server_bind(probe, options.port, lan)
    pid = bind.facts.get("pid")  # the relay's (never another program's that holds the port)
    # The program rules (Windows, macOS) are about the listening interpreter; without a server,
    # the doctor's own interpreter is the one lanchat serve would run with.
    exe = probe.process_exe(int(pid)) if pid else None
    exe = exe or probe.process_exe(os.getpid())
    ctx = ServerContext(options.port, lan, exe, options.rerun)
    page = None
    if bind.facts.get("running"):  # the relay on this PC: the page as a browser here gets it
        host = str(bind.facts.get("host", ""))
        local = "127.0.0.1" if host in ("", "*", "0.0.0.0", "::") else host
        page = (local, probe.fetch_page(local, options.port, PAGE_TIMEOUT))
    return [
        bind,
        *([check_web_page(page[1], page[0], options.port)] if page else []),
        check_lan_address(addresses, options.port),
        check_env_virtualized(probe, addresses, options.port),
        *firewall_checks(probe, ctx),
    ]


def _client_checks(options: DoctorOptions, probe: Probe, mdns: MdnsProbe) -> list[CheckResult]:
    host, port = options.host or "", options.port
    resolved = probe.resolve(host, port)
    checks = [check_peer_resolve(resolved, host)]
    if resolved.addresses:
        address = resolved.addresses[0]
        addresses = probe.addresses()
        network = check_peer_network(addresses, address, port)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="doctor-mdns") as pool:
            browse = (
                pool.submit(mdns.browse_lanchat, BROWSE_TIMEOUT) if not mdns.unavailable() else None
            )
            connected, hello = probe.reach(address, port, options.timeout)
            seen = browse.result() if browse is not None else None
        relation, _ = same_network(addresses, address)
        tcp = check_peer_tcp(connected, relation, options.timeout)
        checks += [
            network,
            tcp,
            check_peer_lanchat(connected, hello),
            check_web_page(
                probe.fetch_page(address, port, PAGE_TIMEOUT) if tcp.status == "pass" else None,
                address,
                port,
            ),
            check_peer_mdns(mdns, resolved.addresses, port, tcp.status == "pass", seen),
        ]
    if options.internet:
        lan = choose_lan(probe.addresses())
        checks += _internet_checks(probe, port, lan.address if lan else None)
    return checks


def _internet_checks(probe: Probe, port: int, lan_address: str | None) -> list[CheckResult]:
    gateway = default_gateway(probe)
    router, external = check_router(probe, gateway)
    return [check_gateway(gateway), router, check_wan(external, port, lan_address)]
