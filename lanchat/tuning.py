"""Every tuning constant of the relay, beside the measurement that justifies it.

These trade CPU, latency and memory against each other; none changes what a client sees. Each
figure below was measured with `scripts/bench` on the 2-core machine; docs/performance.md has the
runs (the older ones under "How lanchat got here"). Change one only with a before/after series
(docs/benchmarking.md: `--lanchat-tree` runs the other build with the same generator).
Limits that clients can see (line length, backlog, linger) live with their owners instead:
lanchat/protocol/lines.py and lanchat/fanout.py.
"""

from __future__ import annotations

# --- reading (lanchat/connection.py) ---------------------------------------------------------
# recv(n) holds an n-byte buffer while it waits, so thousands of idle readers wait with a small
# one; a read that fills it means the sender has more to say, and the next read takes more.
# 256 bytes cost ~10 % more CPU per delivery at sat100 (bursts of eight 64-byte lines took two
# reads); 64 KiB buffers held by 5000 blocked readers were most of the memory ("Memory at 5000
# clients").
RECV_BYTES = 512
RECV_BUSY_BYTES = 16384

# Stack of each thread `lanchat serve` starts (a process-wide setting made by serve alone, see
# lanchat/serving.py): thousands of reader threads reserve address space, not memory (8 KB of
# each stack is resident here), and json's recursion needs room. Smaller stacks did not lower
# the resident memory ("Memory at 5000 clients").
THREAD_STACK_BYTES = 1024 * 1024

# --- sending (lanchat/fanout.py) -------------------------------------------------------------
# Passes a publishing reader runs itself before the writer thread takes over. Running the pass
# in the publishing thread saves a wake-up of another thread (~40 µs per message; lat100 p50
# 0.257 -> 0.218 ms); after two, a busy room's reader goes back to reading.
INLINE_PASSES = 2
# In a busy room the next pass waits this long so that more frames share each send(): 14 lines
# per send without it, 28 with it; sat100 0.25 -> 0.19 µs of CPU per delivery (since bb9d138).
# A quiet room never waits.
COALESCE_SECONDS = 0.002
# ... and only while the writer is short of CPU: when the room's frames, each in a pass of its
# own, would keep the passes busy this share of a core (frames/s, times the CPU time one pass to
# everyone takes, measured over DEMAND_WINDOW_SECONDS; holding changes neither much, so a hold
# does not feed itself). The rule before held after any pass that found two frames, and a hold
# makes the next pass find several: at 100 clients and 1000 lines/s the room held for ever with
# a core to spare (p50 1.46 ms against ncat's 0.28; issue 15). Below this the frames go out as
# they come, at the price of a send() per frame (docs/performance.md, "When a hold pays"). That
# load's demand measured 0.43-0.6 on the shared 2-core machine: at 0.5 it held in some runs and
# not in others; 0.7 leaves the readers and the log a third of the core before frames wait.
HOLD_DEMAND = 0.7
DEMAND_WINDOW_SECONDS = 0.1
# ... but only a room this big: a pass to a handful of clients costs less than the wake-up the
# hold adds (10 clients, one sender: 2.96 against 1.68 µs of CPU per delivery, p50 latency
# 2.25 against 0.15 ms; "A hold only in a big room").
HOLD_MIN_CLIENTS = 32
# Every this many frames, forget the ones every client has been sent (cost: one min() over
# the clients; memory: the log holds at most this many frames more than the slowest needs).
TRIM_EVERY = 1024

# --- where threads run (lanchat/cores.py) ----------------------------------------------------
# The keeper looks this often; at BUSY_HOLDS holds in one look (a busy room makes ~100 in
# 0.5 s) it holds the threads on one core, and after QUIET_CHECKS quiet looks lets them go
# ("One core only while busy").
KEEPER_CHECK_SECONDS = 0.5
KEEPER_BUSY_HOLDS = 10
KEEPER_QUIET_CHECKS = 2
