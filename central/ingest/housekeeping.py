"""`Housekeeper`: the periodic half of station health, command expiry and snapshot retention.

- Every `every_s` (10 s): stations still "online" whose heartbeats stopped for `[alarms]
  offline_after_s` without a last will (the broker restarted and lost the session, or a network
  swallowed the TCP close) are marked offline, with a history row saying why; unanswered commands
  past their expiry become `expired`. Both go on the live bus.
- Every `snapshots_every_s` (10 min): `[snapshots]` retention, disk budget and free-space floor
  (`central.snapshot_files.enforce`).

Everything here is an idempotent UPDATE, so several centre processes may run it at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.snapshot_files import SnapshotFiles, enforce
from central.store import commands as command_store
from central.store.status import mark_silent_offline
from central.store.tables import Station

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(
        self,
        *,
        db: sessionmaker[Session],
        config: CentralConfig,
        files: SnapshotFiles,
        live: LiveBus,
        metrics: CentreMetrics,
        every_s: float = 10.0,
        snapshots_every_s: float = 600.0,
    ) -> None:
        self._db = db
        self._config = config
        self._files = files
        self._live = live
        self._metrics = metrics
        self._every_s = every_s
        self._snapshots_every_s = snapshots_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_snapshots = time.monotonic() + 5.0

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.run_once(dt.datetime.now(dt.UTC))
            except Exception:
                log.exception("housekeeping round failed; trying again later")

    def run_once(self, now: dt.datetime) -> None:
        silent = dt.timedelta(seconds=self._config.alarms.offline_after_s)
        with self._db.begin() as session:
            offline = list(mark_silent_offline(session, now=now, silent_for=silent))
            districts = (
                {
                    s.station_id: s.district_id
                    for s in session.query(Station).filter(Station.station_id.in_(offline))
                }
                if offline
                else {}
            )
            expired = [(c.id, c.station_id, c.name) for c in command_store.expire_due(session, now=now)]
        for station_id in offline:
            log.warning(
                "station silent: marked offline",
                extra={"fields": {"event": "station_silent", "station_id": station_id}},
            )
            self._live.publish(
                "status",
                {
                    "station_id": station_id,
                    "state": "offline",
                    "previous_state": "online",
                    "reason": "missed_heartbeats",
                    "received_at": now.isoformat(),
                },
                station_id=station_id,
                district=districts.get(station_id),
            )
        for command_id, station_id, name in expired:
            self._metrics.commands.labels(name, "expired").inc()
            self._live.publish(
                "command",
                {"command_id": command_id, "station_id": station_id, "name": name, "state": "expired"},
                station_id=station_id,
            )
        if time.monotonic() >= self._next_snapshots:
            self._next_snapshots = time.monotonic() + self._snapshots_every_s
            report = enforce(self._db, self._files, self._config.snapshots, now=now)
            for why, count in report.deleted.items():
                self._metrics.snapshots_deleted.labels(why).inc(count)
