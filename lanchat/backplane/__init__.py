"""Several relays, one conversation: a room carried by relays on different links, ordered by a
Redis stream (`lanchat serve --backplane redis://HOST:PORT/DB`). The only package importing
redis (redis-py).

    entries.py  pure: the room's keys, one stream entry (encode, decode), the dedupe of retried
                appends (run + lseq), the names hash's values, relay names, the URL
    outbox.py   pure: our events on their way through the stream (lseq, sent, shown, back)
    scripts.py  the Lua scripts that must run atomically in Redis (append with seq, names)
    link.py     the I/O: Backplane, the reader (XREAD BLOCK) and the writer (appends, names,
                heartbeats) threads, reconnects with backoff, outages

The hub (lanchat/hub.py) sees a Backplane as its Sequencer; docs/reliability.md ("Several
relays") says what one order, resume and an outage guarantee.
"""

from lanchat.backplane.entries import Address, default_relay_name, parse_address, relay_name_problem
from lanchat.backplane.link import DEFAULT_KEEP, Backplane

__all__ = [
    "DEFAULT_KEEP",
    "Address",
    "Backplane",
    "default_relay_name",
    "parse_address",
    "relay_name_problem",
]
