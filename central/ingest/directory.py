"""Which stations are registered: a small cache in front of the `stations` table for the hot path.

Every message is checked against it (a station that is not registered, or was deactivated, has
nothing stored). A batch asks for the stations it names in one go; known ones are served from
memory for `ttl_s`, unknown ones are looked up again at most every `miss_ttl_s`, so a station added
with `yizhan-central stations add` is accepted within seconds while a flood from an unregistered
login costs one query per few seconds, not one per message. Thread-safe (all workers share one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.store.tables import Station


@dataclass(frozen=True, slots=True)
class StationInfo:
    station_id: str
    district_id: str
    active: bool


class StationDirectory:
    def __init__(
        self,
        db: sessionmaker[Session],
        *,
        ttl_s: float = 30.0,
        miss_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = ttl_s
        self._miss_ttl = miss_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, tuple[StationInfo | None, float]] = {}

    def lookup(self, station_ids: Iterable[str]) -> dict[str, StationInfo | None]:
        """Each id's station (None: not registered)."""
        now = self._clock()
        wanted = set(station_ids)
        found: dict[str, StationInfo | None] = {}
        stale: list[str] = []
        with self._lock:
            for station_id in wanted:
                cached = self._known.get(station_id)
                if cached is not None and cached[1] > now:
                    found[station_id] = cached[0]
                else:
                    stale.append(station_id)
        if stale:
            with self._db() as session:
                rows = session.execute(
                    select(Station.station_id, Station.district_id, Station.active).where(
                        Station.station_id.in_(stale)
                    )
                ).all()
            fresh = {str(s): StationInfo(str(s), str(d), bool(a)) for s, d, a in rows}
            with self._lock:
                if len(self._known) > 100_000:  # ids from a flood of unknown logins: start over
                    self._known.clear()
                for station_id in stale:
                    info = fresh.get(station_id)
                    self._known[station_id] = (info, now + (self._ttl if info else self._miss_ttl))
                    found[station_id] = info
        return found

    def forget(self, station_id: str) -> None:
        """Drop a cached entry (a station was just added, changed or deactivated in this process)."""
        with self._lock:
            self._known.pop(station_id, None)
