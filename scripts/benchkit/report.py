"""Plain-text tables of runs, summaries and ratios (standard library only)."""

from __future__ import annotations

from .results import RunResult, Spread, figures_for


def _num(value: float | None) -> str:
    """A figure in a readable width: 3 significant digits for small ones, grouped for large."""
    if value is None:
        return "-"
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def render_runs(results: list[RunResult]) -> str:
    """One row per run; connect-only runs have their own columns."""
    connect = any(r.mode == "connect" for r in results)
    if connect:
        headers = ["run", "connected", "served", "connect s", "ready s", "still open"]
        headers += ["RSS MB", "fds", "threads", "srv CPU", "gen CPU", "limit"]
    else:
        headers = ["run", "deliv/s", "µs/deliv", "p50 ms", "p99 ms", "max ms", "RSS MB"]
        headers += ["lost", "dup", "reord", "corrupt", "srv CPU", "gen CPU", "limit"]
    rows = []
    for r in results:
        name = f"{r.server} #{r.run} ({r.kind})"
        if not r.ok:
            rows.append([name, "failed", *[""] * (len(headers) - 2)])
            continue
        if connect:
            cells = [r.connected, r.ready_clients, r.connect_s, r.ready_s, r.still_open]
            cells += [r.server_peak_rss_mb, r.server_fds, r.server_threads]
        else:
            cells = [r.deliveries_per_s, r.server_us_per_delivery, r.latency_p50_ms]
            cells += [r.latency_p99_ms, r.latency_max_ms, r.server_peak_rss_mb]
            cells += [r.lost, r.duplicates, r.reordered, r.corrupted]
        cells += [r.server_cpu_util, r.generator_cpu_util]
        rows.append([name, *(_num(c) for c in cells), r.limit or "-"])
    text = table(headers, rows)
    notes = [f"{r.server} #{r.run} failed: {r.error}" for r in results if not r.ok]
    notes += [
        f"{r.server} #{r.run}: the server held up to {r.server_max_fds} descriptors"
        for r in results
        if not r.ok and r.server_max_fds
    ]
    notes += [f"{r.server} #{r.run}: {note}" for r in results for note in r.notes]
    return text + ("\n" + "\n".join(notes) if notes else "")


def _spread(spread: Spread | None) -> str:
    """'median [min-max]', or the value alone when there is one run."""
    if spread is None:
        return "-"
    if spread.runs == 1 or spread.low == spread.high:
        return _num(spread.median)
    return f"{_num(spread.median)} [{_num(spread.low)}..{_num(spread.high)}]"


def render_summary(
    summaries: dict[str, dict[str, Spread]], pairs: dict[str, dict[str, Spread]], mode: str
) -> str:
    """Figures down, servers across (median [min..max] over runs), then lanchat divided by each
    other server, run k by run k (median [min..max] of those ratios)."""
    servers = list(summaries)
    others = [s for s in pairs if s in servers]
    headers = ["figure", *servers, *(f"lanchat/{s.removeprefix('lanchat-')}" for s in others)]
    rows = []
    for key, label in figures_for(mode):
        if not any(key in summaries[s] for s in servers):
            continue
        row = [label, *(_spread(summaries[s].get(key)) for s in servers)]
        row += [_ratio(pairs[s].get(key)) for s in others]
        rows.append(row)
    return table(headers, rows) if rows else "(no run completed)"


def _ratio(spread: Spread | None) -> str:
    """A ratio's 'median [min..max]' with two decimals."""
    if spread is None:
        return "-"
    if spread.runs == 1 or spread.low == spread.high:
        return f"{spread.median:.2f}"
    return f"{spread.median:.2f} [{spread.low:.2f}..{spread.high:.2f}]"
