"""The centre's composition root: builds every part in a flat list of steps, stops them in reverse.

`CentralApp(config).start()` loads the data key, opens the database and upgrades it, builds the web
app, then starts the background workers (ingest, roster fan-out, alarms: each engineer appends
one step here and nothing else changes). `serve()` runs the web server in the calling thread until
SIGTERM/SIGINT; `close()` stops what was started, newest first. Nothing is built at import time.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from central.alarms.worker import AlarmWorker
from central.config import CentralConfig
from central.data_key import DataKey
from central.ingest.parts import MqttSide
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.signing import MessageSigner
from central.store.database import open_engine, read_session_factory, session_factory, upgrade
from central.web.app import create_app
from central.web.context import WebContext

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours asks it to exit and the process then stops the
    workers and exits 0 (uvicorn's re-raises SIGTERM after shutdown, killing the process first)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Worker(Protocol):
    """A background part of the centre: started once, stopped once (idempotent), on its own threads."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class CentralApp:
    config: CentralConfig
    env: Mapping[str, str] | None = None
    data_key: DataKey | None = None
    engine: Engine | None = None
    db: sessionmaker[Session] | None = None
    web: FastAPI | None = None
    revision: str | None = None
    live: LiveBus = field(default_factory=LiveBus)
    metrics: CentreMetrics = field(default_factory=CentreMetrics)
    signer: MessageSigner | None = None
    mqtt: MqttSide | None = None
    _stops: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def start(self) -> None:
        """Build and start everything; on a failure halfway, what was started is stopped again."""
        try:
            self.data_key = DataKey.load(self.config, self.env)
            self.engine = open_engine(self.config.database_url, self.config.database)
            self._stops.append(("database", self.engine.dispose))
            self.revision = upgrade(self.engine)
            self.db = session_factory(self.engine)
            reads = read_session_factory(self.engine)
            self.signer = MessageSigner(reads, self.data_key)
            if self.config.mqtt.enabled:  # objects only: they connect when started below
                self.mqtt = MqttSide.build(
                    self.config,
                    self.db,
                    self.data_key,
                    self.live,
                    self.metrics,
                    signer=self.signer,
                    reads=reads,
                )
            context = WebContext.build(self.config, self.db, self.data_key, self.live)
            context.metrics, context.signer = self.metrics, self.signer
            context.down = self.mqtt.down if self.mqtt is not None else None
            self.web = create_app(context)
            # Later steps, one line each: ingest workers ([mqtt] enabled), roster fan-out, alarms.
            for name, worker in self.workers():
                worker.start()
                self._stops.append((name, worker.stop))
        except BaseException:
            self.close()
            raise
        log.info(
            "centre started",
            extra={
                "fields": {"event": "centre_started", "revision": self.revision, "database": self.db_label}
            },
        )

    def workers(self) -> list[tuple[str, Worker]]:
        """The background workers to start, in order."""
        assert self.db is not None
        # Alarms first: an alarm raised from the sweep of what ingest stored while it was down.
        return [
            ("alarms", AlarmWorker.build(self.config, self.db, self.live)),
            *(self.mqtt.workers() if self.mqtt is not None else []),  # down, roster, ingest, housekeeping
        ]

    @property
    def db_label(self) -> str:
        """The database URL without its password, for logs."""
        return self.config.database_url.render_as_string(hide_password=True)

    def serve(self) -> None:
        """Serve the web app in this thread until SIGTERM or SIGINT."""
        assert self.web is not None, "start() first"
        web = self.config.web
        server = _Server(
            uvicorn.Config(
                self.web,
                host=web.host,
                port=web.port,
                log_config=None,
                access_log=False,
                proxy_headers=bool(web.forwarded_allow_ips),
                forwarded_allow_ips=list(web.forwarded_allow_ips) or None,
                server_header=False,
                # Open dashboards hold server-sent-event streams: without a bound, a stop would
                # wait for every browser to go away.
                timeout_graceful_shutdown=3,
            )
        )
        log.info("serving", extra={"fields": {"event": "web_listening", "host": web.host, "port": web.port}})

        def _stop(signum: int, _frame: object) -> None:
            log.info("stopping", extra={"fields": {"event": "centre_stopping", "signal": signum}})
            server.should_exit = True

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def wait(self) -> None:
        """Without the web server (`yizhan-central ingest`): block until SIGTERM or SIGINT."""
        stop = threading.Event()

        def _stop(signum: int, _frame: object) -> None:
            log.info("stopping", extra={"fields": {"event": "centre_stopping", "signal": signum}})
            stop.set()

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        """Stop what was started, in reverse order; safe to call twice."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception:
                log.exception("stopping failed", extra={"fields": {"part": name}})
