"""Helpers for the alarm tests: real receivers on 127.0.0.1 (group robots, SMTP), a settable clock,
and writers that put stations, events and heartbeats in the database the way ingest does."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from mqtt_broker import free_port
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from central.store import events as event_store
from central.store import stations as station_store
from central.store.tables import Station

T0 = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves (thread-safe)."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> dt.datetime:
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)
            return self._now


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes


Responder = Callable[[Received], tuple[int, bytes]]


def ok_answer(vendor: str) -> Responder:
    body = b'{"code":0,"msg":"success"}' if vendor == "feishu" else b'{"errcode":0,"errmsg":"ok"}'
    return lambda _: (200, body)


@dataclass
class Receiver:
    """A group robot's webhook endpoint: records every request, answers with `respond`."""

    respond: Responder
    requests: list[Received] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self.arrived.wait(remaining)
            return list(self.requests)


@contextmanager
def receiver(respond: Responder) -> Iterator[Receiver]:
    box = Receiver(respond)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            parts = urllib.parse.urlsplit(self.path)
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = None
            item = Received(parts.path, urllib.parse.parse_qs(parts.query), dict(self.headers), body, raw)
            with box.arrived:
                box.requests.append(item)
                box.arrived.notify_all()
            status, answer = box.respond(item)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up (a timeout test)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box.server = server
    thread = threading.Thread(target=server.serve_forever, name="test-receiver", daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class MailBox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}")
                self.arrived.wait(remaining)
            return list(self.messages)


@contextmanager
def smtp_server(tls_context: ssl.SSLContext | None = None) -> Iterator[MailBox]:
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port, keeping what it receives; with
    `tls_context` it requires STARTTLS before anything else."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope
    from aiosmtpd.smtp import Session as SmtpSession

    box = MailBox()

    class Handler:
        async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:  # noqa: N802
            content = envelope.original_content or b""
            with box.arrived:
                box.messages.append(message_from_bytes(content))
                box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
                box.arrived.notify_all()
            return "250 OK"

    box.port = free_port()  # aiosmtpd connects to its own port once started: it must be known
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        tls_context=tls_context,
        require_starttls=tls_context is not None,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# -- what ingest writes -------------------------------------------------------------------------


def add_station(db: sessionmaker[Session], station_id: str, district: str = "haidian", **extra: Any) -> None:
    with db.begin() as session:
        station_store.add_station(
            session,
            station_id=station_id,
            name=extra.pop("name", f"驿站 {station_id}"),
            district_id=district,
            **extra,
        )


def store_event(
    db: sessionmaker[Session],
    station_id: str,
    kind: str,
    *,
    ts: dt.datetime,
    received_at: dt.datetime | None = None,
    reason: str | None = None,
    method: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store one event as ingest does; returns the live bus's `event` data for it."""
    event_id = str(uuid.uuid4())
    with db.begin() as session:
        event_store.store_event(
            session,
            id=event_id,
            ts=ts,
            station_id=station_id,
            kind=kind,
            method=method,
            reason=reason,
            details=details or {},
            received_at=received_at or ts,
        )
    return {
        "id": event_id,
        "station_id": station_id,
        "ts": ts.isoformat(),
        "kind": kind,
        "method": method,
        "member_id": None,
        "reason": reason,
        "granted": kind in ("entry", "exit"),
        "details": details or {},
        "snapshot": None,
    }


def heartbeat(
    db: sessionmaker[Session],
    station_id: str,
    *,
    at: dt.datetime,
    state: str = "online",
    health: dict[str, Any] | None = None,
) -> None:
    """The station row as ingest leaves it after a status message received at `at`."""
    values: dict[str, Any] = {"last_state": state, "last_seen_at": at, "last_status_at": at}
    if state == "online":
        values["last_health"] = health if health is not None else {"camera": {"state": "up"}}
    with db.begin() as session:
        session.execute(update(Station).where(Station.station_id == station_id).values(**values))
