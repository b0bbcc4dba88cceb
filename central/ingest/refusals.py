"""Refused messages: counted (a Prometheus counter by kind and reason) and logged, without flooding.

A hostile or broken station can send thousands of bad messages a second; each is refused, but one
log line per message would drown the log (and the disk). Here the first refusal of a
(station, kind, reason) is logged at once, later ones at most every `every_s` with how many were
suppressed meanwhile. The counter always counts every one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from central.metrics import CentreMetrics

log = logging.getLogger("central.ingest.refused")

MAX_TRACKED = 10_000


class RefusalLog:
    def __init__(
        self, metrics: CentreMetrics, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.total = 0

    def refuse(self, kind: str, reason: str, station_id: str | None, detail: str = "") -> None:
        self._metrics.ingest_refused.labels(kind, reason).inc()
        self._metrics.ingest_messages.labels(kind, "refused").inc()
        key = (station_id or "-", kind, reason)
        now = self._clock()
        with self._lock:
            self.total += 1
            last = self._last.get(key)
            if last is not None and now - last[0] < self._every_s:
                self._last[key] = (last[0], last[1] + 1)
                return
            suppressed = last[1] if last is not None else 0
            if len(self._last) >= MAX_TRACKED:
                self._last.clear()
            self._last[key] = (now, 0)
        log.warning(
            "message refused",
            extra={
                "fields": {
                    "event": "ingest_refused",
                    "station_id": station_id,
                    "kind": kind,
                    "reason": reason,
                    "detail": detail[:300],
                    "suppressed_since_last": suppressed,
                }
            },
        )
