"""The room's memory, sans-IO: the bounded history of chats, its epoch, and what a reconnecting
client missed.

The history has an `epoch`, a random id made when it starts (or restored with it from a store,
lanchat/store.py). A lanchat hello may carry the epoch and the last seq its client saw; the
greeting then replays only the chats after that seq (O(missed), never O(room)), and a `Gap`
says what cannot be replayed: chats pushed out of the history, or everything when the epoch
differs. Only chats (messages and actions) are kept and replayed; joins, leaves and renames
are not (the greeting's who-list says who is here). The room (rules.py) owns one History and
calls it under the hub lock, like everything else of the room.

With a backplane (lanchat/backplane/) the history holds the chats in the stream's order. While
the backplane cannot be reached, this relay's own chats are shown here at once and held apart
(`hold`): they have no seq of the stream's yet. They are replayed to newcomers after the others,
and to anyone resuming meanwhile (who may have seen some of them already: seen twice, never
missed); when the stream takes them they leave the held list (`release`) and are remembered in
their place in the order (docs/reliability.md, "Several relays").
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

from lanchat.protocol import Chat, Gap, Resume


@dataclass(frozen=True, slots=True)
class Past:
    """Where a room's history starts: kept from an earlier run (a store), or new."""

    epoch: str
    seq: int = 0  # the last seq given out
    chats: tuple[Chat, ...] = ()  # the newest chats, oldest first
    trimmed: int = 0  # the newest chat seq no longer kept (0: none)


def new_epoch() -> str:
    """A fresh id for a history that starts now."""
    return secrets.token_hex(8)


class History:
    """The newest `size` chats of one epoch, and the newest seq it no longer holds."""

    def __init__(self, size: int, past: Past) -> None:
        self.epoch = past.epoch
        self.trimmed = past.trimmed
        self._chats: deque[Chat] = deque(maxlen=size)
        self._held: deque[Chat] = deque()  # shown here while the backplane was away
        for chat in past.chats:
            self.remember(chat)

    @property
    def size(self) -> int:
        """How many chats it keeps."""
        return self._chats.maxlen or 0

    def __len__(self) -> int:
        return len(self._chats) + len(self._held)

    def __iter__(self) -> Iterator[Chat]:
        yield from self._chats
        yield from self._held

    def hold(self, chat: Chat) -> None:
        """A chat shown here before the stream put it in order (the backplane is away)."""
        self._held.append(chat)

    def release(self) -> None:
        """The oldest held chat reached the stream (own chats come back in the order they
        were said); it is remembered in its place by remember()."""
        if self._held:
            self._held.popleft()

    def remember(self, chat: Chat) -> None:
        """Keep a chat, noting the newest one this lets go."""
        chats = self._chats
        if chats.maxlen == 0:
            self.trimmed = chat.seq
            return
        if len(chats) == chats.maxlen:
            self.trimmed = chats[0].seq
        chats.append(chat)

    def replay(
        self, resume: Resume | None, seq: int, now: float
    ) -> tuple[tuple[Chat, ...], Gap | None]:
        """The chats to replay to a newcomer (all of them) or to a client resuming from
        `resume` (those after its seq, walked newest first: O(missed)), and what cannot be
        replayed. `seq` is the room's newest seq (a resume past it is from another history)."""
        held = tuple(replace(chat, history=True) for chat in self._held)
        if resume is None or resume.epoch != self.epoch or resume.seq > seq:
            every = tuple(replace(chat, history=True) for chat in self._chats) + held
            if resume is None:
                return every, None
            message = (
                "The server lost its history since you were last here (it restarted without "
                "--store): messages sent while you were away may be missing."
            )
            return every, Gap(seq, now, "history-lost", 1, self.trimmed, message)
        missed: list[Chat] = []
        for chat in reversed(self._chats):
            if chat.seq <= resume.seq:
                break
            missed.append(replace(chat, history=True))
        missed.reverse()
        missed += held  # perhaps seen before: twice rather than never (see the top)
        gap = None
        if self.trimmed > resume.seq:
            first, last = resume.seq + 1, self.trimmed
            message = (
                f"Messages from while you were away (seq {first}-{last}) are no longer kept "
                "by the server; they are missing here."
            )
            gap = Gap(seq, now, "history-trimmed", first, last, message)
        return tuple(missed), gap
