"""What a lanchat server announces over mDNS and how an announcement is read back, pure: the
service type, the TXT keys, the instance name, and parsing a ServiceInfo-like record into a
Server. Nothing here opens a socket or imports zeroconf (docs/discovery.md)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from lanchat.netinfo import host_port
from lanchat.protocol import DEFAULT_PORT, PROTOCOL_VERSION, clean_text, room_problem
from lanchat.tls.fingerprint import format_fingerprint, parse_fingerprint

SERVICE_TYPE = "_lanchat._tcp.local."
# TXT keys (docs/discovery.md): short, because every answer carries them.
TXT_PROTOCOL = "protocol"  # wire protocol version, a positive integer
TXT_ROOM = "room"  # the room name, as `serve --room` gave it
TXT_VERSION = "version"  # the lanchat version of the server, free text
TXT_PASSWORD = "password"  # noqa: S105  "1": joining needs a password (serve --password-file)
TXT_WEB = "web"  # the chat page's path on the same port ("/"); absent: no page (serve --no-web)
# The room's history id when relays share it through a backplane (serve --backplane): servers
# with the same room and group are relays of one room. Absent: a room of its own.
TXT_GROUP = "group"
_GROUP = re.compile(r"[0-9a-f]{1,32}")
TXT_TLS = "tls"  # "1": the relay takes TLS on its port (serve --tls); absent or "0": plain only
TXT_FINGERPRINT = "fp"  # with tls=1: its key's fingerprint (saves typing; proves nothing)

# A DNS label holds 63 bytes; zeroconf appends "-N" when it renames on a clash.
MAX_INSTANCE_BYTES = 56
MAX_HOST_BYTES = 20  # of the instance name; the room gets the rest
MAX_VERSION_CHARS = 40
MAX_PROTOCOL = 9999
_HOST_LABEL = re.compile(r"[^A-Za-z0-9-]+")
_TARGET_SUFFIX = re.compile(r"-[0-9a-f]{6}$")


MAX_WEB_PATH_CHARS = 64


def txt_properties(
    room: str,
    version: str,
    *,
    password: bool = False,
    web: str | None = None,
    fingerprint: str | None = None,
    group: str | None = None,
) -> dict[str, str]:
    """The TXT record of a server (`web`: the path of its chat page, when it serves one;
    `fingerprint`: its TLS key's, when it takes TLS; `group`: the room's history id on a
    backplane)."""
    web_key = {TXT_WEB: web} if web is not None else {}
    tls_keys = {TXT_TLS: "1", TXT_FINGERPRINT: fingerprint} if fingerprint is not None else {}
    group_key = {TXT_GROUP: group} if group is not None else {}
    return {
        TXT_PROTOCOL: str(PROTOCOL_VERSION),
        TXT_ROOM: room,
        TXT_VERSION: version,
        TXT_PASSWORD: "1" if password else "0",
        **web_key,
        **tls_keys,
        **group_key,
    }


def host_label(hostname: str) -> str:
    """A hostname as one DNS label for the SRV target: 'Ana's PC.home' -> 'Ana-s-PC'."""
    label = _HOST_LABEL.sub("-", hostname.split(".", 1)[0]).strip("-")
    return _cut_utf8(label, MAX_HOST_BYTES).strip("-") or "lanchat"


def srv_target(hostname: str, node: int) -> str:
    """The SRV target: the host label plus 6 hex digits of this machine's node id (its MAC).

    Two PCs with the same name (cloned classroom PCs) must not claim the same '<name>.local.'
    address records, or clients would get both PCs' addresses under either server.
    """
    return f"{host_label(hostname)}-{node & 0xFFFFFF:06x}.local."


def instance_name(room: str, hostname: str, port: int = DEFAULT_PORT) -> str:
    """The service instance name: room plus host, 'lobby on h1' ('lobby on h1:7421' on another
    port than the default, so two servers of a room on one PC never clash).

    Dots would split the name into DNS labels, so they become '-'; the room is shortened so that
    the whole name leaves zeroconf room to append '-2' on a clash (PCs with the same name).
    """
    host = _cut_utf8(clean_text(hostname.split(".", 1)[0]).strip(), MAX_HOST_BYTES) or "lanchat"
    suffix = f" on {host}" + (f":{port}" if port != DEFAULT_PORT else "")
    room_part = clean_text(room).replace(".", "-").strip() or "lanchat"
    room_part = _cut_utf8(room_part, MAX_INSTANCE_BYTES - len(suffix.encode())).rstrip()
    return room_part + suffix


def _cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of text that is at most `limit` bytes in UTF-8."""
    return text.encode()[:limit].decode("utf-8", "ignore")


class ServiceRecord(Protocol):
    """What parse_service reads: the attributes zeroconf's ServiceInfo has."""

    @property
    def name(self) -> str: ...

    @property
    def server(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...

    @property
    def properties(self) -> Mapping[bytes, bytes | None]: ...

    def parsed_scoped_addresses(self) -> list[str]: ...


@dataclass(frozen=True)
class Server:
    """A lanchat server that answered on the network."""

    name: str  # the instance name, unique on the network: 'lobby on h1', 'lobby on h1-2'
    room: str
    host: str
    addresses: tuple[str, ...]  # usable ones only; IPv6 link-local carry their scope ('%eth0')
    port: int
    protocol: int
    version: str  # '' when the server did not say
    password: bool
    web: str | None = None  # the chat page's path (TXT `web`); None: it serves none
    tls: bool = False  # it takes TLS on its port (TXT `tls`)
    fingerprint: str | None = None  # its key's fingerprint as announced (TXT `fp`), grouped
    group: str | None = None  # TXT `group`: relays with the same room and group are one room

    def web_url(self, address: str) -> str | None:
        """The chat page a browser opens at one of the addresses: 'http://10.0.0.5:7420/'
        ('https://...' on a server with TLS)."""
        if self.web is None:
            return None
        return f"{'https' if self.tls else 'http'}://{self.endpoint(address)}{self.web}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["addresses"] = list(self.addresses)
        return d

    def endpoint(self, address: str) -> str:
        """'10.0.0.5:7420' or '[fe80::1%eth0]:7420'."""
        return host_port(address, self.port)


def parse_service(record: ServiceRecord) -> Server | None:
    """The Server a record announces, or None when it is malformed or not a lanchat server."""
    if not record.name.lower().endswith("." + SERVICE_TYPE.lower()):
        return None
    instance = record.name[: -len(SERVICE_TYPE) - 1]
    port = record.port
    if not instance or not isinstance(port, int) or not 0 < port < 65536:
        return None
    txt = _decode_txt(record.properties)
    if txt is None:
        return None
    protocol_text = txt.get(TXT_PROTOCOL) or ""
    room = txt.get(TXT_ROOM)
    password_flag = txt.get(TXT_PASSWORD, "0")
    if not (protocol_text.isascii() and protocol_text.isdigit()):
        return None
    protocol = int(protocol_text)
    if not 0 < protocol <= MAX_PROTOCOL or room is None or room_problem(room) is not None:
        return None
    if password_flag not in ("0", "1"):
        return None
    addresses = usable_addresses(record.parsed_scoped_addresses())
    if not addresses:
        return None
    return Server(
        name=clean_text(instance),
        room=room,
        host=_host_of(record.server, instance),
        addresses=addresses,
        port=port,
        protocol=protocol,
        version=clean_text(txt.get(TXT_VERSION) or "")[:MAX_VERSION_CHARS],
        password=bool(int(password_flag)),
        web=_web_path(txt.get(TXT_WEB)),
        tls=txt.get(TXT_TLS) == "1",
        fingerprint=_fingerprint(txt.get(TXT_FINGERPRINT)) if txt.get(TXT_TLS) == "1" else None,
        group=_group(txt.get(TXT_GROUP)),
    )


def _fingerprint(value: str | None) -> str | None:
    """A fingerprint from TXT `fp`, as lanchat shows it; None when it is not one."""
    digest = parse_fingerprint(value) if value else None
    return format_fingerprint(digest) if digest is not None else None


def _group(value: str | None) -> str | None:
    """A backplane group from TXT `group`: lowercase hex (an epoch), else none."""
    return value if value is not None and _GROUP.fullmatch(value) else None


def _web_path(value: str | None) -> str | None:
    """A page path from TXT `web`: an absolute path of printable ASCII, else none."""
    if value and value.startswith("/") and value.isascii() and value.isprintable():
        return value[:MAX_WEB_PATH_CHARS] if " " not in value else None
    return None


def _decode_txt(properties: Mapping[bytes, bytes | None]) -> dict[str, str] | None:
    """TXT keys and values as text; None if any is not UTF-8 (a foreign record)."""
    txt: dict[str, str] = {}
    try:
        for key, value in properties.items():
            txt[key.decode().lower()] = "" if value is None else value.decode()
    except (UnicodeDecodeError, AttributeError):
        return None
    return txt


def _host_of(server: str | None, instance: str) -> str:
    """The host from the SRV target ('h1-0a0b0c.local.' -> 'h1'), else from the instance."""
    if server:
        host = server.rstrip(".")
        if host.lower().endswith(".local"):
            host = host[: -len(".local")]
        host = _TARGET_SUFFIX.sub("", host)
        if host:
            return clean_text(host)
    _, sep, host = instance.rpartition(" on ")
    return clean_text(host) if sep and host else "?"


def usable_addresses(addresses: list[str]) -> tuple[str, ...]:
    """Addresses a client can connect to: no loopback, multicast, unspecified, or unscoped
    link-local IPv6 (learned over IPv4, it has no interface: docs/discovery.md, "IPv6 link-local
    answers"); duplicates dropped."""
    seen: dict[str, None] = {}
    for text in addresses:
        bare, _, scope = text.partition("%")
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            continue
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            continue
        if ip.version == 6 and ip.is_link_local and not scope:
            continue
        seen.setdefault(f"{ip}%{scope}" if ip.version == 6 and scope else str(ip))
    return tuple(seen)


AdvertState = Literal["off", "starting", "advertised", "not-advertised", "failed"]


@dataclass(frozen=True)
class Advertisement:
    """Whether and under which name a server is announced on the LAN, and if not, why."""

    state: AdvertState
    name: str | None = None  # the instance name after any clash renaming: 'lobby on h1-2'
    addresses: tuple[str, ...] = ()
    message: str | None = None  # why it is not advertised, in words

    @property
    def advertised(self) -> bool:
        return self.state == "advertised"

    def to_dict(self) -> dict[str, Any]:
        return {
            "advertised": self.advertised,
            "state": self.state,
            "name": self.name,
            "addresses": list(self.addresses),
            "message": self.message,
        }
