"""`lanchat status`: the relay's sockets, merged from two sources. The relay itself says who is
behind each connection (it answers a status query only to its own computer); the operating
system's socket table (psutil) adds the TCP state and the sockets the relay no longer tracks
(CLOSE_WAIT, TIME_WAIT). collect_status() returns data and never prints."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from lanchat.client import query_relay
from lanchat.netinfo import endpoint_text
from lanchat.protocol import DEFAULT_PORT, STATUS_VERSION
from lanchat.protocol.status import (
    BackplaneStatus,
    RelayConnection,
    RelayModeration,
    RelayServer,
    RelayStatus,
)

_STATE_NOTES = {
    "TIME_WAIT": "closed; the OS keeps the port pair reserved for a minute or two",
    "CLOSE_WAIT": "the client hung up; the relay has not closed its side yet",
    "FIN_WAIT1": "the relay hung up; waiting for the client to acknowledge",
    "FIN_WAIT2": "the relay hung up; waiting for the client to close",
    "LAST_ACK": "both sides closed; the last acknowledgement is on its way",
    "SYN_RECV": "a client is connecting",
}


@dataclass(frozen=True)
class SocketRow:
    """One socket on the relay's port, with the person behind it when the relay knows."""

    proto: str  # "tcp" or "tcp6"
    local: str
    remote: str | None
    state: str  # LISTEN, ESTABLISHED, CLOSE_WAIT, ... or "?" when the OS did not say
    pid: int | None = None
    program: str | None = None
    name: str | None = None
    kind: str | None = None  # "lanchat", "raw" or "web" (a browser)
    client: str | None = None  # the program a lanchat client named in its hello; a browser's
    # name (from its User-Agent) for a web client
    since: float | None = None
    lines_in: int | None = None
    bytes_in: int | None = None
    frames_out: int | None = None
    bytes_out: int | None = None
    queue: int | None = None
    tls: bool | None = None  # it connected over TLS (serve --tls); None: not a tracked connection
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServerSummary:
    """The relay's own figures."""

    pid: int
    lanchat: str
    room: str
    port: int
    clients: int
    max_clients: int
    messages: int
    rate: float
    started: float
    uptime: float
    tls: bool = False  # serve --tls
    fingerprint: str | None = None  # the relay key's fingerprint, with TLS
    allow_plain: bool = True  # plain clients are let in too

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, relay: RelayServer) -> ServerSummary:
        """The summary of the relay's own figures."""
        return cls(
            pid=relay.pid,
            lanchat=relay.lanchat,
            room=relay.room,
            port=relay.port,
            clients=relay.clients,
            max_clients=relay.max_clients,
            messages=relay.messages,
            rate=relay.rate,
            started=relay.started,
            uptime=relay.uptime,
            tls=relay.tls,
            fingerprint=relay.fingerprint,
            allow_plain=relay.allow_plain,
        )


@dataclass(frozen=True)
class StatusReport:
    """Everything `lanchat status` shows, as data (schema: docs/status.md)."""

    port: int
    server: ServerSummary | None
    listening: tuple[SocketRow, ...]
    connections: tuple[SocketRow, ...]
    problem: str | None = None  # why there is no server summary
    notes: tuple[str, ...] = field(default=())  # what the OS did not tell us, and why
    # Operators, mutes, bans, the topic and the address rules (None: no relay answered).
    moderation: RelayModeration | None = None
    backplane: BackplaneStatus | None = None  # the link to the room's other relays, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATUS_VERSION,
            "port": self.port,
            "running": self.server is not None,
            "problem": self.problem,
            "server": self.server.to_dict() if self.server else None,
            "moderation": self.moderation.to_dict() if self.moderation else None,
            "listening": [row.to_dict() for row in self.listening],
            "connections": [row.to_dict() for row in self.connections],
            "notes": list(self.notes),
            "backplane": self.backplane.to_dict() if self.backplane is not None else None,
        }


@dataclass(frozen=True)
class _OsView:
    listening: list[Any]
    others: list[Any]
    notes: list[str]


def _os_sockets(port: int) -> _OsView:
    """The OS's TCP sockets whose local port is `port` (the relay's side of each connection)."""
    import psutil

    notes: list[str] = []
    try:
        conns = [c for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port]
    except (psutil.AccessDenied, PermissionError):
        return _OsView(
            [],
            [],
            [
                "The operating system did not let us read its socket table "
                "(on macOS that needs root): run `sudo lanchat status` to see "
                "TCP states and sockets the relay no longer tracks."
            ],
        )
    owned = (psutil.CONN_LISTEN, psutil.CONN_ESTABLISHED, psutil.CONN_CLOSE_WAIT)
    hidden = [c for c in conns if c.pid is None and c.status in owned]  # TIME_WAIT has no owner
    if hidden and _is_unprivileged():
        notes.append(
            "Some sockets belong to processes of other users, so the OS hides their "
            "program: run `sudo lanchat status` to see them."
        )
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN]
    others = [c for c in conns if c.status != psutil.CONN_LISTEN]
    return _OsView(listening, others, notes)


def _is_unprivileged() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() != 0


def _program(pid: int | None) -> str | None:
    import psutil

    if not pid:
        return None
    try:
        return str(psutil.Process(pid).name())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _at(address: Any) -> str:
    return endpoint_text((address.ip, address.port)) or ""


def _proto(conn: Any) -> str:
    return "tcp6" if conn.family == socket.AF_INET6 else "tcp"


def _query_targets(port: int, listening: list[Any]) -> list[tuple[str, int]]:
    """Where to ask: loopback first, then the exact addresses the relay is bound to."""
    targets = [("127.0.0.1", port), ("::1", port)]
    for conn in listening:
        ip = conn.laddr.ip
        if ip not in ("0.0.0.0", "::", "127.0.0.1", "::1"):
            targets.append((ip, conn.laddr.port))
    return targets


def collect_status(port: int = DEFAULT_PORT) -> StatusReport:
    """The relay on `port` of this computer, seen by itself and by the OS."""
    os_view = _os_sockets(port)
    document: RelayStatus | None = None
    problem = None
    failures: list[str] = []
    for host, target_port in _query_targets(port, os_view.listening):
        try:
            document = RelayStatus.from_dict(query_relay(host, target_port))
            break
        except (OSError, ValueError) as e:
            failures.append(f"{host}: {e}")
    if document is None:
        if os_view.listening:
            owner = _program(os_view.listening[0].pid)
            held = f" by {owner} (pid {os_view.listening[0].pid})" if owner else ""
            problem = (
                f"Something other than a lanchat server is listening on port {port}{held}; "
                f"it did not answer a status query."
            )
        else:
            problem = f"No lanchat server is running on port {port} on this computer."
    listening = tuple(
        SocketRow(
            proto=_proto(c),
            local=_at(c.laddr),
            remote=None,
            state="LISTEN",
            pid=c.pid,
            program=_program(c.pid),
        )
        for c in os_view.listening
    )
    connections = _merge(document, os_view.others)
    server = None
    if document is not None:
        server = ServerSummary.of(document.server)
        if not listening:  # the OS table was unreadable: the relay's word is all we have
            listening = (
                SocketRow(
                    proto="tcp",
                    local=f"{document.server.host}:{document.server.port}",
                    remote=None,
                    state="LISTEN",
                    pid=document.server.pid,
                    program="lanchat",
                ),
            )
    return StatusReport(
        port,
        server,
        listening,
        connections,
        problem,
        tuple(os_view.notes),
        document.moderation if document is not None else None,
        document.backplane if document is not None else None,
    )


def _merge(document: RelayStatus | None, os_rows: list[Any]) -> tuple[SocketRow, ...]:
    """One row per connection: the relay's facts joined to the OS's by (local, remote)."""
    relayed = document.connections if document is not None else ()
    known = {(c.local, c.remote): c for c in relayed}
    rows: list[SocketRow] = []
    for conn in os_rows:
        local = _at(conn.laddr)
        remote = _at(conn.raddr) if conn.raddr else None
        facts = known.pop((local, remote), None)
        rows.append(_row(_proto(conn), local, remote, conn.status, conn.pid, facts))
    for facts in known.values():  # the OS did not list it (unreadable table)
        rows.append(_row("tcp", facts.local or "", facts.remote, "?", None, facts))
    order = {"ESTABLISHED": 0, "CLOSE_WAIT": 1}
    rows.sort(key=lambda r: (order.get(r.state, 2), r.since or 0.0, r.remote or ""))
    return tuple(rows)


def _row(
    proto: str,
    local: str,
    remote: str | None,
    state: str,
    pid: int | None,
    facts: RelayConnection | None,
) -> SocketRow:
    if facts is None:
        untracked = _STATE_NOTES.get(state, "not a chat connection the relay tracks")
        return SocketRow(proto, local, remote, state, pid, _program(pid), note=untracked)
    note: str | None = "leaving: the relay is saying goodbye" if facts.state == "leaving" else None
    if note is None and state != "ESTABLISHED":
        note = _STATE_NOTES.get(state)
    return SocketRow(
        proto,
        local,
        remote,
        state,
        pid,
        _program(pid),
        name=facts.name,
        kind=facts.kind,
        client=facts.program or None,
        since=facts.connected_at,
        lines_in=facts.lines_in,
        bytes_in=facts.bytes_in,
        frames_out=facts.frames_out,
        bytes_out=facts.bytes_out,
        queue=facts.queue,
        tls=facts.tls,
        note=note,
    )
