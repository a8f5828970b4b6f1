"""Linux: combine nft, iptables-nft and iptables-legacy output into one answer per IP family.

Three rule stores can filter the same packet: native nftables tables (only `nft` shows them),
the tables iptables-nft made (`nft` shows them too, but hides most iptables matches as opaque
`xt` expressions, so they are read from `iptables-save`), and iptables-legacy (only
`iptables-legacy-save` shows it). A packet is allowed only if every input chain of every store
accepts it, and blocked as soon as one drops or rejects it. The caller runs the commands (as
root) and passes their output in; this module runs nothing.

Longer than the others (about 390 lines) because the three stores interlock: which store's
verdict counts, the iptables-nft tables that nft also lists, and the legacy warning are one set
of rules, and the report types they fill belong with them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lanchat.doctor.firewall.linux.chainwalk import ChainResult, Evaluation
from lanchat.doctor.firewall.linux.iptables.decide import evaluate_iptables
from lanchat.doctor.firewall.linux.iptables.parse import (
    IptablesRuleset,
    iptables_tables,
    parse_iptables_save,
)
from lanchat.doctor.firewall.linux.nft.decide import evaluate_nft
from lanchat.doctor.firewall.linux.nft.parse import NftRuleset, parse_nft_ruleset
from lanchat.doctor.firewall.verdict import Packet, Verdict, unknown
from lanchat.doctor.probe.interface import CommandOutput

Status = Literal["read", "no-firewall", "cannot-read", "error"]

# What nft, iptables-save and ufw print when run without root (recorded in a namespace as
# user nobody, see tests/fixtures/linux/cases/nonroot, and quoted in public reports).
CANNOT_READ = re.compile(
    r"you must be root|Operation not permitted|Permission denied|need to be root|"
    r"cache initialization failed",
    re.IGNORECASE,
)
LEGACY_WARNING = re.compile(r"iptables-legacy tables present", re.IGNORECASE)
# Priorities of the iptables tables on their hooks (kernel's NF_IP_PRI_*), to order evidence.
IPTABLES_PRIORITY = {
    ("raw", "PREROUTING"): (0, -300),
    ("mangle", "PREROUTING"): (0, -150),
    ("nat", "PREROUTING"): (0, -100),
    ("mangle", "INPUT"): (1, -150),
    ("filter", "INPUT"): (1, 0),
    ("security", "INPUT"): (1, 50),
    ("nat", "INPUT"): (1, 100),
}
FIREWALLD_ZONE_CHAIN = re.compile(
    r"^(?:filter_)?IN_(?!policy_)(.+?)(?:_(?:pre|log|deny|allow|post))?$"
)


@dataclass(frozen=True)
class LinuxFirewallOutputs:
    """The outputs the caller collected; None means the command is not installed."""

    nft: CommandOutput | None = None  # nft -j list ruleset
    iptables: CommandOutput | None = None  # iptables-save (nf_tables backend)
    ip6tables: CommandOutput | None = None  # ip6tables-save
    iptables_legacy: CommandOutput | None = None  # iptables-legacy-save
    ip6tables_legacy: CommandOutput | None = None  # ip6tables-legacy-save


@dataclass(frozen=True)
class SourceResult:
    """One rule store's evaluation for one packet (e.g. "nft", "iptables", "iptables-legacy")."""

    store: str
    evaluation: Evaluation

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"store": self.store, **self.evaluation.to_dict()}


@dataclass(frozen=True)
class FamilyReport:
    """The answer for one packet (one IP family) and the evidence of each rule store."""

    packet: Packet
    verdict: Verdict
    sources: tuple[SourceResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "packet": self.packet.to_dict(),
            "verdict": self.verdict.to_dict(),
            "sources": [s.to_dict() for s in self.sources],
        }


@dataclass(frozen=True)
class LinuxFirewallReport:
    """Which firewall is in charge, and for each packet whether it gets in, with evidence."""

    status: Status
    reason: str
    frontend: str  # "firewalld", "ufw", "nftables", "iptables", "iptables-legacy" or "none"
    frontends: tuple[str, ...] = ()
    zone: str | None = None  # firewalld: the zone the packet's interface maps to
    families: tuple[FamilyReport, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "status": self.status,
            "reason": self.reason,
            "frontend": self.frontend,
            "frontends": list(self.frontends),
            "zone": self.zone,
            "families": [f.to_dict() for f in self.families],
            "notes": list(self.notes),
        }


def assess_linux_firewall(
    outputs: LinuxFirewallOutputs, packets: Sequence[Packet]
) -> LinuxFirewallReport:
    """Whether each packet (typically one IPv4 and one IPv6) gets in; never raises."""
    denied = _cannot_read(outputs)
    if denied:
        families = tuple(
            FamilyReport(p, unknown("linux", f"cannot read the firewall rules: {denied}"))
            for p in packets
        )
        return LinuxFirewallReport("cannot-read", denied, "unknown", families=families)
    if outputs.nft is None and outputs.iptables is None and outputs.ip6tables is None:
        reason = "neither nft nor iptables-save is installed, so the rules cannot be read"
        families = tuple(FamilyReport(p, unknown("linux", reason)) for p in packets)
        return LinuxFirewallReport("error", reason, "unknown", families=families)
    stores = _Stores.read(outputs)
    if stores.errors:
        reason = "; ".join(stores.errors)
        families = tuple(FamilyReport(p, unknown("linux", reason)) for p in packets)
        return LinuxFirewallReport("error", reason, "unknown", families=families)
    frontends = stores.frontends()
    reports = tuple(stores.evaluate(p) for p in packets)
    zone = _firewalld_zone(reports) if "firewalld" in frontends else None
    status: Status = "read" if frontends else "no-firewall"
    reason = (
        "firewall rules read: " + ", ".join(frontends)
        if frontends
        else "no firewall rules are loaded (nothing filters incoming packets)"
    )
    notes = tuple(dict.fromkeys(n for r in reports for s in r.sources for n in s.evaluation.notes))
    return LinuxFirewallReport(
        status,
        reason,
        frontends[0] if frontends else "none",
        frontends,
        zone,
        reports,
        notes + stores.notes,
    )


def _cannot_read(outputs: LinuxFirewallOutputs) -> str | None:
    """The first 'permission denied' style message among the outputs, if any."""
    for name, output in _named(outputs):
        if output is None:
            continue
        text = output.stderr.strip()
        if output.returncode != 0 and CANNOT_READ.search(text):
            first = text.splitlines()[0] if text else "permission denied"
            return f"{name}: {first} (run the doctor as root to read the rules)"
    return None


def _named(outputs: LinuxFirewallOutputs) -> list[tuple[str, CommandOutput | None]]:
    return [
        ("nft", outputs.nft),
        ("iptables-save", outputs.iptables),
        ("ip6tables-save", outputs.ip6tables),
        ("iptables-legacy-save", outputs.iptables_legacy),
        ("ip6tables-legacy-save", outputs.ip6tables_legacy),
    ]


@dataclass(frozen=True)
class _Stores:
    """The parsed outputs."""

    nft: NftRuleset | None
    v4: IptablesRuleset | None
    v6: IptablesRuleset | None
    legacy4: IptablesRuleset | None
    legacy6: IptablesRuleset | None
    legacy_hinted: bool
    errors: tuple[str, ...]
    notes: tuple[str, ...]

    @classmethod
    def read(cls, outputs: LinuxFirewallOutputs) -> _Stores:
        errors: list[str] = []
        notes: list[str] = []
        for name, output in _named(outputs):
            if output is not None and output.returncode != 0:
                detail = output.stderr.strip().splitlines()[0] if output.stderr.strip() else ""
                errors.append(
                    f"{name} failed (exit {output.returncode}){': ' + detail if detail else ''}"
                )
        nft = parse_nft_ruleset(outputs.nft.stdout) if outputs.nft else None
        if nft is not None and nft.error:
            errors.append(f"nft: {nft.error}")
        parsed: dict[str, IptablesRuleset | None] = {}
        for key, output, family in (
            ("v4", outputs.iptables, "ip"),
            ("v6", outputs.ip6tables, "ip6"),
            ("legacy4", outputs.iptables_legacy, "ip"),
            ("legacy6", outputs.ip6tables_legacy, "ip6"),
        ):
            ruleset = parse_iptables_save(output.stdout, family) if output else None  # type: ignore[arg-type]
            if ruleset is not None and ruleset.error:
                errors.append(f"{key}: {ruleset.error}")
            parsed[key] = ruleset
        hinted = any(
            output is not None and LEGACY_WARNING.search(output.stdout + output.stderr)
            for output in (outputs.iptables, outputs.ip6tables)
        )
        if outputs.nft is None and (outputs.iptables or outputs.ip6tables):
            notes.append("nft is not installed: native nftables tables (if any) could not be read")
        return cls(
            nft,
            parsed["v4"],
            parsed["v6"],
            parsed["legacy4"],
            parsed["legacy6"],
            hinted,
            tuple(errors),
            tuple(notes),
        )

    def iptables_for(self, family: str) -> IptablesRuleset | None:
        return self.v4 if family == "ip" else self.v6

    def legacy_for(self, family: str) -> IptablesRuleset | None:
        return self.legacy4 if family == "ip" else self.legacy6

    def iptables_nft_tables(self, family: str) -> frozenset[str]:
        """Tables iptables-nft made for this family and iptables-save could show in full."""
        ruleset = self.iptables_for(family)
        return iptables_tables(ruleset) if ruleset is not None else frozenset()

    def evaluate(self, packet: Packet) -> FamilyReport:
        """One packet through every store; the combined verdict and each store's evidence."""
        sources: list[SourceResult] = []
        ordered: list[tuple[tuple[int, int], ChainResult]] = []
        owned = self.iptables_nft_tables(packet.family)
        if self.nft is not None:
            skip = {(packet.family, name) for name in owned}
            evaluation = evaluate_nft(self.nft, packet, skip_tables=skip)
            sources.append(SourceResult("nft", evaluation))
            prio = {c.where: c.prio for c in self.nft.chains}
            ordered.extend(((1, prio.get(r.chain, 0)), r) for r in evaluation.chains)
        ipt = self.iptables_for(packet.family)
        tool = "iptables" if packet.family == "ip" else "ip6tables"
        if ipt is not None and (owned or self.nft is None):
            evaluation = evaluate_iptables(ipt, packet, tables=owned or None)
            sources.append(SourceResult(tool, evaluation))
            ordered.extend((_iptables_key(r), r) for r in evaluation.chains)
        legacy = self.legacy_for(packet.family)
        legacy_verdict: Verdict | None = None
        if legacy is not None and _has_rules(legacy):
            evaluation = evaluate_iptables(legacy, packet, label=f"{tool}-legacy")
            sources.append(SourceResult(f"{tool}-legacy", evaluation))
            legacy_verdict = evaluation.verdict
        ordered.sort(key=lambda item: item[0])
        verdict = _combine(
            [r for _, r in ordered], legacy_verdict, self.legacy_hinted and legacy is None
        )
        return FamilyReport(packet, verdict, tuple(sources))

    def frontends(self) -> tuple[str, ...]:
        """Which firewall front-ends shaped the rules, the one in charge first."""
        found: list[str] = []
        nft_tables = set(self.nft.tables) if self.nft else set()
        nft_chains = {c.name for c in self.nft.chains} if self.nft else set()
        ipt_chains = {
            chain
            for ruleset in (self.v4, self.v6, self.legacy4, self.legacy6)
            if ruleset is not None
            for table in ruleset.tables.values()
            for chain in table.policies
        }
        if (
            any(name == "firewalld" for _, name in nft_tables)
            or {"INPUT_ZONES", "IN_public"} & ipt_chains
        ):
            found.append("firewalld")
        if any(c.startswith(("ufw-", "ufw6-")) for c in ipt_chains | nft_chains):
            found.append("ufw")
        owned = {("ip", n) for n in self.iptables_nft_tables("ip")} | {
            ("ip6", n) for n in self.iptables_nft_tables("ip6")
        }
        if self.nft is not None:
            native = {
                (c.family, c.table)
                for c in self.nft.chains
                if c.hook is not None
                and (c.family, c.table) not in owned
                and c.table != "firewalld"
            }
            if native:
                found.append("nftables")
        if any(self._filters(r) for r in (self.v4, self.v6)):
            found.append("iptables")
        if any(r is not None and _has_rules(r) for r in (self.legacy4, self.legacy6)):
            found.append("iptables-legacy")
        return tuple(dict.fromkeys(found))

    @staticmethod
    def _filters(ruleset: IptablesRuleset | None) -> bool:
        return ruleset is not None and _has_rules(ruleset)


def _has_rules(ruleset: IptablesRuleset) -> bool:
    """Whether a dump holds any rule, or a built-in chain that does not accept by default."""
    if ruleset.rule_count:
        return True
    return any(
        policy not in (None, "ACCEPT")
        for table in ruleset.tables.values()
        for policy in table.policies.values()
    )


def _iptables_key(result: ChainResult) -> tuple[int, int]:
    table_chain = result.chain.split(" ", 1)[-1]
    table, _, chain = table_chain.partition("/")
    return IPTABLES_PRIORITY.get((table, chain), (1, 0))


def _combine(chains: list[ChainResult], legacy: Verdict | None, legacy_unread: bool) -> Verdict:
    """Blocked if any chain (or the legacy rules) blocks; allowed only if all accept."""
    for result in chains:
        if result.verdict.outcome == "blocked":
            return result.verdict
    if legacy is not None and legacy.outcome == "blocked":
        return legacy
    for result in chains:
        if result.verdict.outcome == "unknown":
            return result.verdict
    if legacy is not None:
        return unknown(
            "iptables-legacy",
            "iptables-legacy rules are loaded next to the nf_tables rules; the doctor does not "
            f"combine the two (the legacy rules alone: {legacy.outcome}, {legacy.reason})",
            legacy.rule_text,
        )
    if legacy_unread:
        return unknown(
            "iptables-legacy",
            "iptables-save says iptables-legacy tables are present, but their rules were not "
            "read (run iptables-legacy-save)",
        )
    if not chains:
        return Verdict(
            "allowed", None, "linux", "no firewall chain filters incoming packets on this host"
        )
    if len(chains) == 1:
        return chains[0].verdict
    texts = [r.verdict.rule_text for r in chains if r.verdict.rule_text]
    return Verdict(
        "allowed",
        "accept",
        "; ".join(r.verdict.source for r in chains),
        f"all {len(chains)} input chains accept it: "
        + "; ".join(f"[{r.chain}] {r.verdict.reason}" for r in chains),
        "\n".join(texts) if texts else None,
    )


def _firewalld_zone(reports: Sequence[FamilyReport]) -> str | None:
    """The firewalld zone the packets went through, from the chain names they passed."""
    for report in reports:
        for source in report.sources:
            for chain in source.evaluation.chains:
                if "firewalld" not in chain.chain and "INPUT_ZONES" not in chain.trail:
                    continue
                for name in chain.trail:
                    match = FIREWALLD_ZONE_CHAIN.match(name)
                    if match:
                        return match.group(1)
    return None
