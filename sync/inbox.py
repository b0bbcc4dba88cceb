"""Messages from the centre: queued on paho's thread, validated and acted on by one worker.

paho's network thread must stay free to answer keepalives and PUBACKs, so `offer` only puts the
raw bytes on a bounded queue (a flood beyond `inbox_queue` is dropped and counted, never buffered
without bound). The "sync-inbox" worker parses each message strictly (`contract.messages`), routes it
by its exact topic (anything but this station's `down/roster`, `down/command` and `down/ack` is
ignored), checks its signature between the JSON and the model (`sync.keys`), and answers with a
result. Nothing a message contains can stop the worker: every failure becomes an
error result and a log line. Error results are rate-limited (a hostile flood must not turn the
station into an amplifier); successful ones are always sent.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from contract.messages import (
    Command,
    InboundError,
    OutboxAck,
    Verifier,
    parse_ack,
    parse_command,
    parse_roster,
)
from contract.topics import StationTopics
from sync.outcome import Outcome, RefType
from sync.rate import TokenBucket
from sync.roster_apply import RosterSync

log = logging.getLogger(__name__)

ERROR_RESULTS_PER_S = 20.0
ERROR_RESULTS_BURST = 50.0


class CommandHandler(Protocol):
    def handle(self, command: Command) -> Outcome: ...


@dataclass
class InboxStats:
    received: int = 0
    dropped: int = 0
    ignored: int = 0
    refused: int = 0
    applied: int = 0
    errors_not_answered: int = 0


class Inbox:
    def __init__(
        self,
        *,
        topics: StationTopics,
        max_payload_bytes: int,
        maxsize: int,
        roster: RosterSync,
        commands: CommandHandler,
        answer: Callable[[Outcome], None],
        confirm: Callable[[OutboxAck], None] | None = None,
        verify: Verifier | None = None,
    ) -> None:
        self._verify = verify
        self._topics = topics
        self._max_bytes = max_payload_bytes
        self._roster = roster
        self._commands = commands
        self._answer = answer
        self._confirm = confirm
        self._queue: queue.Queue[tuple[str, bytes | None, int] | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._errors = TokenBucket(ERROR_RESULTS_PER_S, ERROR_RESULTS_BURST)
        self.stats = InboxStats()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sync-inbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("sync inbox worker did not stop in time")
        self._thread = None

    def idle(self) -> bool:
        """True when nothing is waiting (tests and `status()` use it)."""
        return self._queue.unfinished_tasks == 0

    # -- paho's thread ---------------------------------------------------------------------------

    def offer(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        size = len(payload)
        # Oversized payloads are not kept: only their size travels to the worker, for the answer.
        item = (topic, None if size > self._max_bytes else payload, size)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.stats.dropped += 1
            if self.stats.dropped % 100 == 1:
                log.warning(
                    "sync inbox full: messages dropped", extra={"fields": {"dropped": self.stats.dropped}}
                )

    # -- the worker -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._process(*item)
            except Exception:
                log.exception("sync inbox: unexpected failure; carrying on")
            finally:
                self._queue.task_done()

    def _process(self, topic: str, payload: bytes | None, size: int) -> None:
        if topic == self._topics.roster:
            kind = "roster"
        elif topic == self._topics.command:
            kind = "command"
        elif topic == self._topics.ack:
            kind = "ack"
        else:
            self.stats.ignored += 1
            log.warning("message on an unexpected topic ignored", extra={"fields": {"topic": topic[:200]}})
            return
        started = time.perf_counter()
        try:
            if payload is None:
                raise InboundError("too_large", f"payload is {size} bytes, the limit is {self._max_bytes}")
            if kind == "roster":
                outcomes = self._roster.handle(parse_roster(payload, self._max_bytes, self._verify))
            elif kind == "ack":
                ack = parse_ack(payload, self._max_bytes, self._verify)
                if self._confirm is not None:
                    self._confirm(ack)
                outcomes = []  # acknowledgements are not answered (they would echo every second)
            else:
                outcomes = [self._commands.handle(parse_command(payload, self._max_bytes, self._verify))]
        except InboundError as exc:
            outcome = Outcome(exc.ref, _ref_type(exc.ref_type, kind), False, exc.code, str(exc)[:500])
            log.warning(
                "message from the centre refused",
                extra={
                    "fields": {"topic": topic, "error": exc.code, "ref": exc.ref, "detail": str(exc)[:200]}
                },
            )
            outcomes = [outcome]
        for outcome in outcomes:
            if outcome.ok:
                self.stats.applied += 1
            else:
                self.stats.refused += 1
            self._send(outcome)
        log.debug(
            "message handled",
            extra={"fields": {"topic": topic, "ms": round((time.perf_counter() - started) * 1000, 2)}},
        )

    def _send(self, outcome: Outcome) -> None:
        if not outcome.ok:
            if self._errors.wait_for(1) > 0:
                self.stats.errors_not_answered += 1
                return
            self._errors.take(1)
        try:
            self._answer(outcome)
        except Exception:
            log.exception("result not sent", extra={"fields": {"ref": outcome.ref}})


def _ref_type(value: str | None, topic_kind: str) -> RefType:
    if value in ("roster_change", "roster_snapshot", "roster_status", "ack"):
        return value  # type: ignore[return-value]
    if value == "command" or topic_kind == "command":
        return "command"
    return "unknown"
