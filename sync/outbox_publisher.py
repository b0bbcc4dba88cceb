"""Draining the on-disk outbox to the broker: in order, at a bounded rate, marked delivered by
the centre's acknowledgement (or, for a centre without acks, the broker's PUBACK).

Why the outbox and not paho's queue: paho keeps unacknowledged messages in memory, so a power cut
or `kill -9` loses them. Here a row leaves the outbox only when it is delivered; until then it
stays on disk and is published again after a reconnect or a restart.

The delivery rule (`[mqtt] delivery`, docs/mqtt.md): a PUBACK only says the broker has the message,
and a broker can lose what it acknowledged (a crash; a session taken over by a stolen client id).
So once the centre acknowledges what it stored (`down/ack`, `seq` ranges), a PUBACK only frees the
in-flight slot and the row waits, in memory (`_awaiting`, bounded by `max_unconfirmed`), for the
centre's ack; a row not acknowledged within `ack_timeout_s` of its PUBACK is published again. After
a restart every unacknowledged row simply goes out again. With `delivery = "puback"` (or "auto"
before the centre's first ack) a successful PUBACK marks the row delivered, as before.

Duplicates are therefore possible (a PUBACK lost with the connection) and the centre
deduplicates on the ids every message carries (the event id; the enrolment id; the event id in a
snapshot's topic).

One thread ("sync-outbox") does all the work: it reads pending rows in `seq` order, keeps at most
`min(max_inflight, broker Receive Maximum)` messages in flight, spends tokens from a message and
a byte bucket, and commits the acknowledged rows in small batches (one fsync per batch, so the
door's own commits are not queued behind hundreds of ours). paho's thread only appends
`(mid, reason)` to a deque. PUBACK reason codes: success marks the row sent; "no matching
subscribers" (0x10, the broker dropped it) and failures (0x87 not authorised, quota, ...) keep it,
count an attempt, and rewind to the first such row after a back-off, so order is kept.

Snapshots: when an event that names a snapshot is acknowledged, a `snapshot` row is queued in
the same transaction; it is published (the JPEG, on `up/snapshot/<event_id>`) once the file
exists. The snapshot thread writes it after the door moved, so a missing file is waited for up to
`snapshot_wait_s`, then given up (logged). Rows younger than `FRESH_HOLD_S` wait that long, so
the frame-to-relay latency, filled in right after the relay moved, travels with the event.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import FaceModelInfo
from contract.topics import UP_SNAPSHOT, StationTopics
from models import events as event_store
from models import members as member_store
from models.tables import OutboxItem
from sync.client import MqttLink
from sync.config import MqttConfig
from sync.enrolment import scrub_photos
from sync.outbox_rows import MessageBuilder, NotYet, Ready, Row, Skip
from sync.rate import TokenBucket

log = logging.getLogger(__name__)

FRESH_HOLD_S = 0.3
BUFFER_ROWS = 500
COMMIT_BATCH = 256
COMMIT_EVERY_S = 0.05
ACK_TIMEOUT_S = 60.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
SNAPSHOT_RETRY_S = 0.5
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK = 2000
RC_NO_SUBSCRIBERS = 0x10
RECONNECT_GRACE_S = 10.0
CONFIRMED_KEY = "sync.centre_ack_seq"
ACK_MODE_KEY = "sync.centre_acks"


@dataclass(slots=True)
class _Flight:
    seq: int
    kind: str
    event_id: str | None
    snapshot: str | None
    scrub: bool
    sent_mono: float
    confirmed: bool = False  # the centre acknowledged it before its PUBACK came back


@dataclass
class PublisherStats:
    published: int = 0
    acked: int = 0
    no_subscribers: int = 0
    refused: int = 0
    skipped: int = 0
    republished: int = 0  # acknowledged by the broker, not by the centre in time: sent again
    centre_acked: int = 0
    confirmed_seq: int | None = None
    bytes_published: int = 0
    last_publish: float | None = None  # wall time
    last_ack: float | None = None  # wall time
    last_error: str | None = None
    poisoned: dict[int, str] = field(default_factory=dict)


class OutboxPublisher:
    """Publishes the outbox through `link`. `on_ack` must be wired to the link's ack callback."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        write_sessions: sessionmaker[Session] | None = None,
        link: MqttLink,
        topics: StationTopics,
        config: MqttConfig,
        resolve_snapshot: Callable[[str], Path] | None = None,
        cipher: Callable[[], TemplateCipher] | None = None,
        face_model: Callable[[], FaceModelInfo] | None = None,
    ) -> None:
        self._sessions = sessions
        # BEGIN IMMEDIATE for read-then-write transactions: in WAL mode a deferred one fails at
        # once ("database is locked") if the door committed an event between its read and write.
        self._write_sessions = write_sessions or sessions
        self._link = link
        self._topics = topics
        self._config = config
        self._builder = MessageBuilder(
            sessions=sessions,
            topics=topics,
            config=config,
            resolve_snapshot=resolve_snapshot,
            cipher=cipher,
            face_model=face_model,
        )
        self._messages = TokenBucket(config.max_messages_per_s, max(1.0, config.max_messages_per_s * 0.05))
        self._bytes = TokenBucket(config.max_bytes_per_s, max(65536.0, config.max_bytes_per_s * 0.05))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        self._inflight: dict[int, _Flight] = {}
        self._busy_seqs: set[int] = set()  # in flight, or acknowledged and not yet committed
        self._buffer: collections.deque[Row] = collections.deque()
        self._held: Ready | None = None
        self._cursor = 0
        self._deferred: dict[int, float] = {}  # snapshot rows waiting for their file: seq -> retry at
        self._to_mark: list[_Flight] = []
        self._to_skip: list[int] = []  # rows given up on (snapshot file gone): marked without sending
        self._attempts: list[int] = []
        self._first_unmarked = 0.0
        self._backoff_s = 0.0
        self._paused_until = 0.0
        self._next_prune = time.monotonic() + 60.0
        self._reconnected = False
        self._ack_mode = config.delivery == "centre_ack"
        self._ack_mode_dirty = False
        self._confirms: collections.deque[list[tuple[int, int]]] = collections.deque()
        self._awaiting: dict[int, tuple[_Flight, float]] = {}  # seq -> (flight, PUBACK at, monotonic)
        self._confirm_dirty = False
        self.stats = PublisherStats()

    # -- control --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._sessions() as session:
            stored = member_store.get_state(session, CONFIRMED_KEY)
            acks_seen = member_store.get_state(session, ACK_MODE_KEY) == "1"
        self.stats.confirmed_seq = int(stored) if stored is not None and stored.isdigit() else None
        if self._config.delivery == "auto" and acks_seen:
            self._ack_mode = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sync-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after committing what was acknowledged (bounded by `timeout`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("outbox publisher did not stop in time")
            self._thread = None

    def wake(self) -> None:
        """New rows were committed (called from the recorder's listener: never blocks)."""
        self._wake.set()

    def on_ack(self, mid: int, reason: int) -> None:
        """paho's thread: a PUBACK arrived."""
        self._acks.append((mid, reason))
        self._wake.set()

    def confirm(self, stored: Sequence[tuple[int, int]]) -> None:
        """The centre has committed these `seq` ranges (`down/ack`); applied by this thread."""
        self._confirms.append([(int(a), int(b)) for a, b in stored])
        self._wake.set()

    @property
    def delivery_rule(self) -> str:
        """`centre_ack` or `puback`: what marks a row delivered right now."""
        return "centre_ack" if self._ack_mode else "puback"

    @property
    def unconfirmed(self) -> int:
        """Rows the broker acknowledged that wait for the centre's ack."""
        return len(self._awaiting)

    def on_connected(self) -> None:
        """paho's thread: a (re)connection. paho re-sends what was in flight; restart the clocks."""
        self._reconnected = True
        self._paused_until = 0.0
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def depth(self) -> int:
        with self._sessions() as session:
            return event_store.outbox_depth(session)

    def oldest_pending_age_s(self) -> float | None:
        with self._sessions() as session:
            oldest = session.scalar(
                select(OutboxItem.created_at)
                .where(OutboxItem.sent_at.is_(None))
                .order_by(OutboxItem.seq)
                .limit(1)
            )
        return None if oldest is None else max(0.0, time.time() - float(oldest))

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self._step()
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("outbox publisher step failed; retrying")
                wait = 1.0
            if wait > 0:
                self._wake.wait(wait)
        try:
            self._handle_acks()
            self._commit(force=True)
        except Exception:
            log.exception("final outbox commit failed (the rows stay pending and go out next time)")

    def _step(self) -> float:
        """One round; returns how long to sleep unless woken."""
        self._handle_acks()
        self._handle_confirms()
        self._commit(force=not self._inflight)
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self._prune()
        self._check_stalled(now)
        if not self._link.connected:
            return 0.5
        if now < self._paused_until:
            return min(1.0, self._paused_until - now)
        wait = self._fill_window(now)
        if self._to_mark:
            wait = min(wait, COMMIT_EVERY_S)
        return wait

    # -- publishing -----------------------------------------------------------------------------

    def _window(self) -> int:
        return max(1, min(self._config.max_inflight, self._link.receive_maximum))

    def _fill_window(self, now: float) -> float:
        window = self._window()
        while len(self._inflight) < window and not self._stop.is_set():
            if self._ack_mode and len(self._awaiting) >= self._config.max_unconfirmed:
                return 1.0  # back-pressure: woken by the centre's next ack
            ready = self._held
            self._held = None
            if ready is None:
                row = self._next_row()
                if row is None:
                    return self._idle_wait()
                age = time.time() - row.created_at
                if 0 <= age < FRESH_HOLD_S:
                    self._buffer.appendleft(row)
                    return FRESH_HOLD_S - age
                ready = self._prepare(row)
                if ready is None:
                    continue
            wait = max(self._messages.wait_for(1), self._bytes.wait_for(len(ready.data)))
            if wait > 0:
                self._held = ready
                return wait
            if not self._send(ready):
                self._held = ready
                return 0.2
        return 1.0  # window full: woken by the next PUBACK

    def _idle_wait(self) -> float:
        if self._deferred:
            return max(0.05, min(self._deferred.values()) - time.monotonic())
        return 1.0  # poll for rows written by other processes (the CLI)

    def _send(self, ready: Ready) -> bool:
        mid = self._link.publish(ready.topic, ready.data, qos=1, properties=ready.properties)
        if mid is None:
            return False
        self._messages.take(1)
        self._bytes.take(len(ready.data))
        self._inflight[mid] = _Flight(
            seq=ready.row.seq,
            kind=ready.row.kind,
            event_id=ready.row.event_id,
            snapshot=ready.snapshot,
            scrub=ready.scrub,
            sent_mono=time.monotonic(),
        )
        self._busy_seqs.add(ready.row.seq)
        self.stats.published += 1
        self.stats.bytes_published += len(ready.data)
        self.stats.last_publish = time.time()
        return True

    def _next_row(self) -> Row | None:
        while True:
            if not self._buffer:
                self._refill()
            if not self._buffer:
                return None
            row = self._buffer.popleft()
            if row.seq in self._busy_seqs or row.seq in self.stats.poisoned:
                continue
            return row

    def _refill(self) -> None:
        now = time.monotonic()
        due = sorted(seq for seq, at in self._deferred.items() if at <= now)
        with self._sessions() as session:
            columns = (
                OutboxItem.seq,
                OutboxItem.event_id,
                OutboxItem.topic_kind,
                OutboxItem.payload,
                OutboxItem.created_at,
            )
            rows = list(
                session.execute(
                    select(*columns)
                    .where(OutboxItem.sent_at.is_(None), OutboxItem.seq > self._cursor)
                    .order_by(OutboxItem.seq)
                    .limit(BUFFER_ROWS)
                )
            )
            retry = (
                list(
                    session.execute(
                        select(*columns).where(OutboxItem.sent_at.is_(None), OutboxItem.seq.in_(due))
                    )
                )
                if due
                else []
            )
        for seq in due:
            self._deferred.pop(seq, None)
        fetched = [Row(int(r[0]), r[1], str(r[2]), dict(r[3] or {}), float(r[4])) for r in retry + rows]
        if rows:
            self._cursor = max(self._cursor, int(rows[-1][0]))
        self._buffer.extend(fetched)

    def _prepare(self, row: Row) -> Ready | None:
        """The message for a row, or None when it cannot go now (deferred, skipped or poisoned)."""
        try:
            built = self._builder.build(row)
        except Exception as exc:
            # One row that cannot be built (bad data, a template that no longer decrypts) must not
            # block the rows behind it: it stays pending, is skipped, and is counted in status().
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.stats.poisoned[row.seq] = reason
            log.error(
                "outbox row cannot be published; it stays pending (restart to retry)",
                extra={"fields": {"seq": row.seq, "topic_kind": row.kind, "error": reason}},
            )
            return None
        if isinstance(built, NotYet):
            self._deferred[row.seq] = time.monotonic() + SNAPSHOT_RETRY_S
            return None
        if isinstance(built, Skip):
            self._give_up(row, built.problem)
            return None
        return built

    def _give_up(self, row: Row, problem: str) -> None:
        self.stats.skipped += 1
        self._to_skip.append(row.seq)
        self._busy_seqs.add(row.seq)
        log.warning(
            "snapshot not uploaded",
            extra={"fields": {"seq": row.seq, "event_id": row.payload.get("event_id"), "problem": problem}},
        )

    # -- acknowledgements ---------------------------------------------------------------------

    def _handle_acks(self) -> None:
        rewind_to: int | None = None
        while self._acks:
            mid, reason = self._acks.popleft()
            flight = self._inflight.pop(mid, None)
            if flight is None:
                continue  # a late PUBACK for a message we already gave up on
            if flight.confirmed:
                continue  # the centre's ack came first: already marked
            if reason < 0x80 and not (reason == RC_NO_SUBSCRIBERS and self._config.require_subscriber):
                self.stats.acked += 1
                self.stats.last_ack = time.time()
                self._backoff_s = 0.0
                if self._ack_mode:
                    self._awaiting[flight.seq] = (flight, time.monotonic())  # until the centre says so
                else:
                    self._mark(flight)
                continue
            self._busy_seqs.discard(flight.seq)
            self._attempts.append(flight.seq)
            if reason == RC_NO_SUBSCRIBERS:
                self.stats.no_subscribers += 1
                problem = "no subscribers: the broker dropped it (is the centre connected?)"
            else:
                self.stats.refused += 1
                problem = f"refused by the broker (reason 0x{reason:02x})"
            self.stats.last_error = problem
            rewind_to = flight.seq if rewind_to is None else min(rewind_to, flight.seq)
        if rewind_to is not None:
            self._rewind(rewind_to)
            self._backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, self._backoff_s * 2))
            self._paused_until = time.monotonic() + self._backoff_s
            log.warning(
                "outbox delivery not accepted; retrying in order after a pause",
                extra={
                    "fields": {
                        "from_seq": rewind_to,
                        "pause_s": self._backoff_s,
                        "why": self.stats.last_error,
                    }
                },
            )

    def _mark(self, flight: _Flight) -> None:
        if not self._to_mark:
            self._first_unmarked = time.monotonic()
        self._to_mark.append(flight)

    def _handle_confirms(self) -> None:
        """Apply the centre's acks: every pending row in the ranges is delivered."""
        if not self._confirms:
            return
        ranges: list[tuple[int, int]] = []
        while self._confirms:
            ranges.extend(self._confirms.popleft())
        if not ranges:
            return
        self.stats.centre_acked += 1
        highest = max(b for _, b in ranges)
        if self.stats.confirmed_seq is None or highest > self.stats.confirmed_seq:
            self.stats.confirmed_seq = highest
            self._confirm_dirty = True
        if not self._ack_mode and self._config.delivery == "auto":
            self._ack_mode = self._ack_mode_dirty = True
            log.info("the centre acknowledges what it stores: its acks now mark outbox rows delivered")
        if not self._ack_mode:
            return  # delivery = "puback": acks are informational

        def inside(seq: int) -> bool:
            return any(a <= seq <= b for a, b in ranges)

        for seq in [s for s in self._awaiting if inside(s)]:
            flight, _ = self._awaiting.pop(seq)
            self._mark(flight)
        for flight in self._inflight.values():
            if not flight.confirmed and inside(flight.seq):
                flight.confirmed = True
                self._mark(flight)
        # Rows published before a restart (or whose PUBACK was lost) that the centre has now.
        marked = {f.seq for f in self._to_mark}
        newly: set[int] = set()
        with self._sessions() as session:
            for a, b in ranges:
                rows = session.execute(
                    select(
                        OutboxItem.seq, OutboxItem.topic_kind, OutboxItem.event_id, OutboxItem.payload
                    ).where(OutboxItem.sent_at.is_(None), OutboxItem.seq >= a, OutboxItem.seq <= b)
                )
                for seq, kind, event_id, payload in rows:
                    if seq in marked or seq in self._busy_seqs:
                        continue
                    snapshot = (payload or {}).get("snapshot") if kind == "event" else None
                    self._busy_seqs.add(int(seq))
                    newly.add(int(seq))
                    self._mark(
                        _Flight(
                            seq=int(seq),
                            kind=str(kind),
                            event_id=event_id,
                            snapshot=snapshot
                            if self._config.upload_snapshots and isinstance(snapshot, str)
                            else None,
                            scrub="photos_jpeg_b64" in (payload or {}),
                            sent_mono=time.monotonic(),
                        )
                    )

        if newly:
            self._buffer = collections.deque(r for r in self._buffer if r.seq not in newly)
            for seq in newly:
                self._deferred.pop(seq, None)
            if self._held is not None and self._held.row.seq in newly:
                self._held = None

    def _rewind(self, seq: int) -> None:
        self._cursor = min(self._cursor, seq - 1)
        self._buffer.clear()
        self._held = None

    def _check_stalled(self, now: float) -> None:
        if self._reconnected:
            self._reconnected = False
            for flight in self._inflight.values():
                flight.sent_mono = now
            # A reconnection may mean the broker restarted and lost what it held: what the centre
            # has not acknowledged goes out again soon (its acks queued meanwhile arrive first).
            soon = now - self._config.ack_timeout_s + min(RECONNECT_GRACE_S, self._config.ack_timeout_s)
            for seq, (flight, at) in list(self._awaiting.items()):
                self._awaiting[seq] = (flight, min(at, soon))
        if self._awaiting and self._link.connected:
            late = [seq for seq, (_, at) in self._awaiting.items() if now - at >= self._config.ack_timeout_s]
            if late:
                for seq in late:
                    del self._awaiting[seq]
                    self._busy_seqs.discard(seq)
                self.stats.republished += len(late)
                self._rewind(min(late))
                log.warning(
                    "the centre has not acknowledged messages the broker took; publishing them again",
                    extra={"fields": {"messages": len(late), "from_seq": min(late)}},
                )
        if not self._inflight or not self._link.connected:
            return
        oldest = min(f.sent_mono for f in self._inflight.values())
        if now - oldest < ACK_TIMEOUT_S:
            return
        stale = [mid for mid, f in self._inflight.items() if now - f.sent_mono >= ACK_TIMEOUT_S]
        pending = [self._inflight[mid].seq for mid in stale if not self._inflight[mid].confirmed]
        for mid in stale:
            flight = self._inflight.pop(mid)
            self._busy_seqs.discard(flight.seq)
        first = min(pending) if pending else 0
        if pending:
            self._rewind(first)
        log.warning(
            "no PUBACK for a while; publishing those rows again",
            extra={"fields": {"messages": len(stale), "from_seq": first}},
        )

    def _commit(self, *, force: bool) -> None:
        if self._confirm_dirty or self._ack_mode_dirty:
            confirmed = self.stats.confirmed_seq
            with self._write_sessions() as session, session.begin():
                if confirmed is not None:
                    member_store.set_state(session, CONFIRMED_KEY, str(confirmed))
                if self._ack_mode_dirty:
                    member_store.set_state(session, ACK_MODE_KEY, "1")
            self._confirm_dirty = self._ack_mode_dirty = False
        if not (self._to_mark or self._to_skip or self._attempts):
            return
        due = (
            force
            or len(self._to_mark) >= COMMIT_BATCH
            or time.monotonic() - self._first_unmarked >= COMMIT_EVERY_S
            or bool(self._to_skip)
            or bool(self._attempts)
        )
        if not due:
            return
        marks, skips, attempts = self._to_mark, self._to_skip, self._attempts
        self._to_mark, self._to_skip, self._attempts = [], [], []
        now = time.time()
        try:
            with self._write_sessions() as session, session.begin():
                seqs = [f.seq for f in marks] + skips
                fresh = (
                    set(
                        session.scalars(
                            select(OutboxItem.seq).where(
                                OutboxItem.seq.in_(seqs), OutboxItem.sent_at.is_(None)
                            )
                        )
                    )
                    if seqs
                    else set()
                )
                event_store.mark_sent(session, seqs, now)
                if attempts:
                    event_store.record_attempts(session, attempts)
                for flight in marks:
                    if flight.seq in fresh and flight.snapshot and flight.event_id:
                        event_store.enqueue(
                            session,
                            topic_kind=UP_SNAPSHOT,
                            payload={"event_id": flight.event_id, "path": flight.snapshot},
                            event_id=flight.event_id,
                        )
                scrub = [f.seq for f in marks if f.scrub]
                if scrub:
                    scrub_photos(session, scrub)
        except Exception:
            # Put them back: nothing was marked, they will be committed (or re-sent) later.
            self._to_mark = marks + self._to_mark
            self._to_skip = skips + self._to_skip
            self._attempts = attempts + self._attempts
            raise
        for seq in [f.seq for f in marks] + skips:
            self._busy_seqs.discard(seq)
        if any(f.snapshot for f in marks):
            self._wake.set()

    def _prune(self) -> None:
        """Delete delivered rows older than `outbox_keep_sent_days`, in small transactions."""
        cutoff = time.time() - self._config.outbox_keep_sent_days * 86400.0
        total = 0
        while not self._stop.is_set():
            with self._write_sessions() as session, session.begin():
                chosen = (
                    select(OutboxItem.seq)
                    .where(OutboxItem.sent_at.is_not(None), OutboxItem.sent_at < cutoff)
                    .limit(PRUNE_CHUNK)
                    .scalar_subquery()
                )
                result = session.execute(delete(OutboxItem).where(OutboxItem.seq.in_(chosen)))
                count = int(getattr(result, "rowcount", 0) or 0)
            total += count
            if count < PRUNE_CHUNK:
                break
            time.sleep(0.05)  # let the door's writers in between chunks
        if total:
            log.info("delivered outbox rows pruned", extra={"fields": {"rows": total}})
