"""Lines in: the limits, line framing, text cleaning, the name rules and JSON lines."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from lanchat import __version__

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 4096  # longest line before its "\n"; like h11's named buffer limit
MAX_NAME_CHARS = 24
DETECT_SECONDS = 0.25  # how long a silent new client may take before it is greeted as raw
RESERVED_NAMES = frozenset(
    {"server", "lanchat", "system", "admin", "root", "everyone", "all", "nobody", "me"}
)
SOFTWARE = f"lanchat {__version__}"
STATUS_VERSION = 1  # of the status documents (lanchat/protocol/status.py, docs/status.md)

# web: a browser over a WebSocket (lanchat/web/); it speaks the lanchat frames, one per message
ClientKind = Literal["lanchat", "raw", "web"]


class FrameError(ValueError):
    """A line from a client that cannot be used; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineTooLong:
    """Stands in the decoder's output for a line that exceeded the limit and was dropped."""

    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit}


class LineDecoder:
    """Splits a byte stream into lines; an overlong line becomes one LineTooLong, then resyncs."""

    closing = False  # a line stream never says goodbye by itself (a WebSocket's close does)

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._partial = b""
        self._discarding = False  # inside an overlong line: drop bytes up to its newline

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """Return the complete lines in `data` (without "\\n" or a trailing "\\r")."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        pieces = data.split(b"\n")
        tail = pieces.pop()  # the unfinished rest after the last newline ("" if none)
        out: list[bytes | LineTooLong] = []
        for piece in pieces:
            if self._discarding:
                self._discarding = False  # this newline ends the overlong line already reported
            elif len(piece) > self.max_line + 1 or (
                len(piece) == self.max_line + 1 and not piece.endswith(b"\r")
            ):
                out.append(LineTooLong(self.max_line))
            else:
                out.append(piece[:-1] if piece.endswith(b"\r") else piece)
        if self._discarding:
            return out
        if len(tail) > self.max_line + 1:
            out.append(LineTooLong(self.max_line))
            self._discarding = True
        else:
            self._partial = tail
        return out

    def finish(self) -> list[bytes]:
        """At end of stream: the last line even without its newline (nothing typed is lost)."""
        rest, self._partial = self._partial, b""
        if self._discarding or not rest:
            return []
        return [rest[:-1] if rest.endswith(b"\r") else rest]


# --- text and names --------------------------------------------------------------------------

# Terminal escape sequences as a whole (so no "[31m" debris stays behind), then single controls.
# A string sequence (OSC, DCS, SOS, PM, APC) goes whole only up to its terminator (BEL, ST); one
# without a terminator loses just its introducer and a bounded parameter part ("0;"), so the
# text after it stays visible instead of being swallowed to the end of the line.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI ... final byte
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC/DCS/SOS/PM/APC ... BEL or ST
    r"|\x1b[\]PX^_][0-?]{0,16}"  # the same, unterminated: the introducer and its parameters
    r"|\x1b[ -~]?"  # two-byte escapes (and a lone ESC)
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # the one-character C1 CSI
)
# What can act on a terminal or hide or move text: C0 and C1 controls, DEL, and every format
# (Cf) character but the joiners ZWNJ/ZWJ (U+200C/D, needed by Persian, Indic scripts and emoji
# sequences): the soft hyphen, bidi marks (U+061C, U+200E/F) and overrides (U+202A-E, U+2066-9),
# ZWSP, word joiner and invisible operators (U+2060-4), deprecated format characters, the BOM,
# interlinear annotations, tags; and the line and paragraph separators (U+2028/9, shown as
# spaces). tests/test_protocol.py holds this list to unicodedata's Cf category.
_FORMAT_BMP = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
_FORMAT_ASTRAL = (
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_FORMAT = _FORMAT_BMP + _FORMAT_ASTRAL
_CONTROLS = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_FORMAT}]")
_SPACES = str.maketrans("\t\n\r\u2028\u2029", "     ")  # line breaks in a text become spaces
# The question "anything to clean?" is asked in steps because astral ranges in a class cost a
# test per range for every character (~3x the scan): a BMP-only class answers for ASCII text
# (str.isascii() is a flag in CPython) and for most other text; the astral format characters
# are looked for only in text that has astral characters (emoji, mostly).
_NEEDS_CLEANING = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_FORMAT_BMP}]")
_ANY_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_NEEDS_CLEANING_ASTRAL = re.compile(f"[{_FORMAT_ASTRAL}]")


def clean_text(text: str) -> str:
    """Remove what could act on a terminal or hide text: escapes, controls, format characters."""
    if _NEEDS_CLEANING.search(text) is None and (  # the common case costs one scan
        text.isascii()
        or _ANY_ASTRAL.search(text) is None
        or _NEEDS_CLEANING_ASTRAL.search(text) is None
    ):
        return text
    text = _ESCAPE_SEQUENCES.sub("", text).translate(_SPACES)
    return _CONTROLS.sub("", text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape that may denote a surrogate; json.loads pairs valid ones into one character.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def valid_text(text: str) -> str:
    """`text` with every lone surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _valid_strings(value: Any) -> Any:
    """Every string in a decoded JSON value made valid (keys included)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_strings(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): _valid_strings(v) for k, v in value.items()}
    return value


UTF8_BOM = b"\xef\xbb\xbf"  # Windows tools (PowerShell, Notepad) may start their output with it


def without_bom(line: bytes) -> bytes:
    """`line` without a leading UTF-8 byte order mark."""
    return line[len(UTF8_BOM) :] if line.startswith(UTF8_BOM) else line


def decode_line(line: bytes) -> str:
    """UTF-8 with replacement: a bad byte is shown as U+FFFD, never an error."""
    return line.decode("utf-8", "replace")


# Letters that isalnum() accepts but that show as nothing (Hangul fillers): a name of them would
# be an invisible name.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_NAME_MARKS = str.maketrans("", "", "-_.")
_MAX_FOLDS = 4  # folding converges in one or two rounds; the bound keeps a pathological name cheap


def _fold(name: str) -> str:
    """One round of the key: NFKC, case fold, then the UTS #39 skeleton (NFD, map, NFD)."""
    from lanchat.protocol.confusables import CONFUSABLES  # 1700 rows: loaded on the first name

    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", name).casefold())
    skeleton = "".join(CONFUSABLES.get(ch, ch) for ch in folded)
    # The prototypes may be capitals ("0" -> "O"), so the result is folded again.
    return unicodedata.normalize("NFD", skeleton).casefold().translate(_NAME_MARKS)


def name_key(name: str) -> str:
    """What two names must not share: `name` without case, width, font style, look-alike letters
    (Cyrillic "\u0430" is Latin "a", "0" is "o", "1" is "l", "rn" is "m") or "-_."."""
    key = name
    for _ in range(_MAX_FOLDS):
        folded = _fold(key)
        if folded == key:
            break
        key = folded
    return key


def name_problem(name: str) -> FrameError | None:
    """Why `name` cannot be used as a chat name, or None if it can."""
    if not name or len(name) > MAX_NAME_CHARS:
        return FrameError(
            "bad-name", f"A name has 1 to {MAX_NAME_CHARS} characters; {name!r} has {len(name)}."
        )
    if (
        not name[0].isalnum()
        or not all(ch.isalnum() or ch in "-_." for ch in name)
        or not _INVISIBLE_LETTERS.isdisjoint(unicodedata.normalize("NFKC", name))
    ):
        return FrameError(
            "bad-name",
            # repr() shows control characters escaped ('ev\x1b[31mil'), never applied, and
            # never dropped: without the escape the name shown would look valid ('evil').
            f"{name!r} is not a valid name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit.",
        )
    reserved = _reserved_keys().get(name_key(name))
    if reserved is not None:
        looks = "" if name.casefold() == reserved else f" looks like {reserved!r}, which"
        return FrameError(
            "name-reserved", f"The name {name!r}{looks} is reserved. Pick another one."
        )
    return None


@functools.cache
def _reserved_keys() -> dict[str, str]:
    """Each reserved name by its key (on first use: the look-alike table loads lazily)."""
    return {name_key(reserved): reserved for reserved in RESERVED_NAMES}


def name_taken(wanted: str, holder: str) -> str:
    """The sentence that refuses `wanted` because `holder` (the same key) is here."""
    if wanted.casefold() == holder.casefold():
        return f"That name is taken: {holder}."
    return f"That name looks like {holder!r}, who is here."


MAX_ROOM_CHARS = 40


def room_problem(room: str) -> str | None:
    """Why `room` cannot name a room (it is shown to everyone and advertised), or None."""
    if not room.strip() or len(room) > MAX_ROOM_CHARS:
        return f"A room name has 1 to {MAX_ROOM_CHARS} characters."
    if clean_text(room) != room:
        return "A room name cannot contain control characters."
    return None


def suggest_name(wanted: str) -> str:
    """Turn a login name such as 'John Doe' into a valid chat name ('John-Doe')."""
    chars = [ch if ch.isalnum() or ch in "-_." else "-" for ch in wanted]
    name = "".join(chars).lstrip("-_.")[:MAX_NAME_CHARS].rstrip("-_.")
    return name if name and name_problem(name) is None else "guest"


# --- JSON lines, both directions ------------------------------------------------------------


def json_line(obj: dict[str, Any]) -> bytes:
    """One compact JSON line (UTF-8, not ASCII-escaped)."""
    # "replace": a frame's encoding can never raise (parse_json_object keeps strings valid)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "replace") + b"\n"


def parse_json_object(line: bytes) -> dict[str, Any]:
    """One JSON object with a string "type", or FrameError."""
    line = without_bom(line)  # json.loads refuses a BOM; a Windows tool may send one
    try:
        obj = json.loads(decode_line(line))
        # Raw bytes are decoded with replacement, but a "\ud800" escape makes a lone surrogate
        # that would make every later encode() raise (the frame in history locked newcomers
        # out). The scan runs only on lines with such an escape; valid pairs stay as they are.
        if _SURROGATE_ESCAPE.search(line) is not None:
            obj = _valid_strings(obj)
    except (ValueError, RecursionError):
        raise FrameError("bad-frame", "Not a JSON line; send one JSON object per line.") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameError("bad-frame", 'Each line must be a JSON object with a "type".')
    return obj
