"""`lanchat doctor`: can others reach a server here, or can this PC reach one there."""

from __future__ import annotations

from typing import Annotated

import typer

from lanchat.errors import ExitCode, UsageError
from lanchat.protocol import DEFAULT_PORT

EPILOG = (  # the examples under --help
    "Examples:\n\n"
    "  lanchat doctor                     # on the server PC: can others reach port 7420?\n\n"
    "  lanchat doctor --port 7000 --json\n\n"
    "  lanchat doctor 192.168.1.23:7420   # on another PC: can it reach that server?\n\n"
    "  sudo lanchat doctor                # Linux: read the firewall rules too\n\n"
    "  lanchat doctor --internet          # also ask the router (NAT-PMP)\n\n"
    "Reading firewall rules needs root on Linux (nft, iptables-save) and for pf on macOS; "
    "Windows rules are readable by everyone. The doctor never changes a setting. "
    "Exit code 3 when a check fails. Environment: LANCHAT_PORT."
)


def doctor(
    target: Annotated[
        str | None,
        typer.Argument(
            help="HOST[:PORT] of a server to test from this PC (client mode).", show_default=False
        ),
    ] = None,
    peer: Annotated[
        str | None, typer.Option("--peer", help="Same as HOST[:PORT].", show_default=False)
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", envvar="LANCHAT_PORT", min=1, max=65535, help="The lanchat TCP port."
        ),
    ] = DEFAULT_PORT,
    internet: Annotated[
        bool,
        typer.Option("--internet", help="Also ask the router for its internet address (NAT-PMP)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=30, help="Seconds to wait for a server to answer."),
    ] = 3.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable output: one JSON document.")
    ] = False,
    no_mdns: Annotated[
        bool,
        typer.Option(
            "--no-mdns",
            envvar="LANCHAT_NO_MDNS",
            help="Skip the mDNS checks (they advertise and listen on the LAN).",
        ),
    ] = False,
) -> None:
    """Find out why other PCs cannot connect, and whether you need a firewall rule or port
    forwarding."""
    from lanchat.client import parse_address
    from lanchat.doctor.run import DoctorOptions, run_doctor
    from lanchat.output import print_json, stdout_console
    from lanchat.output.doctor import print_doctor

    if target and peer:
        raise UsageError("Give the server once: HOST[:PORT] or --peer HOST[:PORT].")
    address = target or peer
    host = None
    if address:
        host, port = parse_address(address, default_port=port)
    rerun = "lanchat doctor" + (f" --port {port}" if port != DEFAULT_PORT else "")
    rerun += " --internet" if internet else ""
    mdns = None
    if no_mdns:
        from lanchat.doctor.probe.interface import UnavailableMdnsProbe

        mdns = UnavailableMdnsProbe("skipped (--no-mdns or LANCHAT_NO_MDNS)")
    report = run_doctor(DoctorOptions(port, host, internet, timeout, rerun), mdns=mdns)
    if json_out:
        print_json(report.to_dict())
    else:
        print_doctor(stdout_console(), report)
    raise typer.Exit(ExitCode.CHECK_FAILED if report.failed else ExitCode.OK)
