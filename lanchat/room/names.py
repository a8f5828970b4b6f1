"""Who holds which name, and the rules for choosing and changing one.

Names are compared by their key (lanchat/protocol: case, width, font style and look-alike
letters do not count), so `ana`, `ANA` and a Cyrillic look-alike of `ana` are one name. A
client without a name is `guest-N`; a wanted name that is taken gets a suffix (`ana-2`) unless
the client asked for that exact name. Pure, owned by the room.
"""

from __future__ import annotations

import itertools

from lanchat.protocol import MAX_NAME_CHARS, Hello, name_key, name_problem, name_taken
from lanchat.room.outputs import Member, Refused

MAX_NAME_SUFFIX = 999  # alice-2 ... alice-999, then the name counts as taken


class Names:
    """The members by name key."""

    def __init__(self) -> None:
        self._holders: dict[str, Member] = {}
        self._guest_numbers = itertools.count(1)

    def add(self, member: Member) -> None:
        self._holders[name_key(member.name)] = member

    def remove(self, member: Member) -> None:
        self._holders.pop(name_key(member.name), None)

    def find(self, name: str) -> Member | None:
        """Who holds `name`, or a look-alike of it (an operator types `bob` for `Bob`)."""
        return self._holders.get(name_key(name))

    def clear(self) -> None:
        self._holders.clear()

    def choose(self, hello: Hello | None, *, ignoring: Member | None = None) -> str:
        """The name a client gets (Refused says why it gets none); `ignoring` a member whose
        own name counts as free (a late hello choosing again)."""

        def free(name: str) -> bool:
            holder = self._holders.get(name_key(name))
            return holder is None or holder is ignoring

        if hello is None or hello.name is None:
            while True:
                name = f"guest-{next(self._guest_numbers)}"
                if free(name):
                    return name
        problem = name_problem(hello.name)
        if problem is not None:
            raise Refused(problem.code, problem.message)
        if free(hello.name):
            return hello.name
        if hello.exact:
            holder = self._holders[name_key(hello.name)]
            raise Refused("name-taken", name_taken(hello.name, holder.name))
        for n in range(2, MAX_NAME_SUFFIX + 1):
            suffix = f"-{n}"
            name = hello.name[: MAX_NAME_CHARS - len(suffix)] + suffix
            if free(name):
                return name
        raise Refused("name-taken", f"The name {hello.name} and its variants are taken.")

    def why_not(self, member: Member, new: str) -> tuple[str, str] | None:
        """(code, message) if `member` cannot be called `new`, else None."""
        problem = name_problem(new)
        if problem is not None:
            return problem.code, problem.message
        holder = self._holders.get(name_key(new))
        if holder is not None and holder is not member:
            return "name-taken", f"{name_taken(new, holder.name)} Pick another one with /nick NAME."
        return None

    def rename(self, member: Member, new: str) -> None:
        self.remove(member)
        member.name = new
        self.add(member)
