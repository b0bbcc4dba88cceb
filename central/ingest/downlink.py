"""`DownLink`: the one publisher of a centre process (acks, roster messages, commands).

Why one, not one per worker: MQTT keeps the order of messages from one client on one topic, and the
contract leans on it (a roster status must reach the station after the changes it follows). With
every `down/` message of this process leaving through one client, "published after" means
"delivered after".

It is a plain publisher: no subscription, so no session worth keeping (`clean_start`), QoS 1.
`publish` refuses (returns None) while disconnected instead of letting paho queue without bound:
each caller has its own way to try again (an ack is simply due again, the roster fan-out leaves the
change unsent, a command is reported as not sent). Every message is signed by the caller
(`contract.signing.CentreSigner`) before it gets here.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from central.config import MqttConfig
from central.ingest.link import connect, new_client

log = logging.getLogger(__name__)

#: No client-side window (0: paho sends each message at once). paho's window re-scans every message
#: it holds on each PUBACK (`Client._update_inflight`), so with a window of 1,000 and the acks of
#: 2,000 stations going out each second, the down link's thread spent about half its time in that
#: scan (bench.fleet, docs/SCALING.md). The broker PUBACKs a QoS 1 publish as soon as it has routed
#: it (mosquitto's `max_inflight_messages` bounds what it sends, not what it receives), and what
#: paho holds while connected is bounded by the publishing rate times the round trip.
MAX_INFLIGHT = 0


class DownLink:
    def __init__(self, config: MqttConfig, client_id: str) -> None:
        self.config = config
        self.client_id = client_id
        self._connected = threading.Event()
        self._started = False
        self._client = new_client(config, client_id)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self.published = 0

    def start(self) -> None:
        if self._started:
            return
        connect(self._client, self.config, clean_start=True, session_expiry_s=0)
        self._started = True

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001 - a half-open socket must not stop the shutdown
            log.debug("down link disconnect failed", exc_info=True)
        stopper = threading.Thread(target=self._client.loop_stop, name="down-stop", daemon=True)
        stopper.start()
        stopper.join(2.0)
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> mqtt.MQTTMessageInfo | None:
        """Hand one message to paho; its info (to wait for the PUBACK), or None when not connected."""
        if not self._connected.is_set():
            return None
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # NO_CONN: dropped just now. paho keeps the QoS 1 message and sends it on reconnect, but
            # the caller treats it as not sent (a duplicate later is harmless, a loss is not).
            return None
        self.published += 1
        return info

    def wait_all(self, infos: list[mqtt.MQTTMessageInfo], timeout: float) -> bool:
        """True once the broker acknowledged every one of `infos` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):
                return False
            if not info.is_published():
                return False
        return True

    # -- paho's thread ----------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("down link refused by the broker", extra={"fields": {"reason": str(reason)}})
            return
        self._connected.set()
        log.info("down link connected", extra={"fields": {"client_id": self.client_id}})

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._connected.is_set():
            log.warning("down link disconnected", extra={"fields": {"reason": str(reason)}})
        self._connected.clear()
