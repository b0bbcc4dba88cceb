"""`IngestWorker`: one MQTT v5 client in the shared subscription, storing batches, acking after commit.

Each worker is a paho client with its own stable client id (`<prefix>-<n>`) and a persistent
session (`clean_start = false`, session expiry), subscribed at QoS 1 to
`$share/<group>/yz/v1/station/+/up/#`: the broker hands each station message to one worker of the
group, so several workers (threads here, or processes on other hosts) split the fleet, and any one
can die. With `manual_ack` paho does not PUBACK a message by itself: the worker does, after the
database commit of the batch that stored it. A worker killed before that commit has PUBACKed
nothing, and the broker sends those messages again (to it when it reconnects with its session);
one killed after the commit but before the PUBACK gets them again too, and they are stored once
(idempotent ids). The broker's Receive Maximum for us (`[mqtt] receive_maximum`) is the window of
messages in flight, which is what lets batches fill.

Threads: paho's network thread only wraps each message and queues it (blocking when the worker
holds `queue_mb` of unstored messages: back-pressure reaches the broker through TCP, nothing is
dropped); the "ingest-<n>" thread takes batches of up to `batch_max` messages or `batch_ms`, has
`BatchProcessor` check and store them in one transaction, then PUBACKs them, queues their `seq`s
for the station's `down/ack` (sent every `ack_interval_s`, signed), publishes them on the live
bus, and hands roster requests to the roster service.

A failed transaction stores nothing: the batch is tried again after a pause (the database is
down: nothing is PUBACKed meanwhile, the broker holds the rest), and a batch that keeps failing
for another reason is split until the one message that breaks it is found and refused alone.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from central.config import CentralConfig
from central.ingest.acks import AckBook, ack_messages
from central.ingest.batch import BatchProcessor, Handled, Inbound, Prepared
from central.ingest.downlink import DownLink
from central.ingest.link import connect, new_client, user_properties
from central.ingest.messages import RosterRequestIn
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.signing import MessageSigner
from contract.topics import UP_SNAPSHOT, StationTopics

log = logging.getLogger(__name__)

SUBSCRIPTION = "$share/{group}/yz/v1/station/+/up/#"
_SNAPSHOT_TOPIC = f"/up/{UP_SNAPSHOT}/"
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
STATS_EVERY_S = 60.0
#: PostgreSQL error classes worth retrying as they are: serialisation failure, deadlock.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "57P01", "08006", "08003", "08001"})


def _transient(exc: BaseException) -> bool:
    """The database is away or busy (retry the batch as it is), rather than refusing its data."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        return state in _RETRY_SQLSTATES
    return isinstance(exc, OSError)  # a snapshot file could not be written (disk full): try later


class _Inbox:
    """Received messages waiting for the ingest thread, bounded in bytes (blocking put).

    The ingest thread is woken when there is something for it to do (the first message of a batch,
    a full batch, the deadline), not by every message: at thousands of messages a second a wake-up
    per message is a GIL hand-over per message between paho's thread and the ingest thread."""

    def __init__(self, max_bytes: int) -> None:
        self._items: collections.deque[Inbound] = collections.deque()
        self._bytes = 0
        self._max = max_bytes
        self._cond = threading.Condition()
        self._wanted = 0  # the taker sleeps until this many items are queued (0: nobody waits)
        self._putters = 0  # producers blocked on a full inbox
        self.closed = False

    def put(self, item: Inbound) -> None:
        with self._cond:
            while self._items and self._bytes + item.size > self._max and not self.closed:
                if self._wanted:
                    self._cond.notify_all()  # full: the taker should take now, not at its deadline
                self._putters += 1
                try:
                    self._cond.wait(0.5)
                finally:
                    self._putters -= 1
            self._items.append(item)
            self._bytes += item.size
            if self._wanted and len(self._items) >= self._wanted:
                self._cond.notify_all()

    def take(self, max_items: int, max_wait_s: float, idle_s: float) -> list[Inbound]:
        """Up to `max_items`, waiting at most `max_wait_s` after the first one (or `idle_s` for one)."""
        with self._cond:
            if not self._items:
                self._wanted = 1
                try:
                    self._cond.wait(idle_s)
                finally:
                    self._wanted = 0
                if not self._items:
                    return []
            deadline = time.monotonic() + max_wait_s
            while len(self._items) < max_items and not self.closed and not self._putters:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wanted = max_items
                try:
                    self._cond.wait(remaining)
                finally:
                    self._wanted = 0
            count = min(max_items, len(self._items))
            out = [self._items.popleft() for _ in range(count)]
            self._bytes -= sum(i.size for i in out)
            if self._putters:
                self._cond.notify_all()
            return out

    def push_front(self, items: list[Inbound]) -> None:
        """Put a batch back at the front, in its order (it was not stored)."""
        with self._cond:
            self._items.extendleft(reversed(items))
            self._bytes += sum(i.size for i in items)
            self._cond.notify_all()

    def clear(self) -> int:
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()
            return count

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class IngestWorker:
    def __init__(
        self,
        *,
        index: int,
        config: CentralConfig,
        processor: BatchProcessor,
        down: DownLink,
        signer: MessageSigner,
        live: LiveBus,
        metrics: CentreMetrics,
        on_roster_request: Callable[[str, RosterRequestIn], object],
        on_roster_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.index = index
        self.config = config
        self.mqtt = config.mqtt
        self.client_id = self.mqtt.effective_client_id(index)
        self._processor = processor
        self._down = down
        self._signer = signer
        self._live = live
        self._metrics = metrics
        self._on_roster_request = on_roster_request
        self._on_roster_written = on_roster_written
        self._inbox = _Inbox(self.mqtt.queue_mb * 1024 * 1024)
        self._acks = AckBook()
        self._parked: list[Prepared] = []
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._next_ack = time.monotonic() + self.mqtt.ack_interval_s
        self._next_stats = time.monotonic() + STATS_EVERY_S
        self.stored = 0
        self.batches = 0
        self.failures = 0

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._client = client = new_client(self.mqtt, self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.index}", daemon=True)
        self._thread.start()
        connect(
            client,
            self.mqtt,
            clean_start=False,
            session_expiry_s=self.mqtt.session_expiry_s,
            receive_maximum=self.mqtt.receive_maximum,
        )
        log.info(
            "ingest worker connecting",
            extra={
                "fields": {
                    "client_id": self.client_id,
                    "host": self.mqtt.host,
                    "port": self.mqtt.port,
                    "subscription": SUBSCRIPTION.format(group=self.mqtt.shared_group),
                }
            },
        )

    def stop(self) -> None:
        """Finish the batch in hand, disconnect. What is still queued was never PUBACKed: the broker
        keeps it in this worker's session and sends it again on the next start."""
        self._stop.set()
        self._inbox.close()
        if self._thread is not None:
            self._thread.join(15.0)
            self._thread = None
        client = self._client
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001
                log.debug("ingest disconnect failed", exc_info=True)
            stopper = threading.Thread(target=client.loop_stop, name="ingest-stop", daemon=True)
            stopper.start()
            stopper.join(2.0)
        dropped = self._inbox.clear()
        log.info(
            "ingest worker stopped",
            extra={
                "fields": {"client_id": self.client_id, "stored": self.stored, "left_with_broker": dropped}
            },
        )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    # -- paho's thread ----------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("ingest worker refused by the broker", extra={"fields": {"reason": str(reason)}})
            return
        with self._gen_lock:
            self._generation += 1
        self._connected.set()
        client.subscribe(SUBSCRIPTION.format(group=self.mqtt.shared_group), qos=1)
        log.info(
            "ingest worker connected",
            extra={
                "fields": {
                    "client_id": self.client_id,
                    "session_present": bool(getattr(flags, "session_present", False)),
                }
            },
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if any(getattr(code, "is_failure", False) for code in codes or ()):
            log.error(
                "the broker refused the shared subscription (the centre's ACL: docs/mosquitto/acl-centre)",
                extra={"fields": {"codes": [str(c) for c in codes]}},
            )
            return
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._connected.is_set():
            log.warning("ingest worker disconnected", extra={"fields": {"reason": str(reason)}})
        self._connected.clear()
        self._subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(not UTF-8)"
        payload = message.payload
        size = len(payload)
        item = Inbound(
            topic=topic,
            payload=None if size > self.mqtt.max_payload_bytes else bytes(payload),
            size=size,
            mid=message.mid,
            qos=message.qos,
            generation=self._generation,
            received_wall=time.time(),
            received_mono=time.monotonic(),
            # Only a snapshot's properties are read (its metadata); parsing them is per message work.
            properties=user_properties(message) if _SNAPSHOT_TOPIC in topic else {},
        )
        self._inbox.put(item)

    # -- the ingest thread ------------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stop.is_set():
            items = self._inbox.take(self.mqtt.batch_max, self.mqtt.batch_ms / 1000.0, self._idle_wait())
            try:
                self._process(items)
                delay = RETRY_MIN_S
            except Exception as exc:  # only the database (or the disk) being away gets here
                self.failures += 1
                self._metrics.ingest_batch_failures.inc()
                log.error(
                    "ingest batch not stored; trying again",
                    extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:300], "retry_s": delay}},
                )
                self._stop.wait(delay)
                delay = min(RETRY_MAX_S, delay * 2)
            self._housekeeping()
        self._flush_acks(force=True)

    def _idle_wait(self) -> float:
        waits = [max(0.01, self._next_ack - time.monotonic())]
        if self._parked:
            waits.append(max(0.01, min(p.park_until or 0.0 for p in self._parked) - time.monotonic()))
        return min(1.0, *waits)

    def _process(self, items: list[Inbound]) -> None:
        now = time.monotonic()
        # With new messages every parked snapshot is looked at again (its event may just have come);
        # when idle, only those whose time is up (to be refused).
        due = list(self._parked) if items else [p for p in self._parked if (p.park_until or 0.0) <= now]
        if not items and not due:
            return
        started = time.perf_counter()
        ready, refused = self._processor.prepare(items)
        self._puback(refused)  # refusals do not depend on the database: final now
        try:
            handled = self._store(ready + due)
        except Exception:
            self._inbox.push_front([p.item for p in ready])  # nothing of it was stored
            raise
        handled.parked.extend(p for p in self._parked if p not in due)
        self._parked = handled.parked
        self._metrics.ingest_parked.set(len(self._parked))
        self._after_commit(handled)
        self.batches += 1
        self._metrics.ingest_batch_seconds.observe(time.perf_counter() - started)
        self._metrics.ingest_batch_size.observe(len(items))

    def _store(self, batch: list[Prepared]) -> Handled:
        """Store `batch`; a message that makes the transaction fail (not the database being away) is
        found by halving and refused alone, so one bad row never blocks the others."""
        if not batch:
            return Handled()
        try:
            return self._processor.apply(batch)
        except Exception as exc:
            if _transient(exc):
                raise
            if len(batch) == 1:
                prepared = batch[0]
                log.exception(
                    "message could not be stored; refused",
                    extra={"fields": {"topic": prepared.item.topic[:200]}},
                )
                handled = Handled()
                handled.refused.append(
                    (
                        prepared.kind,
                        "store_failed",
                        prepared.station.station_id,
                        f"{type(exc).__name__}: {exc}"[:300],
                    )
                )
                handled.done.append(prepared.item)
                return handled
        middle = len(batch) // 2
        first, second = self._store(batch[:middle]), self._store(batch[middle:])
        for name in ("done", "parked", "live", "requests", "refused"):
            getattr(first, name).extend(getattr(second, name))
        for station, seqs in second.stored.items():
            first.stored.setdefault(station, []).extend(seqs)
        first.outcomes.update(second.outcomes)
        first.roster_written = first.roster_written or second.roster_written
        return first

    def _puback(self, items: list[Inbound]) -> None:
        client = self._client
        current = self._generation
        if client is None:
            return
        for item in items:
            # A PUBACK belongs to the connection the message came on; after a reconnect the broker
            # sends the message again (and we store it once).
            if item.qos > 0 and item.generation == current:
                client.ack(item.mid, item.qos)

    def _after_commit(self, handled: Handled) -> None:
        self._puback(handled.done)
        for station_id, seqs in handled.stored.items():
            self._acks.add(station_id, seqs)
            self.stored += len(seqs)
        for (kind, outcome), count in handled.outcomes.items():
            self._metrics.ingest_messages.labels(kind, outcome).inc(count)
        self._processor.refused_after_commit(handled)
        self._live.publish_many(handled.live)
        for requester, request in handled.requests:
            self._on_roster_request(requester, request)
        if handled.roster_written:
            self._on_roster_written()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_ack:
            self._next_ack = now + self.mqtt.ack_interval_s
            self._flush_acks()
        if now >= self._next_stats:
            self._next_stats = now + STATS_EVERY_S
            log.info(
                "ingest worker",
                extra={
                    "fields": {
                        "event": "ingest_stats",
                        "client_id": self.client_id,
                        "stored": self.stored,
                        "batches": self.batches,
                        "failures": self.failures,
                        "queued": len(self._inbox),
                        "parked": len(self._parked),
                        "connected": self.connected,
                    }
                },
            )

    def _flush_acks(self, *, force: bool = False) -> None:
        """Publish the due `down/ack`s (signed). Not connected: they wait for the next round."""
        if not len(self._acks):
            return
        for station_id, seqs in self._acks.take().items():
            for message in ack_messages(station_id, seqs):
                payload = self._signer.sign_ack(station_id, message["id"], message["stored"])
                info = self._down.publish(StationTopics(station_id).ack, payload)
                if info is None:
                    if not force:
                        self._acks.put_back(station_id, seqs)
                    break
                self._metrics.acks_sent.inc()
