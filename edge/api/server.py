"""`ApiServer`: uvicorn on its own thread ("api") inside `yizhan run`.

The door must never wait on HTTP, and an HTTP problem must never keep the door from starting: the
server runs its own event loop on its own thread, with uvicorn's signal handlers off (the daemon's
main thread owns SIGTERM and stops us through `stop()`). The listening socket is bound in `start()`,
so when `start()` returns the port accepts connections; if the address cannot be bound (the port
is taken, the LAN address not up yet after a reboot), the error is logged and the thread keeps
retrying with back-off instead of failing the daemon. A server that dies is restarted the same way.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from edge.api.app import create_app
from edge.api.context import ApiContext
from edge.api.services import StationServices

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 60.0


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the daemon's main thread owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for host:port (IPv4 or IPv6); OSError when it cannot be bound."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.set_inheritable(True)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}:{port}")


class ApiServer:
    """Serves `create_app(daemon)` on [api] host:port until `stop()`."""

    def __init__(self, daemon: StationServices, *, app: FastAPI | None = None) -> None:
        self.daemon = daemon
        self.settings = daemon.config.api
        self.app = app or create_app(daemon)
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    @property
    def context(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx

    @property
    def listening(self) -> bool:
        server = self._server
        return server is not None and server.started and not self._stop.is_set()

    def start(self) -> None:
        """Bind, start the "api" thread, return once uvicorn serves (or the bind failure is logged)."""
        host, port = self.settings.host, self.settings.port
        try:
            self._sock = bind_socket(host, port)
            self.port = int(self._sock.getsockname()[1])
        except OSError as exc:
            log.error(
                "api cannot listen yet; retrying in the background",
                extra={"fields": {"host": host, "port": port, "error": str(exc)}},
            )
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)
        self._thread.start()
        if self._sock is None:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self._thread.is_alive():
            server = self._server
            if server is not None and server.started:
                log.info("api listening", extra={"fields": {"host": host, "port": self.port}})
                return
            time.sleep(0.01)
        log.error("api did not start in time", extra={"fields": {"host": host, "port": self.port}})

    def stop(self, timeout: float = 5.0) -> None:
        """Close open previews, let requests finish (bounded), stop the thread. Idempotent."""
        self._stop.set()
        self.context.stopping.set()  # live previews end at their next frame
        server = self._server
        if server is not None:
            server.should_exit = True
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(2.0)
            if thread.is_alive():
                log.error("api thread did not stop")
        self._thread = None
        self._close_socket()
        self.context.close()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_INITIAL_S
        while not self._stop.is_set():
            if self._sock is None:
                try:
                    self._sock = bind_socket(self.settings.host, self.settings.port)
                    self.port = int(self._sock.getsockname()[1])
                    log.info("api bound", extra={"fields": {"host": self.settings.host, "port": self.port}})
                except OSError as exc:
                    log.warning(
                        "api cannot listen",
                        extra={"fields": {"port": self.settings.port, "error": str(exc), "retry_s": delay}},
                    )
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
            started = time.monotonic()
            self._server = _Server(self._config())
            try:
                self._server.run(sockets=[self._sock])
            except BaseException:  # noqa: BLE001  (SystemExit from uvicorn on startup failure included)
                log.exception("api server crashed")
            self._close_socket()
            if self._stop.is_set():
                return
            if time.monotonic() - started > 60.0:
                delay = RETRY_INITIAL_S
            log.error("api server stopped unexpectedly; restarting", extra={"fields": {"retry_s": delay}})
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RETRY_MAX_S)

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            log_config=None,  # our structured logging, not uvicorn's dictConfig
            access_log=False,  # RequestLog writes one structured line per request instead
            lifespan="off",
            proxy_headers=False,  # the login throttle keys on the real peer address
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=3,
            limit_concurrency=64,  # a Pi answers 503 beyond this instead of running out of memory
            h11_max_incomplete_event_size=16 * 1024,
        )

    def _close_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
