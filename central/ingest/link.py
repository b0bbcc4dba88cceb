"""The centre's paho clients, built one way: MQTT v5, VERSION2 callbacks, credentials from files.

Two kinds of client use this: the ingest workers (a persistent session holding a shared
subscription, `manual_ack` so the broker's PUBACK waits for our database commit) and the down link
(one publisher per process for acks, roster messages and commands). Both connect with
`connect_async` + `loop_start`, so connecting, reconnecting (exponential back-off) and TLS
handshakes happen on paho's thread, never on a caller's.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.config import MqttConfig
from central.ingest import paho_speed
from central.store.database import read_secret_file
from common.broker_config import ssl_context
from common.errors import StoreError

log = logging.getLogger(__name__)


class LinkConfigError(Exception):
    """The `[mqtt]` settings cannot be used (a secret file missing or readable by others, bad TLS files)."""


def _secret(path: Path, what: str) -> str:
    try:
        return read_secret_file(path, what)
    except StoreError as exc:
        raise LinkConfigError(str(exc)) from None


def new_client(config: MqttConfig, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A configured, unconnected client (credentials and TLS applied; `LinkConfigError` if unusable)."""
    paho_speed.install()  # v5 properties without rebuilding paho's tables per packet
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=True,
        manual_ack=manual_ack,
    )
    client.enable_logger(logging.getLogger("central.paho"))
    client.connect_timeout = config.connect_timeout_s
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    if config.username is not None:
        password = _secret(config.password_file, "MQTT password") if config.password_file else None
        client.username_pw_set(config.username, password)
    elif config.password_file is not None:
        raise LinkConfigError("[mqtt] password_file is set but username is not")
    if config.tls:
        try:
            client.tls_set_context(ssl_context(config, _secret))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise LinkConfigError(f"[mqtt] TLS settings cannot be used: {exc}") from None
    return client


def connect(
    client: mqtt.Client,
    config: MqttConfig,
    *,
    clean_start: bool,
    session_expiry_s: int,
    receive_maximum: int | None = None,
) -> None:
    """Start connecting in the background (returns at once)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    client.connect_async(
        config.host, config.port, keepalive=config.keepalive_s, clean_start=clean_start, properties=props
    )
    client.loop_start()


def user_properties(message: mqtt.MQTTMessage) -> dict[str, str]:
    """A message's v5 user properties as a dict (the first value of a repeated name wins)."""
    props = message.properties
    pairs = getattr(props, "UserProperty", None) if props is not None else None
    found: dict[str, str] = {}
    for pair in pairs or ():
        if isinstance(pair, tuple) and len(pair) == 2 and len(found) < 32:
            found.setdefault(str(pair[0])[:64], str(pair[1])[:256])
    return found
