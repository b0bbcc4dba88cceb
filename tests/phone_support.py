"""Shared set-up for the phone tests (this module holds no tests).

`SmsReceiver` is a real HTTP server on 127.0.0.1 standing in for a union's SMS gateway: it keeps
every message the centre posts (JSON body and headers) and can be told to refuse. `RecordingFleet`
is the phone pages' seam to the roster and the doors (`central.phone.fleet.Fleet`) recording what
it was asked, for the tests of the phone API itself; the end-to-end tests use the real one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.orm import Session


@dataclass
class SmsMessage:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> str:
        return str(self.body["code"])


class SmsReceiver:
    def __init__(self) -> None:
        self.messages: list[SmsMessage] = []
        self.fail_with: int | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.messages.append(SmsMessage(json.loads(raw), dict(self.headers.items())))
                    status = receiver.fail_with or 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "refused"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last(self, phone: str) -> SmsMessage:
        with self._lock:
            for message in reversed(self.messages):
                if message.body.get("phone") == phone:
                    return message
        raise AssertionError(f"no SMS to {phone}")

    def code_for(self, phone: str) -> str:
        message = self.last(phone)
        # the code is in the text the person reads too, not only in the JSON field
        assert re.search(rf"(?<![0-9]){message.code}(?![0-9])", message.body["text"]), message.body["text"]
        return message.code


@contextmanager
def sms_receiver() -> Iterator[SmsReceiver]:
    receiver = SmsReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@dataclass
class RecordingFleet:
    changed: list[str] = field(default_factory=list)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)
    opens: list[dict[str, Any]] = field(default_factory=list)

    def member_changed(self, db: Session, member_id: str) -> None:
        self.changed.append(member_id)

    def withdraw_face(self, db: Session, member_id: str, actor: str) -> None:
        self.withdrawn.append((member_id, actor))

    def send_open(
        self, db: Session, *, station_id: str, member_id: str, by: str, reason: str, ttl_s: int
    ) -> str:
        command_id = f"c-test-{len(self.opens) + 1}"
        self.opens.append(
            {
                "command_id": command_id,
                "station_id": station_id,
                "member_id": member_id,
                "by": by,
                "ttl_s": ttl_s,
            }
        )
        return command_id
