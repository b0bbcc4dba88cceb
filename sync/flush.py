"""`yizhan sync flush [--timeout S]`: deliver everything pending in the outbox, then exit.

Operators run it before swapping a box (stop the service first: `systemctl stop yizhan`), so
that no event, snapshot or enrolment stays behind on the old SD card. It uses the very publisher
the daemon uses (PUBACK-confirmed, in order, rate-bounded), under its own client id
("<client id>-flush") and without a last will, so it neither kicks a running daemon off the
broker nor marks the station offline.

Exit status: 0 when the outbox is empty; 1 on timeout, with the number of messages left written
to standard error; 2 when the [mqtt] settings cannot be used (a secret file missing, say).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from contract.messages import InboundError, parse_ack
from contract.topics import StationTopics
from models.database import make_session_factory
from sync.client import LinkConfigError, MqttLink
from sync.outbox_publisher import OutboxPublisher

if TYPE_CHECKING:
    from edge.config import Config
    from edge.snapshots import SnapshotStore

log = logging.getLogger(__name__)

EXIT_EMPTY, EXIT_LEFT, EXIT_CONFIG = 0, 1, 2


class _LazySnapshots:
    """The snapshot folder, opened (and scanned) only if a snapshot row actually comes up."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._store: SnapshotStore | None = None

    def resolve(self, relative: str) -> Path:
        if self._store is None:
            from edge.snapshots import SnapshotStore

            self._store = SnapshotStore(self._config.storage.data_dir / "snapshots", self._config.snapshots)
        return self._store.resolve(relative)


def flush_command(config: Config, timeout_s: float) -> int:
    """Publish the whole outbox within `timeout_s`; see the module docstring for the exit status."""
    from edge.station import Station

    mqtt = config.mqtt
    if not mqtt.enabled:
        log.warning("[mqtt] enabled is false; flushing to the configured broker anyway")
    station = Station(config)
    link: MqttLink | None = None
    publisher: OutboxPublisher | None = None
    try:
        station_id = mqtt.effective_station_id(config.station.station_id)
        topics = StationTopics(station_id)
        client_id = mqtt.effective_client_id(station_id)[:58] + "-flush"
        holder: list[OutboxPublisher] = []

        def confirmed(topic: str, payload: bytes) -> None:
            # The centre's acknowledgements (down/ack) also reach this client: with them, what a
            # crashing broker swallowed is published again (see OutboxPublisher).
            try:
                holder[0].confirm(parse_ack(payload, mqtt.max_payload_bytes).seq)
            except InboundError as exc:
                log.warning("bad acknowledgement from the centre", extra={"fields": {"error": exc.code}})

        link = MqttLink(
            mqtt,
            client_id=client_id,
            username=mqtt.effective_username(station_id),
            subscriptions=(topics.ack,),
            clean_start=True,
            on_message=confirmed,
            on_ack=lambda mid, rc: holder[0].on_ack(mid, rc),
            on_connected=lambda: holder[0].on_connected(),
        )
        publisher = OutboxPublisher(
            sessions=station.sessions,
            write_sessions=make_session_factory(station.engine, immediate=True),
            link=link,
            topics=topics,
            config=mqtt,
            resolve_snapshot=_LazySnapshots(config).resolve,
            cipher=lambda: station.cipher,
        )
        holder.append(publisher)
        pending = publisher.depth()
        if pending == 0:
            sys.stderr.write("yizhan sync flush: the outbox is empty\n")
            return EXIT_EMPTY
        link.start()
        publisher.start()
        deadline = time.monotonic() + max(0.0, timeout_s)
        left = pending
        while time.monotonic() < deadline:
            left = publisher.depth()
            if left == 0:
                break
            if left <= len(publisher.stats.poisoned) and publisher.inflight == 0:
                break  # only rows that cannot be built are left: waiting will not help
            time.sleep(0.1)
        publisher.stop()  # commits the last acknowledgements
        left = publisher.depth()
        publisher = None
        if left:
            sys.stderr.write(
                f"yizhan sync flush: {left} message(s) left in the outbox after {timeout_s:g} s "
                f"(broker {mqtt.host}:{mqtt.port}; is it reachable, and is the centre subscribed?)\n"
            )
            return EXIT_LEFT
        sys.stderr.write(f"yizhan sync flush: the outbox is empty ({pending} message(s) delivered)\n")
        return EXIT_EMPTY
    except LinkConfigError as exc:
        sys.stderr.write(f"yizhan sync flush: {exc}\n")
        return EXIT_CONFIG
    finally:
        if publisher is not None:
            publisher.stop()
        if link is not None:
            link.stop(timeout=1.0)
        station.close()
