"""A group robot on 127.0.0.1 speaking WeCom's webhook format: the demo centre pushes its alarm
messages here, and the demo prints them as the union office's group chat would show them."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable


class Robot:
    def __init__(self, show: Callable[[str], None]) -> None:
        self.messages: list[str] = []
        self._lock = threading.Lock()
        robot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1 << 20))
                try:
                    message = json.loads(body.decode("utf-8"))
                    part = message.get("markdown") or message.get("text") or {}
                    text = str(part.get("content", ""))
                except (ValueError, AttributeError):
                    text = ""
                answer = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                if text:
                    with robot._lock:
                        robot.messages.append(text)
                    show(text)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-robot", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=demo"

    def received(self, needle: str) -> bool:
        with self._lock:
            return any(needle in m for m in self.messages)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
