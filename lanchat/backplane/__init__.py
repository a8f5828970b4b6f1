"""Several relays, one conversation: a room carried by relays on different links, ordered by a
Redis stream (`lanchat serve --backplane redis://HOST:PORT/DB`). The only package importing
redis (redis-py).

    entries.py  pure: the room's keys, one stream entry (encode, decode), the dedupe of retried
                appends (run + lseq), the names hash's values, relay names, the URL
    outbox.py   pure: our events on their way through the stream (lseq, sent, shown, back)
    scripts.py  the Lua scripts that must run atomically in Redis (append with seq, names)
    stream.py   the Redis commands of the room's stream: history at start, XREAD BLOCK, appends
    presence.py the Redis commands of who is where: names given and freed, heartbeats
    link.py     Backplane: the reader (reads, delivers) and writer (appends, names, heartbeats)
                threads, up and down, reconnects with backoff, what an outage does

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
