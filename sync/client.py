"""`MqttLink`: the one paho-mqtt client of a process, set up the way paho's own guidance says.

MQTT v5 with VERSION2 callbacks; `connect_async` + `loop_start`, so connecting, reconnecting
(`reconnect_delay_set`, exponential) and TLS handshakes all happen on paho's thread and no caller
ever waits on the network; subscriptions are made in `on_connect`, so they come back after every
reconnect; a retained last will marks the station "offline" when it vanishes.

v5 rather than 3.1.1 because its PUBACK carries a reason code: a publish refused by the broker's
ACL (0x87) or dropped for want of subscribers (0x10) is acknowledged in 3.1.1 exactly like a
delivered one, and the outbox would mark it sent and lose it.

Secrets come from files (`password_file`, `key_password_file`), read at start; a file readable by
group or others is refused, as the template key is (an unattended box, nobody reads warnings).
A missing or unsafe secret raises `LinkConfigError`; the service logs it and leaves the door alone.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.broker_config import ssl_context
from sync.config import MqttConfig

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 4096

MessageHandler = Callable[[str, bytes], None]
AckHandler = Callable[[int, int], None]
ConnectHook = Callable[[], None]


class _QuietPaho(logging.Filter):
    """paho logs "Client is not connected" at ERROR on every clean shutdown; that is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "Client is not connected" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_PAHO_LOG = logging.getLogger("sync.paho")
_PAHO_LOG.addFilter(_QuietPaho())


class LinkConfigError(Exception):
    """The [mqtt] settings cannot be used (a missing or unsafe secret file, a bad certificate)."""


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file; refused when group/others can read it or it is not a file."""
    try:
        st = path.stat()
    except OSError as exc:
        raise LinkConfigError(f"{what} file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LinkConfigError(f"{what} file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise LinkConfigError(
            f"{what} file {path} has mode {stat.S_IMODE(st.st_mode):04o}: readable by others; "
            f"run `chmod 600 {path}`"
        )
    if st.st_size > MAX_SECRET_BYTES:
        raise LinkConfigError(f"{what} file {path} is {st.st_size} bytes: not a secret file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LinkConfigError(f"{what} file {path} cannot be read as UTF-8 text: {exc}") from None
    lines = text.splitlines()
    value = lines[0] if lines else ""
    if not value:
        raise LinkConfigError(f"{what} file {path} is empty")
    return value


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    last_connect_error: str | None = None
    connected_since: float | None = None  # wall time
    messages_in: int = 0


class MqttLink:
    """A paho client that connects in the background and never blocks its callers.

    `on_message(topic, payload)` and `on_ack(mid, reason_code_value)` run on paho's thread: keep
    them short (the service only queues work there). `publish` returns the message id, or None
    when not connected (the caller keeps the data and retries later).
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        username: str | None,
        subscriptions: tuple[str, ...] = (),
        will: Will | None = None,
        clean_start: bool = False,
        on_message: MessageHandler | None = None,
        on_ack: AckHandler | None = None,
        on_connected: ConnectHook | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.username = username
        self.subscriptions = subscriptions
        self.will = will
        self.clean_start = clean_start
        self._on_message = on_message
        self._on_ack = on_ack
        self._on_connected = on_connected
        self._connected = threading.Event()
        self._started = False
        self._receive_maximum = 65535
        self.stats = LinkStats()
        self._client = self._build()

    # -- set-up ---------------------------------------------------------------------------------

    def _build(self) -> mqtt.Client:
        config = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=True,
        )
        client.enable_logger(_PAHO_LOG)
        client.connect_timeout = config.connect_timeout_s
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        # Our own window (OutboxPublisher) bounds what is in flight; paho must not queue behind it.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self.username is not None:
            password = (
                read_secret(config.password_file, "MQTT password")
                if config.password_file is not None
                else None
            )
            client.username_pw_set(self.username, password)
        elif config.password_file is not None:
            raise LinkConfigError("password_file is set but no username")
        if config.tls:
            client.tls_set_context(self._tls_context())
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_connect_fail = self._handle_connect_fail
        return client

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl_context(self.config, read_secret)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise LinkConfigError(f"TLS settings cannot be used: {exc}") from None

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting on paho's thread; returns at once."""
        if self._started:
            return
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0 if self.clean_start else self.config.session_expiry_s
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=self.clean_start,
            properties=props,
        )
        self._client.loop_start()
        self._started = True
        log.info(
            "MQTT connecting",
            extra={
                "fields": {
                    "host": self.config.host,
                    "port": self.config.port,
                    "client_id": self.client_id,
                    "tls": self.config.tls,
                }
            },
        )

    def stop(self, *, final: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Optionally publish `final` (retained, QoS 1) and wait up to `timeout` for it, then
        disconnect cleanly (no last will) and stop paho's thread. Bounded by `timeout` + ~1 s."""
        if not self._started:
            return
        if final is not None and self.connected:
            try:
                info = self._client.publish(final[0], final[1], qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.debug("final status not confirmed", exc_info=True)
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001 - a half-open socket must not stop the shutdown
            log.debug("disconnect failed", exc_info=True)
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(max(1.0, timeout))
        if stopper.is_alive():
            log.warning("paho's network thread did not stop in time; left to die with the process")
        self._connected.clear()
        self._started = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def receive_maximum(self) -> int:
        """The broker's Receive Maximum (CONNACK): how many QoS 1 messages it accepts in flight."""
        return self._receive_maximum

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int | None:
        """Hand a message to paho; its mid, or None when not connected (nothing was queued)."""
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish refused by paho", extra={"fields": {"topic": topic, "rc": int(info.rc)}})
            return None
        # NO_CONN: the link dropped just now; paho keeps QoS 1 messages and sends them on reconnect.
        return int(info.mid)

    # -- paho callbacks (paho's thread) -------------------------------------------------------

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            self.stats.last_connect_error = str(reason)
            log.error("MQTT connection refused by the broker", extra={"fields": {"reason": str(reason)}})
            return
        self._receive_maximum = int(getattr(props, "ReceiveMaximum", 65535) or 65535)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.stats.connects += 1
        self.stats.connected_since = time.time()
        self.stats.last_connect_error = None
        self._connected.set()
        log.info(
            "MQTT connected",
            extra={"fields": {"session_present": bool(getattr(flags, "session_present", False))}},
        )
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                log.exception("on_connected hook failed")

    def _handle_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.stats.last_connect_error = "connect failed"
        log.debug("MQTT connect attempt failed; paho retries with back-off")

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self.stats.connected_since = None
        if was:
            self.stats.disconnects += 1
            log.warning("MQTT disconnected", extra={"fields": {"reason": str(reason)}})

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.stats.messages_in += 1
        if self._on_message is None:
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("message with a non-UTF-8 topic ignored")
            return
        try:
            self._on_message(topic, bytes(message.payload))
        except Exception:
            log.exception("message handler failed", extra={"fields": {"topic": topic[:200]}})

    def _handle_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        if self._on_ack is None:
            return
        try:
            self._on_ack(int(mid), int(reason.value))
        except Exception:
            log.exception("ack handler failed")
