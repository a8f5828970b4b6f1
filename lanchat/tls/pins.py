"""The servers this computer trusts, by key: config_dir()/known_servers, like ssh's known_hosts.

One line per server, `HOST:PORT FINGERPRINT` (`[v6]:PORT` for IPv6), where the fingerprint is
its key's (lanchat/tls/fingerprint.py); '#' starts a comment, blank lines are fine, and a line
lanchat cannot read is left alone and skipped. The first TLS connection to a server pins its
key here; from then on a different key is refused (lanchat/tls/trust.py). People edit the file
by hand to forget a server whose key changed on purpose, so lines keep their place and their
numbers: the refusal names the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lanchat.paths import config_dir, write_private
from lanchat.tls.fingerprint import format_fingerprint, parse_fingerprint

KNOWN_SERVERS = "known_servers"
HEADER = (
    "# lanchat's pinned servers: HOST:PORT FINGERPRINT, one per line (the key of each\n"
    "# server this computer has joined over TLS). Delete a line to forget a server.\n"
)


@dataclass(frozen=True)
class Pin:
    """A server's pinned key, and where it is written down."""

    endpoint: str  # 'HOST:PORT' as the client wrote it ('[v6]:PORT')
    fingerprint: bytes
    path: Path
    line: int  # 1-based


class KnownServers:
    """The known_servers file (read on every lookup: another lanchat may have pinned since)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_dir(create=False) / KNOWN_SERVERS

    def lookup(self, endpoint: str) -> Pin | None:
        """The first pin for `endpoint` (case does not matter), or None."""
        wanted = _key(endpoint)
        for number, line in enumerate(self._lines(), start=1):
            entry = _parse(line)
            if entry is not None and _key(entry[0]) == wanted:
                return Pin(entry[0], entry[1], self.path, number)
        return None

    def pin(self, endpoint: str, fingerprint: bytes) -> Pin:
        """Add a line for `endpoint` at the end; OSError when the file cannot be written."""
        lines = self._lines() or HEADER.splitlines()
        lines.append(_line(endpoint, fingerprint))
        self._write(lines)
        return Pin(endpoint, fingerprint, self.path, len(lines))

    def replace(self, endpoint: str, fingerprint: bytes) -> Pin:
        """Put `fingerprint` in the place of every pin for `endpoint` (the first keeps its line,
        the others go); a new line when there was none. OSError when it cannot be written."""
        wanted = _key(endpoint)
        kept: list[str] = []
        at = 0
        for line in self._lines():
            entry = _parse(line)
            if entry is None or _key(entry[0]) != wanted:
                kept.append(line)
            elif not at:
                kept.append(_line(endpoint, fingerprint))
                at = len(kept)
        if not at:
            return self.pin(endpoint, fingerprint)
        self._write(kept)
        return Pin(endpoint, fingerprint, self.path, at)

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def _write(self, lines: list[str]) -> None:
        write_private(self.path, ("\n".join(lines) + "\n").encode("utf-8"))


def _line(endpoint: str, fingerprint: bytes) -> str:
    return f"{endpoint} {format_fingerprint(fingerprint)}"


def _parse(line: str) -> tuple[str, bytes] | None:
    """(endpoint, fingerprint) of a pin line; None for comments, blanks and lines it cannot
    read."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    endpoint, _, rest = text.partition(" ")
    fingerprint = parse_fingerprint(rest)
    return (endpoint, fingerprint) if endpoint and fingerprint is not None else None


def _key(endpoint: str) -> str:
    return endpoint.strip().lower()
