"""The dashboard's live feed: the live bus and the database, de-duplicated, fanned out to browsers.

One `LiveFeed` per web app, one thread, started by the first browser that connects. It listens to
the process's live bus (`central.live`: ingest, alarms and commands publish after their commits)
and, every `[dashboard] live_poll_s`, reads what the database received since the last look:
events (by `received_at`), snapshots, alarms raised or acknowledged, station status changes. The
bus makes a new entry appear at once when ingest runs in this process; the poll makes it appear
within a poll interval when ingest runs elsewhere (the bus is per process) and catches whatever a
crash between a commit and its notice, or an overflowing queue, lost. Each thing is forwarded
once (bounded memory of what was sent), enriched once (`event_views`), and published on the
feed's own bus, which every browser's stream subscribes to with a bounded, dropping queue: a slow
tab never slows the feed, and a tab that lost notices is told to re-read (`resync`).

Scoping is not done here: every message carries its station and district, and each stream drops
what its staff member may not see.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from central import live
from central.store import events as event_store
from central.store.tables import Alarm, Station
from central.web.event_views import row_fields, views
from central.web.schemas import snapshot_url
from common.db_types import utc_now

log = logging.getLogger(__name__)

OVERLAP = dt.timedelta(seconds=5)  # re-read this far back: a transaction may commit after a later one
POLL_LIMIT = 1000
STATION_CACHE_S = 30.0


class _Seen:
    """The last `size` keys forwarded (an ordered set)."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[Hashable, None] = OrderedDict()
        self._size = size

    def add(self, key: Hashable) -> bool:
        """True when `key` is new (and remember it)."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


class LiveFeed:
    def __init__(
        self,
        bus: live.LiveBus,
        db: sessionmaker[Session],
        *,
        poll_s: float,
        clock: Callable[[], dt.datetime] = utc_now,
        seen: int = 50_000,
    ) -> None:
        self.bus = bus
        self.out = live.LiveBus()
        self._db = db
        self._poll_s = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: live.Subscription | None = None
        self._events = _Seen(seen)
        self._snapshots = _Seen(seen)
        self._alarms = _Seen(10_000)
        self._status = _Seen(10_000)
        self._stations: dict[str, tuple[str, str]] = {}
        self._stations_at = 0.0
        self.polls = 0
        self.forwarded = 0

    # -- life ------------------------------------------------------------------------------------

    def subscribe(self, maxlen: int = 2000) -> live.Subscription:
        """A browser stream's queue (the feed starts with the first one)."""
        self.start()
        return self.out.subscribe(live.TOPICS, maxlen)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            # Subscribe before the first poll's watermark is taken, so nothing falls in between.
            self._subscription = self.bus.subscribe(live.TOPICS, maxlen=10_000)
            now = self._clock()
            self._marks = {"events": now, "snapshots": now, "alarms": now, "status": now}
            self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
            if self._subscription is not None:
                self._subscription.close()
        if thread is not None:
            thread.join(timeout=5)

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        dropped = 0
        next_poll = time.monotonic()
        while not self._stop.is_set():
            wait = max(0.05, next_poll - time.monotonic()) if self._poll_s > 0 else 1.0
            first = subscription.get(timeout=min(wait, 1.0))
            batch = ([first] if first is not None else []) + subscription.drain()
            if subscription.closed:
                return
            try:
                if batch:
                    self._forward(batch)
                lost = subscription.dropped != dropped
                dropped = subscription.dropped
                if (self._poll_s > 0 and time.monotonic() >= next_poll) or lost:
                    self._poll()
                    next_poll = time.monotonic() + self._poll_s
            except Exception:
                log.exception("live feed step failed", extra={"fields": {"event": "live_feed_error"}})
                self._stop.wait(1.0)

    def _directory(self, db: Session, wanted: Iterable[str]) -> dict[str, tuple[str, str]]:
        missing = set(wanted) - set(self._stations)
        if missing or time.monotonic() - self._stations_at > STATION_CACHE_S:
            rows = db.execute(select(Station.station_id, Station.name, Station.district_id))
            self._stations = {sid: (name, district) for sid, name, district in rows}
            self._stations_at = time.monotonic()
        return self._stations

    def _publish(
        self, topic: str, data: dict[str, Any], station_id: str | None, district: str | None
    ) -> None:
        self.forwarded += 1
        self.out.publish(topic, data, station_id=station_id, district=district)

    def _forward(self, batch: list[live.LiveMessage]) -> None:
        """Notices from the bus: events enriched in one go, the rest passed on with its district."""
        events = [m.data for m in batch if m.topic == live.EVENT and self._events.add(m.data.get("id"))]
        with self._db() as db:
            stations = self._directory(db, [m.station_id for m in batch if m.station_id])
            for view in views(db, [dict(e) for e in events], stations=stations):
                self._publish(live.EVENT, view.model_dump(mode="json"), view.station_id, view.district_id)
        for message in batch:
            if message.topic == live.EVENT:
                continue
            data = dict(message.data)
            station_id = message.station_id or _str(data.get("station_id"))
            district = message.district or (stations.get(station_id, (None, None))[1] if station_id else None)
            if message.topic == live.SNAPSHOT:
                event_id = _str(data.get("event_id"))
                if event_id is None or not self._snapshots.add(event_id):
                    continue
                data = {
                    "event_id": event_id,
                    "station_id": station_id,
                    "snapshot_url": snapshot_url(event_id),
                }
            elif message.topic == live.ALARM:
                self._alarms.add((data.get("id"), data.get("state")))
            self._publish(message.topic, data, station_id, district)

    def _poll(self) -> None:
        """What the database received since the last look and the bus did not bring."""
        self.polls += 1
        marks = self._marks
        with self._db() as db:
            rows = event_store.received_since(db, since=marks["events"] - OVERLAP, limit=POLL_LIMIT)
            fresh = [r for r in rows if self._events.add(r.id)]
            if rows:
                marks["events"] = max(marks["events"], max(r.received_at for r in rows))
            stations = self._directory(db, {r.station_id for r in fresh})
            for view in views(db, [row_fields(r) for r in fresh], stations=stations):
                self._publish(live.EVENT, view.model_dump(mode="json"), view.station_id, view.district_id)

            shots = event_store.snapshots_received_since(
                db, since=marks["snapshots"] - OVERLAP, limit=POLL_LIMIT
            )
            for shot in shots:
                marks["snapshots"] = max(marks["snapshots"], shot.received_at)
                if shot.deleted_at is None and self._snapshots.add(shot.event_id):
                    district = stations.get(shot.station_id, (None, None))[1]
                    data = {
                        "event_id": shot.event_id,
                        "station_id": shot.station_id,
                        "snapshot_url": snapshot_url(shot.event_id),
                    }
                    self._publish(live.SNAPSHOT, data, shot.station_id, district)

            since = marks["alarms"] - OVERLAP
            alarms = db.scalars(
                select(Alarm)
                .where(or_(Alarm.raised_at > since, Alarm.acknowledged_at > since))
                .order_by(Alarm.id)
                .limit(POLL_LIMIT)
            ).all()
            for alarm in alarms:
                marks["alarms"] = max(marks["alarms"], alarm.acknowledged_at or alarm.raised_at)
                if self._alarms.add((alarm.id, alarm.state)):
                    self._publish(live.ALARM, alarm_notice(alarm), alarm.station_id, alarm.district_id)

            since = marks["status"] - OVERLAP
            changed = db.scalars(select(Station).where(Station.last_status_at > since)).all()
            for station in changed:
                assert station.last_status_at is not None
                marks["status"] = max(marks["status"], station.last_status_at)
                if self._status.add((station.station_id, station.last_state, station.last_status_at)):
                    data = {"station_id": station.station_id, "state": station.last_state}
                    self._publish(live.STATUS, data, station.station_id, station.district_id)


def alarm_notice(alarm: Alarm) -> dict[str, Any]:
    """The live notice of an alarm (the shape the alarm engine publishes: id, station_id, kind,
    severity, raised_at, state)."""
    return {
        "id": alarm.id,
        "station_id": alarm.station_id,
        "kind": alarm.kind,
        "severity": alarm.severity,
        "raised_at": alarm.raised_at.isoformat(),
        "state": alarm.state,
    }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
