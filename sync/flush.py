"""`yizhan sync flush [--timeout S]`: deliver everything pending in the outbox, then exit.

Operators run it before swapping a box (stop the service first: `systemctl stop yizhan`), so
that no event, snapshot or enrolment stays behind on the old SD card. It uses the very publisher
the daemon uses (delivered by the same rule, in order, rate-bounded), asking for its own client
id ("<client id>-flush") and without a last will, so it does not mark the station offline (a
broker that binds client ids to user names gives it the station's id: stop the daemon first).

Exit status: 0 when the outbox is empty; 1 on timeout, with the number of messages left written
to standard error; 2 when the [mqtt] settings cannot be used (a secret file missing, say).
"""

from __future__ import annotations

import logging
import sys
import time

from contract.messages import InboundError, parse_ack
from contract.topics import StationTopics
from sync.client import LinkConfigError, MqttLink
from sync.keys import CentreKeys, KeyFileError
from sync.outbox_publisher import OutboxPublisher
from sync.port import StationPort

log = logging.getLogger(__name__)

EXIT_EMPTY, EXIT_LEFT, EXIT_CONFIG = 0, 1, 2


def flush_command(port: StationPort, timeout_s: float) -> int:
    """Publish the whole outbox within `timeout_s`; see the module docstring for the exit status."""
    mqtt = port.mqtt
    if not mqtt.enabled:
        log.warning("[mqtt] enabled is false; flushing to the configured broker anyway")
    link: MqttLink | None = None
    publisher: OutboxPublisher | None = None
    try:
        station_id = port.station_id
        topics = StationTopics(station_id)
        keys = CentreKeys(port.sessions, station_id, mqtt.centre_key_file)
        client_id = mqtt.effective_client_id(station_id)[:58] + "-flush"
        holder: list[OutboxPublisher] = []

        def confirmed(topic: str, payload: bytes) -> None:
            # The centre's acknowledgements (down/ack) also reach this client: with them, what a
            # crashing broker swallowed is published again (see OutboxPublisher).
            try:
                holder[0].confirm(parse_ack(payload, mqtt.max_payload_bytes, keys.verify).stored)
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
            sessions=port.sessions,
            write_sessions=port.write_sessions,
            link=link,
            topics=topics,
            config=mqtt,
            resolve_snapshot=port.resolve_snapshot,
            cipher=port.cipher,
            face_model=port.face_model,
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
    except (LinkConfigError, KeyFileError) as exc:
        sys.stderr.write(f"yizhan sync flush: {exc}\n")
        return EXIT_CONFIG
    finally:
        if publisher is not None:
            publisher.stop()
        if link is not None:
            link.stop(timeout=1.0)
