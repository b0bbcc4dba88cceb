"""Alarms: how fast an event becomes an alarm and a group-robot message, and what a sweep costs.

    python -m bench.alarms [--events 200] [--stations 2000] [--database-url URL] [--json] [--write]

* latency: an emergency event is stored and published on the live bus (what ingest does); the
  running engine raises the alarm (committed, published as `alarm`), the running notifier posts it
  to a WeCom-format receiver on 127.0.0.1. p50 / p95 / max of event -> alarm on the bus and
  event -> webhook received, one station per event so every event raises a new alarm;
* sweep: a fleet of `--stations` stations with fresh heartbeats and a table of ordinary events:
  the periodic database sweep (events the bus missed, refusals, every station's status), median
  of repeated sweeps with nothing to raise.

SQLite in a temporary folder by default (`--database-url` for PostgreSQL). Figures go to
docs/BENCHMARKS.md with --write; no test asserts them (tests/test_bench_alarms_smoke.py only runs it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert, make_url, update

from bench.report import write_section
from central import live
from central.alarms.engine import AlarmEngine
from central.alarms.notifier import Notifier
from central.alarms.targets import load_targets
from central.config import parse_config
from central.live import LiveBus
from central.store import events as event_store
from central.store.database import open_engine, session_factory, upgrade
from central.store.tables import District, Event, Station

START, END = "<!-- bench.alarms:start -->", "<!-- bench.alarms:end -->"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(_percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
        "n": len(values),
    }


class _Robot:
    """A WeCom-format receiver noting when each alarm's message arrived (by its alarm number)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        box = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.perf_counter()
                message = json.loads(body)
                text = (message.get("markdown") or message.get("text") or {}).get("content", "")
                found = re.search(r"st-\d{5}", text)
                station = found.group(0) if found else ""
                with box.lock:
                    box.arrivals.setdefault(station, at)
                answer = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(events: int, stations: int, database_url: str | None) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-alarms-"))
    url = make_url(database_url or f"sqlite:///{folder / 'central.db'}")
    engine_db = open_engine(url)
    upgrade(engine_db)
    db = session_factory(engine_db)
    robot = _Robot()
    try:
        config = parse_config(
            {"alarms": {"webhooks": [{"format": "wecom", "url": robot.url}], "sweep_interval_s": 600}},
            "bench",
        )
        now = dt.datetime.now(dt.UTC)
        with db.begin() as session:
            session.add(District(district_id="bench", name="bench"))
            session.flush()
            session.execute(
                insert(Station),
                [
                    {
                        "station_id": f"st-{n:05d}",
                        "name": f"station {n}",
                        "district_id": "bench",
                        "schedule": {"always_open": True},
                        "services": [],
                        "allowed_groups": [],
                        "last_state": "online",
                        "last_seen_at": now,
                        "last_status_at": now,
                        "last_health": {"camera": {"state": "up"}, "disk": {"status": "ok"}},
                    }
                    for n in range(max(stations, events))
                ],
            )
            session.execute(
                insert(Event),
                [
                    {
                        "id": str(uuid.uuid4()),
                        "ts": now - dt.timedelta(seconds=n),
                        "station_id": f"st-{n % max(stations, 1):05d}",
                        "kind": "entry",
                        "method": "face",
                        "details": {},
                        "received_at": now - dt.timedelta(seconds=n),
                    }
                    for n in range(20_000)
                ],
            )
        bus = LiveBus()
        notifier = Notifier(db, config.alarms, load_targets(config.alarms))
        alarm_engine = AlarmEngine(db, bus, config.alarms, on_change=notifier.kick)
        notifier.start()
        alarm_engine.start()
        watcher = bus.subscribe({live.ALARM})
        to_bus: list[float] = []
        published: dict[str, float] = {}
        try:
            time.sleep(1.0)  # the first sweep at start
            watcher.drain()
            for n in range(events):
                station_id = f"st-{n:05d}"
                with db.begin() as session:
                    event_id = str(uuid.uuid4())
                    ts = dt.datetime.now(dt.UTC)
                    event_store.store_event(
                        session, id=event_id, ts=ts, station_id=station_id, kind="emergency", details={}
                    )
                start = time.perf_counter()
                published[station_id] = start
                bus.publish(
                    live.EVENT,
                    {"id": event_id, "station_id": station_id, "ts": ts.isoformat(), "kind": "emergency"},
                    station_id=station_id,
                )
                message = watcher.get(timeout=30)
                if message is None:
                    raise RuntimeError("no alarm on the bus within 30 s")
                to_bus.append((time.perf_counter() - start) * 1000)
                time.sleep(0.02)
            deadline = time.monotonic() + 60
            while len(robot.arrivals) < events and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            alarm_engine.stop()
            notifier.stop()
        to_robot = [(robot.arrivals[s] - published[s]) * 1000 for s in published if s in robot.arrivals]

        # The sweep with nothing to raise: heartbeats fresh, events ordinary.
        quiet = AlarmEngine(db, LiveBus(), config.alarms)
        quiet._started_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        with db.begin() as session:
            session.execute(update(Station).values(last_seen_at=dt.datetime.now(dt.UTC)))
        quiet.sweep()
        sweeps = []
        for _ in range(7):
            start = time.perf_counter()
            quiet.sweep()
            sweeps.append((time.perf_counter() - start) * 1000)
        return {
            "database": url.get_backend_name(),
            "events": events,
            "stations": max(stations, events),
            "event_to_alarm_on_bus": _summary(to_bus),
            "event_to_webhook_received": _summary(to_robot) if to_robot else None,
            "webhooks_received": len(to_robot),
            "sweep_quiet_fleet": _summary(sweeps),
            "ordinary_events_in_table": 20_000,
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
        }
    finally:
        robot.close()
        engine_db.dispose()


def markdown(report: dict[str, Any], command: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bus, hook, sweep = (
        report["event_to_alarm_on_bus"],
        report["event_to_webhook_received"],
        report["sweep_quiet_fleet"],
    )
    lines = [
        START,
        "## Alarms: event to alarm, event to group robot, the sweep",
        "",
        f"Measured {when} with `{command}` on {report['database']} ({report['machine']}), on the shared "
        "2-core development machine (other work running). An emergency event is stored and published "
        "on the live bus as ingest does; the running engine raises the alarm; the running notifier "
        "posts it to a WeCom-format receiver on 127.0.0.1.",
        "",
        "| path | p50 ms | p95 ms | max ms | n |",
        "|---|---|---|---|---|",
        f"| event published -> alarm committed and on the live bus | {bus['p50_ms']} | {bus['p95_ms']} | "
        f"{bus['max_ms']} | {bus['n']} |",
    ]
    if hook:
        lines.append(
            f"| event published -> group robot received the message | {hook['p50_ms']} | {hook['p95_ms']} | "
            f"{hook['max_ms']} | {hook['n']} |"
        )
    lines += [
        f"| database sweep, {report['stations']} stations, {report['ordinary_events_in_table']} "
        f"ordinary events, nothing to raise | {sweep['p50_ms']} | {sweep['p95_ms']} | {sweep['max_ms']} | "
        f"{sweep['n']} |",
        "",
        "The sweep runs every `[alarms] sweep_interval_s` (5 s by default) on the engine's own thread.",
        END,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--database-url")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    report = run(args.events, args.stations, args.database_url)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(markdown(report, "python -m bench.alarms") + "\n")
    if args.write:
        path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
        write_section(path, markdown(report, "python -m bench.alarms --write"), START, END)


if __name__ == "__main__":
    main()
