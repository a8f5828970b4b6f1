"""Whether this PC hides behind WSL 2, a container without host networking or a NAT'd virtual
machine (env.virtualized): then other PCs cannot reach it whatever its firewall says."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from lanchat.doctor.checks.lan import choose_lan
from lanchat.doctor.probe.interface import Probe
from lanchat.doctor.result import CheckResult, Fix
from lanchat.netinfo import LocalAddress

# NAT networks that hypervisors hand their guests by default (VirtualBox/QEMU user mode,
# libvirt's "default" network); a guest there is not reachable from the LAN.
VM_NAT_NETWORKS = (ipaddress.ip_network("10.0.2.0/24"), ipaddress.ip_network("192.168.122.0/24"))
WSL_NAT_NETWORK = ipaddress.ip_network("172.16.0.0/12")
WSL_VM_CREATOR = "40E0AC32-46A5-438A-A0B2-2B479E8F2E90"  # WSL's Hyper-V VM creator id
WINDOWS_HOTSPOT = ipaddress.ip_address("192.168.137.1")  # Windows mobile hotspot / ICS
_VM_VENDORS = re.compile(
    r"virtualbox|innotek|vmware|qemu|kvm|xen|parallels|bochs|microsoft corporation|bhyve", re.I
)
_CONTAINER_CGROUP = re.compile(r"docker|kubepods|containerd|libpod|lxc", re.I)


def check_env_virtualized(
    probe: Probe, addresses: Sequence[LocalAddress], port: int
) -> CheckResult:
    """env.virtualized: WSL 2, a container without host networking, a NAT'd virtual machine."""
    title = "Runs directly on this PC (not hidden in WSL, a container or a NAT'd VM)"
    lan = choose_lan(addresses)
    ip = ipaddress.ip_address(lan.address) if lan else None
    if probe.platform == "windows":
        hotspot = [
            a
            for a in addresses
            if a.family == 4 and ipaddress.ip_address(a.address) == WINDOWS_HOTSPOT
        ]
        if hotspot:
            return CheckResult(
                "env.virtualized",
                title,
                "pass",
                "This PC shares its connection (mobile hotspot): devices connected to the "
                f"hotspot must use {WINDOWS_HOTSPOT} ({hotspot[0].interface}).",
                facts={"kind": "hotspot"},
            )
        return CheckResult("env.virtualized", title, "pass", "Runs on Windows directly.")
    if probe.platform == "darwin":
        out = probe.run(["sysctl", "-n", "kern.hv_vmm_present"], 1.0)
        if out is not None and out.stdout.strip() == "1":
            return _vm_result(title, "macOS virtual machine", ip, lan.network if lan else None)
        return CheckResult("env.virtualized", title, "pass", "Runs on macOS directly.")
    if probe.platform != "linux":
        return CheckResult("env.virtualized", title, "skip", f"Not checked on {probe.platform}.")
    osrelease = (probe.read_text("/proc/sys/kernel/osrelease") or "").strip()
    if "microsoft" in osrelease.lower():
        return _wsl_result(title, osrelease, ip, port)
    container = _container(probe)
    if container:
        bridges = [a.interface for a in addresses if "container/VM bridge" in a.tags]
        if bridges:
            return CheckResult(
                "env.virtualized",
                title,
                "pass",
                f"Runs in a container ({container}) with the host's network "
                f"(it sees {bridges[0]}), so it is reachable like the host.",
                (container,),
                facts={"kind": "container", "host_network": True},
            )
        return CheckResult(
            "env.virtualized",
            title,
            "warn",
            f"Runs in a container ({container}), probably on its own network: other PCs reach "
            "it only through ports the host publishes, and discovery (mDNS) does not leave it.",
            (container, *(f"address {a.address} on {a.interface}" for a in addresses if a.usable)),
            (
                Fix(
                    "Run the container with the host's network (docker run --network host ...), "
                    f"or publish the port (docker run -p {port}:{port} ...) and tell others the "
                    "host's LAN address.",
                    run_on="this PC",
                ),
            ),
            {"kind": "container", "host_network": False},
        )
    vendor = " ".join(
        (probe.read_text(path) or "").strip()
        for path in ("/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name")
    ).strip()
    if vendor and _VM_VENDORS.search(vendor):
        return _vm_result(title, vendor, ip, lan.network if lan else None)
    return CheckResult(
        "env.virtualized",
        title,
        "pass",
        "Runs directly on this machine (no WSL, container or virtual machine detected).",
        (f"hardware: {vendor}",) if vendor else (),
    )


def _container(probe: Probe) -> str | None:
    for path, what in (("/.dockerenv", "Docker"), ("/run/.containerenv", "Podman")):
        if probe.read_text(path) is not None:
            return f"{what}: {path} exists"
    cgroup = probe.read_text("/proc/1/cgroup") or ""
    found = _CONTAINER_CGROUP.search(cgroup)
    return f"/proc/1/cgroup mentions {found.group(0)}" if found else None


def _wsl_result(title: str, osrelease: str, ip: Any, port: int) -> CheckResult:
    wsl2 = "wsl2" in osrelease.lower() or "microsoft-standard" in osrelease.lower()
    evidence = (f"/proc/sys/kernel/osrelease: {osrelease}",)
    if not wsl2:
        return CheckResult(
            "env.virtualized",
            title,
            "warn",
            "Runs in WSL 1, which uses Windows' network: the Windows Firewall decides who gets "
            "in. Run lanchat doctor in Windows (PowerShell) too.",
            evidence,
            facts={"kind": "wsl1"},
        )
    nat = ip is not None and ip in WSL_NAT_NETWORK
    fix = Fix(
        "Run lanchat in Windows itself, or (Windows 11 22H2 and later) add "
        "networkingMode=mirrored under [wsl2] in %USERPROFILE%\\.wslconfig, run "
        '"wsl --shutdown", and allow the port in the Hyper-V firewall.',
        (
            f"New-NetFirewallHyperVRule -DisplayName 'lanchat {port}' -Direction Inbound "
            f"-VMCreatorId '{{{WSL_VM_CREATOR}}}' -Protocol TCP -LocalPorts {port}",
        ),
        needs_admin=True,
        run_on="this PC",
    )
    if nat:
        return CheckResult(
            "env.virtualized",
            title,
            "fail",
            f"Runs inside WSL 2 with a NAT address ({ip}): other PCs cannot reach it.",
            evidence,
            (fix,),
            {"kind": "wsl2", "nat": True},
        )
    return CheckResult(
        "env.virtualized",
        title,
        "warn",
        f"Runs inside WSL 2 ({ip or 'no LAN address'}): unless mirrored networking is on, "
        "other PCs cannot reach it; in mirrored mode the Hyper-V firewall must let the port in.",
        evidence,
        (fix,),
        {"kind": "wsl2", "nat": False},
    )


def _vm_result(title: str, vendor: str, ip: Any, network: str | None) -> CheckResult:
    evidence = (f"virtual hardware: {vendor}",)
    if ip is not None and any(ip in net for net in VM_NAT_NETWORKS):
        return CheckResult(
            "env.virtualized",
            title,
            "fail",
            f"Runs in a virtual machine ({vendor}) behind its host's NAT ({ip} in {network}): "
            "other PCs cannot reach it.",
            evidence,
            (
                Fix(
                    "Switch the virtual machine's network adapter from NAT to Bridged "
                    "(VirtualBox: Settings > Network > Attached to: Bridged Adapter), restart "
                    "its network, and run lanchat doctor again.",
                    run_on="this PC",
                ),
            ),
            {"kind": "vm", "nat": True},
        )
    return CheckResult(
        "env.virtualized",
        title,
        "pass",
        f"Runs in a virtual machine ({vendor}) whose address {ip} looks like a LAN address "
        "(bridged networking); if other PCs still cannot connect, check the VM's adapter mode.",
        evidence,
        facts={"kind": "vm", "nat": False},
    )
