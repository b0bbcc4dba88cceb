"""Sync benchmark: how fast a station drains a backlog of queued events to the centre.

Run it with `python -m bench.sync [--events N] [--runs R] [--json] [--no-write]`. It prints a summary
(or one JSON object) and rewrites its section of docs/BENCHMARKS.md (not when `--events` is below
the published 10,000).

What is measured: `yizhan sync flush` (`sync.flush.flush_command`, the same publisher the daemon
runs) with the default [mqtt] settings, against a real mosquitto on 127.0.0.1 and a centre that
subscribes to every station's `up/#` and acknowledges what it stored (`down/ack`) every 0.2 s, as
tests/mqtt_broker.py's `Centre` does. The backlog is written first (the rows exactly as
`record_event` writes them); the clock runs from the flush's start to its return (outbox empty),
then the centre is checked to hold every event once. Several runs, each on a fresh database, the
median reported: the issue's target is 10,000 events in at most 10 s on the 2-core box. The test
suite only checks that the drain delivers everything in order (tests/test_sync_outbox.py): a
busy machine must not fail it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import report
from bench.dataset import REPO

MARK_START = "<!-- bench.sync:start -->"
MARK_END = "<!-- bench.sync:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
PUBLISHED_EVENTS = 10_000
TARGET_S = 10.0


def _harness() -> Any:
    """The broker, centre and flush the sync tests use (tests/mqtt_broker.py): one thing measured."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests import mqtt_broker

    return mqtt_broker


def drain_once(work: Path, events: int) -> dict[str, Any]:
    """One backlog of `events`, one flush; the seconds it took and what the centre received."""
    from edge.station import Station

    harness = _harness()
    broker = harness.start_broker(work / "broker")
    try:
        config = harness.station_config(work / "data", broker.port)
        station = Station(config, env={})
        try:
            ids = harness.bulk_events(station.sessions, events)
        finally:
            station.close()
        with harness.Centre(broker.port, ack_every=0.2) as centre:
            started = time.perf_counter()
            code = harness.flush(config, 600)  # what `yizhan sync flush` runs
            seconds = time.perf_counter() - started
            centre.wait_for(lambda: len(centre.messages("/up/event")) >= events, 60)
            received = [e["id"] for e in centre.json_messages("event")]
    finally:
        broker.stop()
    return {
        "seconds": round(seconds, 3),
        "exit_code": code,
        "delivered": len(set(received) & set(ids)),
        "duplicates": len(received) - len(set(received)),
        "in_order": [i for i in received if i in set(ids)] == ids,
    }


def run_benchmark(events: int, runs: int) -> dict[str, Any]:
    from bench.recognition import machine_info

    results = []
    for index in range(runs):
        with tempfile.TemporaryDirectory(prefix=f"bench-sync-{index}-") as folder:
            results.append(drain_once(Path(folder), events))
    seconds = [r["seconds"] for r in results]
    median = statistics.median(seconds)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "events": events,
        "runs": results,
        "median_s": round(median, 2),
        "min_s": round(min(seconds), 2),
        "max_s": round(max(seconds), 2),
        "events_per_s": round(events / median),
        "target_s": TARGET_S,
        "met": median <= TARGET_S * events / PUBLISHED_EVENTS,
        "all_delivered": all(r["delivered"] == events and r["exit_code"] == 0 for r in results),
    }


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    m = result["machine"]
    runs = ", ".join(f"{r['seconds']:.2f}" for r in result["runs"])
    duplicates = sum(r["duplicates"] for r in result["runs"])
    lines = [
        MARK_START,
        "## Sync: draining a backlog to the centre",
        "",
        f"Measured {result['date']} with `{command}`. Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; "
        f"Python {m['python']}.",
        "",
        f"`yizhan sync flush` (default [mqtt] settings) on {result['events']:,} queued events, to mosquitto "
        "on 127.0.0.1 and a centre that acknowledges every 0.2 s; a fresh database per run.",
        "",
        "| events | runs | median s | min / max s | events per s | target | met |",
        "|---|---|---|---|---|---|---|",
        f"| {result['events']:,} | {len(result['runs'])} | **{result['median_s']}** | "
        f"{result['min_s']} / {result['max_s']} | {result['events_per_s']:,} | <= {TARGET_S:.0f} s per "
        f"{PUBLISHED_EVENTS:,} | {'yes' if result['met'] else 'no'} |",
        "",
        f"Each run (s): {runs}. Every event arrived in every run: "
        f"{'yes' if result['all_delivered'] else 'NO'}; duplicates (same id, re-sent): {duplicates}.",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def command_line(argv: Sequence[str]) -> str:
    return report.command_line("bench.sync", argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=PUBLISHED_EVENTS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args(args_list)
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be positive")
    result = run_benchmark(args.events, args.runs)
    command = command_line(args_list)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"{result['events']:,} events: median {result['median_s']} s "
            f"({result['events_per_s']:,}/s), runs {[r['seconds'] for r in result['runs']]}, "
            f"all delivered: {result['all_delivered']}\n"
        )
    if not args.no_write and args.events >= PUBLISHED_EVENTS:
        report.write_section(BENCHMARKS_MD, render_markdown(result, command), MARK_START, MARK_END)
    return 0 if result["all_delivered"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
