"""The defaults a user can change on the command line, each defined once.

Standard library only and imported by `lanchat --help`, which shows them, so it must stay cheap:
constants, no imports. The relay, the room, `lanchat serve` and the docs use these names
(tests/test_defaults.py checks that the docs agree).
"""

from __future__ import annotations

DEFAULT_PORT = 7420  # TCP, for the relay, `join`, `status` and `doctor`
DEFAULT_ROOM = "lobby"
DEFAULT_HISTORY = 50  # chat messages replayed to a newcomer
DEFAULT_MAX_CLIENTS = 0  # people at once; 0: as many as the open-files limit allows
DEFAULT_KEEPALIVE_SECONDS = 60.0  # a silent, vanished peer is noticed within about this long
# `lanchat join`: after half this long without a byte from the server it sends a ping; nothing
# back within the other half and the server is taken as gone (a PC switched off, a stopped
# process: no FIN, no reset). One small ping per 10 s of silence.
DEFAULT_JOIN_KEEPALIVE_SECONDS = 20.0
# Lines per second one client may send before the relay reads less from it (flow control,
# lanchat/connection.py); a person types a few, a pasted block is a burst. 0: no limit.
DEFAULT_MAX_RATE = 200.0
# Connections one address may have open at once (loopback excepted; lanchat/admission.py). 0: no
# limit. A classroom PC needs one or two; a forgotten script or an attacker needs many.
DEFAULT_MAX_PER_ADDRESS = 10
