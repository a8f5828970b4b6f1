"""scripts/bench: its line format and accounting (pure), and one small real run per server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis_kit import redis_path

from conftest import ROOT, WAIT, lanchat_env, ncat_path
from scripts.benchkit.accounting import Accounting, Receiver
from scripts.benchkit.payload import MARK, PayloadFormat, Verdict, frame, sender_id
from scripts.benchkit.results import Load, percentile_ms
from scripts.benchkit.runner import sender_phases
from scripts.benchkit.servers import (
    BenchError,
    build_nodelay_shim,
    skipped_in_log,
    start_lanchat,
    start_ncat,
)
from scripts.benchkit.worker import WorkerConfig

BENCH = ROOT / "scripts" / "bench"
FMT = PayloadFormat(64)
T0 = 1_000_000_000_000  # a send time, ns

# The keys docs/benchmarking.md documents for `--json`.
TOP_KEYS = {"config", "runs", "summary", "ratios", "pair_ratios"}
RUN_KEYS = {
    "server", "run", "ok", "error", "kind", "mode", "clients", "senders", "window", "rate",
    "line_bytes", "shape", "procs", "connect_window", "latency_clock", "tls", "warmup_s",
    "duration_s",
    "connect_s", "ready_s", "connected", "ready_clients", "still_open", "sent", "expected",
    "delivered", "lost", "duplicates", "reordered", "corrupted", "corrupted_attributed",
    "disconnected", "measured_deliveries", "deliveries_per_s", "lines_per_s", "latency_p50_ms",
    "latency_p95_ms", "latency_p99_ms", "latency_max_ms", "server_cpu_s",
    "server_us_per_delivery", "total_us_per_delivery", "server_us_per_connect",
    "server_cpu_util", "server_peak_rss_mb", "server_max_rss_mb",
    "server_threads", "server_fds", "server_max_fds", "server_fd_limit", "generator_cpu_util",
    "generator_max_proc_util", "machine_busy", "other_cpu_util", "limit", "notes",
}  # fmt: skip
SPREAD_KEYS = {"median", "min", "max", "runs"}

needs_ncat = pytest.mark.skipif(ncat_path() is None, reason="ncat is not installed")


def line(sender: int, seq: int, prefix: bytes = b"<user3> ") -> bytes:
    """A relayed raw line carrying payload ``seq`` of ``sender``, without its newline."""
    return prefix + FMT.encode(sender, seq, T0 + seq)


# ---- the payload ---------------------------------------------------------------------------------


def test_payload_is_exactly_line_bytes_and_round_trips() -> None:
    for size in (40, 64, 200, 4000):
        fmt = PayloadFormat(size)
        payload = fmt.encode(0xBEEF, 123456, T0)
        assert len(frame(payload, "raw")) == size
        assert fmt.decode(payload) == (b"beef", 123456, T0)
        assert not payload.startswith(b"/")  # a lanchat command otherwise


def test_line_sizes_that_cannot_hold_a_payload_are_refused() -> None:
    for size in (39, 4001):
        with pytest.raises(ValueError, match="line size"):
            PayloadFormat(size)


@pytest.mark.parametrize(
    "prefix", [b"", b"<user3> ", b"[12:01] <guest-7> ", "[12:01] <Zoë> ".encode()]
)
def test_any_prefix_leaves_a_raw_line_intact(prefix: bytes) -> None:
    [judged] = FMT.judge(line(2, 5, prefix), "raw")
    assert judged.verdict is Verdict.INTACT
    assert judged.fields == (b"0002", 5, T0 + 5)


def test_a_json_message_frame_is_intact_for_a_lanchat_client() -> None:
    payload = FMT.encode(1, 9, T0)
    relayed = b'{"type":"message","seq":4,"time":1.5,"from":"b1","text":"' + payload + b'"}'
    [judged] = FMT.judge(relayed, "lanchat")
    assert judged.fields == (b"0001", 9, T0)
    # Anything else in the text is not the payload any more.
    [judged] = FMT.judge(relayed.replace(b'"text":"', b'"text":"x'), "lanchat")
    assert judged.verdict is Verdict.CORRUPTED


def test_ncat_prefix_inside_a_line_is_corruption_attributed_when_the_header_survives() -> None:
    whole = line(3, 77, b"")
    [judged] = FMT.judge(b"<user3> " + whole[:40] + b"<user3> " + whole[40:], "raw")
    assert judged.verdict is Verdict.CORRUPTED
    assert (judged.sender, judged.seq) == (b"0003", 77)
    [judged] = FMT.judge(b"<user3> " + whole[:5] + b"<user3> " + whole[5:], "raw")
    assert judged.verdict is Verdict.CORRUPTED
    assert judged.sender is None


def test_a_whole_line_glued_to_a_fragment_is_still_delivered() -> None:
    # ncat relayed the start of user3's line, then user5's chunk, then the rest of user3's.
    fragment = line(3, 8, b"")[:30]
    first, second = FMT.judge(b"<user3> " + fragment + b"<user5> " + line(5, 2, b""), "raw")
    assert (first.verdict, first.sender, first.seq) == (Verdict.CORRUPTED, b"0003", 8)
    assert (second.verdict, second.fields) == (Verdict.INTACT, (b"0005", 2, T0 + 2))
    # Two whole payloads on one line: the line end between them is gone.
    first, second = FMT.judge(line(1, 0, b"") + line(1, 1, b""), "raw")
    assert (first.verdict, first.seq) == (Verdict.CORRUPTED, 0)
    assert second.verdict is Verdict.INTACT


def test_any_changed_byte_is_corruption() -> None:
    whole = line(1, 1, b"")
    for at in range(len(MARK), len(whole)):
        changed = whole[:at] + (b"0" if whole[at : at + 1] != b"0" else b"1") + whole[at + 1 :]
        assert [j.verdict for j in FMT.judge(changed, "raw")] == [Verdict.CORRUPTED], at
    # A changed marker leaves nothing to recognise: that line will count as lost.
    assert FMT.judge(b"#" + whole[1:], "raw") == []
    for damaged in (whole + b"x", whole[:-1]):  # garbage after it, cut short
        assert [j.verdict for j in FMT.judge(damaged, "raw")] == [Verdict.CORRUPTED]


def test_lines_without_the_marker_are_not_counted() -> None:
    for other in (b"<announce> 127.0.0.1 is connected as <user5>.", b"* bob joined (3 here)", b""):
        assert FMT.judge(other, "raw") == []


# ---- the accounting ------------------------------------------------------------------------------


def feed_lines(acct: Accounting, rcv: Receiver, lines: list[bytes], now: int = T0 + 10**6) -> None:
    acct.feed(rcv, b"".join(x + b"\n" for x in lines), now)


def test_in_order_lines_are_delivered_with_their_latency() -> None:
    acct = Accounting(FMT, "raw")
    acct.measuring = True
    rcv = Receiver(None)
    feed_lines(acct, rcv, [line(0, q) for q in range(5)], now=T0 + 2_000_000)
    assert (acct.delivered, acct.seen, acct.duplicates, acct.reordered) == (5, 5, 0, 0)
    assert sum(acct.latency_us.values()) == 5
    assert percentile_ms(acct.latency_us, 0.5) == pytest.approx(2.0, abs=0.01)


def test_bytes_split_anywhere_are_reassembled() -> None:
    acct = Accounting(FMT, "raw")
    rcv = Receiver(None)
    data = b"".join(line(1, q) + b"\n" for q in range(3)) + b"<announce> hi\n"
    for i in range(len(data)):
        acct.feed(rcv, data[i : i + 1], T0 + 10**6)
    assert (acct.delivered, acct.corrupted) == (3, 0)


def test_duplicates_reordering_gaps_and_echoes_are_told_apart() -> None:
    acct = Accounting(FMT, "raw")
    rcv = Receiver(sender_id(9))
    order = [0, 1, 3, 4, 2, 2, 4, 7]  # 2 late, 2 and 4 again, 5 and 6 never
    feed_lines(acct, rcv, [line(0, q) for q in order] + [line(9, 0)])
    assert acct.delivered == 6  # 0 1 3 4 2 7
    assert acct.reordered == 1
    assert acct.duplicates == 2
    assert acct.echoes == 1  # its own line: not a delivery
    assert rcv.missing == {sender_id(0): [[5, 7]]}  # 5 and 6
    sent = 10  # lines 0..9 were sent: 5, 6, 8 and 9 are lost
    assert sent - acct.seen == 4


def test_corrupted_lines_are_counted_and_attributed() -> None:
    acct = Accounting(FMT, "raw")
    rcv = Receiver(None)
    whole = line(0, 1, b"")
    feed_lines(acct, rcv, [line(0, 0), b"<user3> " + whole[:40] + b"<user5> " + line(1, 0)])
    feed_lines(acct, rcv, [b"<user3> " + whole[40:], line(0, 2)])
    assert (acct.delivered, acct.corrupted, acct.corrupted_attributed) == (3, 1, 1)
    assert acct.seen == 4  # line 1 of sender 0 arrived, damaged: not lost
    assert acct.duplicates == acct.reordered == 0


def test_window_tracks_when_every_local_receiver_has_a_line() -> None:
    acct = Accounting(FMT, "raw", window=4)
    acct.track(sender_id(0), receivers=2)
    first, second = Receiver(None), Receiver(None)
    feed_lines(acct, first, [line(0, 0), line(0, 1)])
    assert acct.windows[sender_id(0)].done == 0
    feed_lines(acct, second, [line(0, 0)])
    assert acct.windows[sender_id(0)].done == 1
    assert acct.advanced == {sender_id(0)}
    acct.drop_receiver(None)  # the second receiver leaves: line 1 has reached everyone left
    assert acct.windows[sender_id(0)].done == 2


# ---- real runs -----------------------------------------------------------------------------------


def run_bench(*args: str, timeout: float = 40) -> dict[str, Any]:
    """Run scripts/bench with --json; return the parsed output (exit code 0 asserted)."""
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=lanchat_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    assert set(out) == TOP_KEYS
    for run in out["runs"]:
        assert set(run) == RUN_KEYS
    for figures in out["summary"].values():
        for spread in figures.values():
            assert set(spread) == SPREAD_KEYS
    return out


SMALL = ["--clients", "10", "--senders", "2", "--window", "8", "--warmup", "0.2"]
SMALL += ["--duration", "0.5", "--drain", "3"]


def assert_clean(run: dict[str, Any], clients: int = 10) -> None:
    """Every line reached every other client once, intact, in order."""
    assert run["ok"], run["error"]
    assert run["sent"] > 0
    assert run["expected"] == run["sent"] * (clients - 1)
    assert run["delivered"] == run["expected"]
    assert run["lost"] == run["duplicates"] == run["reordered"] == run["corrupted"] == 0
    assert run["disconnected"] == 0
    assert run["deliveries_per_s"] > 0
    assert 0 < run["latency_p50_ms"] <= run["latency_p99_ms"] <= run["latency_max_ms"]
    assert run["server_cpu_s"] is not None and run["server_peak_rss_mb"] > 0
    if run["server_us_per_delivery"] is not None:  # (None when no CPU tick fell in the run)
        assert run["total_us_per_delivery"] >= run["server_us_per_delivery"]
    assert run["server_fds"] >= clients


@pytest.mark.ncat
@needs_ncat
def test_small_run_against_ncat_is_clean() -> None:
    out = run_bench("--server", "ncat", *SMALL)
    [run] = out["runs"]
    assert run["server"] == "ncat"
    assert run["server_threads"] == 1
    assert_clean(run)


@pytest.mark.parametrize("kind", ["raw", "lanchat", "web"])
def test_small_run_against_lanchat_is_clean(kind: str) -> None:
    out = run_bench("--server", "lanchat", "--kind", kind, *SMALL)
    [run] = out["runs"]
    assert (run["server"], run["kind"]) == ("lanchat", kind)
    assert_clean(run)


@pytest.mark.parametrize("kind", ["raw", "lanchat"])
def test_a_small_run_over_two_relays_of_one_room_is_clean(kind: str) -> None:
    """--backplane --relays 2: clients spread over two relays on a fresh redis-server; every
    line reaches every client of both, once and in order."""
    redis_path()  # skips, saying why, where redis-server is missing
    out = run_bench("--server", "lanchat", "--backplane", "--relays", "2", "--kind", kind, *SMALL)
    [run] = out["runs"]
    assert_clean(run)
    load = Load("raw", 4, 1, "window", 1, 1.0, 1, 64, 0, 1, 1, False, 1, 1, 1.0, None, True)
    config = WorkerConfig(0, "127.0.0.1", 7001, "raw", 0, load, ports=(7001, 7002))
    assert [config.port_for(i) for i in range(4)] == [7001, 7002, 7001, 7002]  # both relays


@pytest.mark.parametrize("kind", ["raw", "lanchat", "web"])
def test_small_run_over_tls_against_lanchat_is_clean(kind: str) -> None:
    out = run_bench("--server", "lanchat", "--tls", "--kind", kind, *SMALL)
    [run] = out["runs"]
    assert (run["server"], run["kind"], run["tls"]) == ("lanchat", kind, True)
    assert run["latency_clock"] == "read"  # a TLS socket has no kernel stamp to give
    assert_clean(run)


@pytest.mark.ncat
@needs_ncat
def test_tls_connect_only_against_both_reports_cpu_per_connection() -> None:
    args = ["--vs", "ncat", "--runs", "1", "--tls", "--connect-only", "--clients", "20"]
    out = run_bench(*args, "--hold", "0.3")
    assert [r["server"] for r in out["runs"]] == ["lanchat", "ncat"]
    for run in out["runs"]:
        assert run["ok"], run["error"]
        assert run["tls"] and run["connected"] == run["ready_clients"] == run["still_open"] == 20
        assert run["server_us_per_connect"] >= 0  # CPU clock ticks: 20 handshakes may be 0


def test_the_generators_websocket_frames_are_what_the_relays_library_reads_and_writes() -> None:
    """benchkit's stdlib codec (the generator's) against websockets (the relay's): client frames
    of each length class read by a server, server frames turned back into lines."""
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from scripts.benchkit.websocket import FrameReader, frame_lines, text_frame

    server = ServerProtocol(state=State.OPEN, max_size=None)
    for size in (5, 125, 126, 65535, 65536):
        server.receive_data(text_frame(b"x" * size))
        [frame] = server.events_received()
        assert isinstance(frame, Frame) and frame.data == b"x" * size and frame.fin
    reader = FrameReader()
    response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    texts = (b"{}", b"a" * 300, b"b" * 70000)
    data = response + b"".join(Frame(Opcode.TEXT, t).serialize(mask=False) for t in texts)
    lines = b"".join(reader.feed(data[i : i + 1000]) or b"" for i in range(0, len(data), 1000))
    assert lines == b"{}\n" + b"a" * 300 + b"\n" + b"b" * 70000 + b"\n"
    assert FrameReader().feed(b"HTTP/1.1 403 Forbidden\r\n\r\n") is None
    assert frame_lines(b"one\ntwo\n") == text_frame(b"one") + text_frame(b"two")


@pytest.mark.ncat
@needs_ncat
def test_connect_only_holds_every_client() -> None:
    out = run_bench("--server", "ncat", "--connect-only", "--clients", "30", "--hold", "0.3")
    [run] = out["runs"]
    assert run["ok"], run["error"]
    assert run["connected"] == run["ready_clients"] == run["still_open"] == 30
    assert 0 < run["connect_s"] <= run["ready_s"]
    assert run["server_fds"] >= 30


@pytest.mark.ncat
@needs_ncat
def test_vs_ncat_alternates_and_prints_ratios() -> None:
    out = run_bench("--vs", "ncat", "--runs", "1", *SMALL)
    assert [r["server"] for r in out["runs"]] == ["lanchat", "ncat"]
    ratio = out["ratios"]["deliveries_per_s"]
    lanchat = out["summary"]["lanchat"]["deliveries_per_s"]["median"]
    ncat = out["summary"]["ncat"]["deliveries_per_s"]["median"]
    assert ratio == pytest.approx(lanchat / ncat)
    [run_l, run_n] = out["runs"]
    pair = out["pair_ratios"]["ncat"]["deliveries_per_s"]
    assert pair["runs"] == 1
    assert pair["median"] == pytest.approx(run_l["deliveries_per_s"] / run_n["deliveries_per_s"])


def _accepted_nodelay(pid: int, port: int) -> int:
    """TCP_NODELAY on the connection process `pid` accepted on `port` (copies of its sockets,
    taken with pidfd_getfd(2), which a parent may do to its child)."""
    import ctypes
    import stat

    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            fd = libc.syscall(438, pidfd, int(name), 0)  # SYS_pidfd_getfd (x86-64 and arm64)
            if fd < 0:
                if ctypes.get_errno() == 1:  # EPERM
                    pytest.skip("pidfd_getfd is not permitted here (ptrace restrictions)")
                continue
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
                continue
            with socket.socket(fileno=fd) as copy:
                if copy.family != socket.AF_INET or copy.type != socket.SOCK_STREAM:
                    continue
                try:
                    copy.getpeername()
                except OSError:
                    continue  # the listener
                if copy.getsockname()[1] == port:
                    return copy.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        os.close(pidfd)
    raise AssertionError(f"no accepted connection on port {port} in process {pid}")


@pytest.mark.ncat
@needs_ncat
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux's pidfd_open")
def test_the_nodelay_shim_sets_tcp_nodelay_on_what_ncat_accepts(tmp_path: Path) -> None:
    """ncat-nodelay is ncat with TCP_NODELAY on its connections, and plain ncat has it off:
    what `--vs ncat-nodelay` compares (docs/performance.md)."""
    try:
        shim = build_nodelay_shim(tmp_path)
    except BenchError as e:
        pytest.skip(str(e))
    seen: dict[str, int] = {}
    for preload in (None, shim):
        server = start_ncat(preload=preload)
        try:
            with socket.create_connection((server.host, server.port), timeout=WAIT) as client:
                client.recv(100)  # ncat --chat's greeting: the connection is accepted
                seen[server.name] = _accepted_nodelay(server.pid or 0, server.port)
        finally:
            server.stop()
    assert seen == {"ncat": 0, "ncat-nodelay": 1}


@pytest.mark.ncat
@needs_ncat
def test_vs_both_ncats_and_quiet_alternates_all_four(tmp_path: Path) -> None:
    try:
        build_nodelay_shim(tmp_path)  # (here only: whether it can be built)
    except BenchError as e:
        pytest.skip(str(e))
    out = run_bench("--vs", "ncat+ncat-nodelay+quiet", "--runs", "1", *SMALL)
    order = [r["server"] for r in out["runs"]]
    assert order == ["lanchat", "ncat", "ncat-nodelay", "lanchat-quiet"]
    for run in out["runs"]:
        assert_clean(run)
    assert set(out["pair_ratios"]) == {"ncat", "ncat-nodelay", "lanchat-quiet"}
    assert "ready_s" not in out["pair_ratios"]["ncat-nodelay"]  # its connects are paced


def test_vs_quiet_alternates_lanchat_with_and_without_its_log() -> None:
    out = run_bench("--vs", "quiet", "--runs", "2", *SMALL)
    order = [r["server"] for r in out["runs"]]
    assert order == ["lanchat", "lanchat-quiet", "lanchat-quiet", "lanchat"]
    for run in out["runs"]:
        assert_clean(run)
    assert out["ratios"] is None  # (lanchat / ncat)
    spread = out["pair_ratios"]["lanchat-quiet"]["server_us_per_delivery"]
    assert spread["runs"] == 2 and spread["min"] <= spread["median"] <= spread["max"]


RATE = ["--mode", "rate", "--rate", "50", "--clients", "10", "--senders", "3"]
RATE += ["--warmup", "0.2", "--duration", "0.5", "--drain", "3"]


def test_the_pooled_shape_puts_senders_and_receivers_apart_at_random_phases() -> None:
    out = run_bench("--server", "lanchat", "--shape", "pooled", *RATE)
    [run] = out["runs"]
    assert (run["shape"], run["procs"]) == ("pooled", 2)
    assert_clean(run)
    load = Load(**out["config"]["load"])
    assert [list(load.clients_of(w)) for w in (0, 1)] == [[0, 1, 2], list(range(3, 10))]
    assert [load.owner(i) for i in (0, 2, 3, 9)] == [0, 0, 1, 1]
    phases = sender_phases(load, seed=0, run=1)
    assert phases == sender_phases(load, seed=0, run=1)  # run 1 of each server: the same load
    assert phases != sender_phases(load, seed=0, run=2) != sender_phases(load, seed=1, run=2)
    assert phases is not None and len(phases) == 3 and all(0 <= p < 1 for p in phases)


def test_the_per_core_shape_runs_a_process_per_core() -> None:
    out = run_bench("--server", "lanchat", "--shape", "per-core", *RATE)
    [run] = out["runs"]
    assert (run["shape"], run["procs"]) == ("per-core", min(10, os.cpu_count() or 1))
    assert_clean(run)
    load = Load(**out["config"]["load"])
    assert sender_phases(load, seed=0, run=1) is None  # evenly spaced


def read_until(sock: socket.socket, text: bytes) -> None:
    got = b""
    for _ in range(1000):  # each read waits WAIT s at most
        if text in got:
            return
        chunk = sock.recv(4096)
        assert chunk, f"closed after {got!r}"
        got += chunk
    raise AssertionError(f"{text!r} never came")


def test_lanchat_runs_as_the_readme_starts_it_with_its_log_on() -> None:
    server = start_lanchat()
    try:
        address = (server.host, server.port)
        with (
            socket.create_connection(address, timeout=WAIT) as reader,
            socket.create_connection(address, timeout=WAIT) as writer,
        ):
            read_until(reader, b"here")  # its welcome and who
            writer.sendall(b"hello, bench\n")
            read_until(reader, b"hello, bench")
    finally:
        server.stop()
    assert b"> hello, bench\n" in server.log_tail  # the text log, as people see it
    assert server.log_tail.endswith(b"shutting down.\n") and server.log_skipped is None


def test_a_log_that_fell_behind_is_noted() -> None:
    lines = {
        "text": b"* bo left (1 here)\nStopped. 3 people were told the server is shutting down. "
        b"812 log lines in all were skipped: the log could not keep up.\n",
        "json": b'{"event": "shutdown", "clients": 3, "messages": 9, "log_lines_dropped": 812}\n',
        "kept up": b"Stopped. 3 people were told the server is shutting down.\n",
        "empty": b"",
    }
    found = {name: skipped_in_log(text) for name, text in lines.items()}
    assert found == {"text": 812, "json": 812, "kept up": None, "empty": None}


def test_expected_failures_are_one_line_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--server", "ncat", "--ncat", str(tmp_path / "no-ncat")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"bench: error: ncat not found ({tmp_path / 'no-ncat'}); "
        "install Nmap's ncat or pass --ncat PATH"
    ]
    usage = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "1"], capture_output=True, text=True, timeout=20
    )
    assert usage.returncode == 2
    assert "--clients must be 2..60000" in usage.stderr
    assert "Traceback" not in usage.stderr
