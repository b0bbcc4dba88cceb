"""The centre's in-process live bus: "a row was just committed" notices for whoever is watching.

Ingest publishes a `LiveMessage` *after* the database commit of what it stored (an event, a station
status, a command result, an enrolment, a snapshot); the dashboard's live feed, the alarm engine
and the phone pages' "did the door open?" wait subscribe. The database stays the truth: the bus only
says "look now", so a subscriber that fell behind, or a process that just started, reads the rows
it missed from the database and never depends on the bus for completeness.

Why not a queue per consumer in the database or the broker: the dashboard needs a new entry on
screen within a second, and a notice in memory costs nothing on the ingest path. Why bounded,
dropping queues: a slow browser tab must never slow ingest down (Frigate's lesson: the core never
waits on a consumer). A subscriber whose queue overflows loses the oldest notices and is told so
(`dropped`), so it can re-read from the database.

The bus is per process. Several ingest processes (the `$share` subscription split) each publish
what they stored; a web process that does not ingest sees nothing on its own bus and must poll the
database instead (docs/CENTRAL.md, "Processes").
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

#: What ingest and the other writers publish (the `topic` of a message).
EVENT: Final = "event"
STATUS: Final = "status"
RESULT: Final = "result"
ENROLMENT: Final = "enrolment"
SNAPSHOT: Final = "snapshot"
ALARM: Final = "alarm"
COMMAND: Final = "command"
TOPICS: Final = frozenset({EVENT, STATUS, RESULT, ENROLMENT, SNAPSHOT, ALARM, COMMAND})

DEFAULT_QUEUE: Final = 1000


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One committed change. `data` is JSON-ready (the stored row's public fields); `station_id` and
    `district` let a subscriber filter by what a staff member may see without reading `data`."""

    topic: str
    data: Mapping[str, Any]
    station_id: str | None = None
    district: str | None = None
    published_mono: float = field(default_factory=time.monotonic)


class Subscription:
    """A bounded queue of notices for one consumer. Thread-safe; `get` blocks up to `timeout`."""

    def __init__(self, bus: LiveBus, topics: frozenset[str], maxlen: int) -> None:
        self._bus = bus
        self.topics = topics
        self._queue: collections.deque[LiveMessage] = collections.deque(maxlen=maxlen)
        self._ready = threading.Condition()
        self.dropped = 0
        self.closed = False

    def _offer_many(self, messages: list[LiveMessage]) -> None:
        """A committed batch's notices: one wake-up for all of them, not one per notice. A full
        queue drops the oldest (the deque does): the consumer re-reads the database."""
        with self._ready:
            room = (self._queue.maxlen or 0) - len(self._queue)
            self.dropped += max(0, len(messages) - room)
            self._queue.extend(messages)
            self._ready.notify()

    def get(self, timeout: float | None = None) -> LiveMessage | None:
        """The next notice, or None after `timeout` seconds (or once closed and drained)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._queue:
                if self.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._queue.popleft()

    def drain(self) -> list[LiveMessage]:
        """Everything queued now, without waiting."""
        with self._ready:
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self) -> None:
        self._bus._remove(self)
        with self._ready:
            self.closed = True
            self._ready.notify_all()


class LiveBus:
    """Publish after commit; subscribe with a bounded queue. `publish` never blocks on a consumer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any],
        *,
        station_id: str | None = None,
        district: str | None = None,
    ) -> None:
        self.publish_many([(topic, data, station_id, district)])

    def publish_many(self, notices: Iterable[tuple[str, Mapping[str, Any], str | None, str | None]]) -> None:
        """(topic, data, station_id, district) notices of one commit, in order: each subscriber is
        woken once for the lot (ingest commits hundreds of events at a time)."""
        messages = [
            LiveMessage(topic, data, station_id, district) for topic, data, station_id, district in notices
        ]
        for message in messages:
            if message.topic not in TOPICS:
                raise ValueError(f"unknown live topic {message.topic!r} (one of {sorted(TOPICS)})")
        if not messages:
            return
        with self._lock:
            targets = list(self._subscriptions)
            self.published += len(messages)
        for subscription in targets:
            wanted = [m for m in messages if m.topic in subscription.topics]
            if wanted:
                subscription._offer_many(wanted)

    def subscribe(
        self, topics: frozenset[str] | set[str] = TOPICS, maxlen: int = DEFAULT_QUEUE
    ) -> Subscription:
        unknown = set(topics) - TOPICS
        if unknown:
            raise ValueError(f"unknown live topics {sorted(unknown)}")
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        subscription = Subscription(self, frozenset(topics), maxlen)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    @contextmanager
    def subscribed(
        self, topics: frozenset[str] | set[str] = TOPICS, maxlen: int = DEFAULT_QUEUE
    ) -> Iterator[Subscription]:
        subscription = self.subscribe(topics, maxlen)
        try:
            yield subscription
        finally:
            subscription.close()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
