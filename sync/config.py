"""`[mqtt]`: how the station reaches the centre's broker, and how hard it may push.

Secrets never live in the TOML: the password (and an encrypted client key's passphrase) are read
from files named by `*_file` keys, which an installer can keep at mode 0600 and out of backups of
the configuration. Every number has bounds; the defaults suit a Pi on a mobile uplink.
Relative file paths are taken relative to the config file's folder (`MqttConfig.rebased`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_FILE_KEYS = ("password_file", "ca_file", "cert_file", "key_file", "key_password_file", "centre_key_file")


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(False, description="Sync with the centre over MQTT (off: a standalone station).")
    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS by convention).")
    station_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="This station's id in topics; default: [station] station_id.",
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description='MQTT client id; default "yz-<station id>". Two clients with one id kick each other off.',
    )

    # -- authentication and TLS -------------------------------------------------------------------
    username: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Broker user name; default: the station id when password_file is set (the "
        "example ACL uses %u = station id to confine each station to its own topics).",
    )
    password_file: Path | None = Field(
        None, description="File holding the broker password (one line, mode 0600). Never put it in the TOML."
    )
    tls: bool = Field(
        False, description="Connect with TLS (certificate of the broker verified, host name checked)."
    )
    ca_file: Path | None = Field(
        None, description="CA certificate(s) (PEM) that signed the broker's certificate; default: system CAs."
    )
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key (PEM) for mutual TLS, mode 0600.")
    key_password_file: Path | None = Field(
        None, description="File holding the passphrase of an encrypted key_file (mode 0600)."
    )

    # -- connection ------------------------------------------------------------------------------
    keepalive_s: int = Field(
        30, ge=5, le=1200, description="MQTT keepalive: a dead link is noticed in ~1.5x this."
    )
    connect_timeout_s: float = Field(
        5.0,
        ge=0.5,
        le=60.0,
        description="TCP connect and TLS handshake timeout (the door never waits on it).",
    )
    reconnect_min_s: int = Field(
        1, ge=1, le=60, description="First reconnect delay; doubles on each failure."
    )
    reconnect_max_s: int = Field(60, ge=1, le=3600, description="Longest reconnect delay.")
    session_expiry_s: int = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="How long the broker keeps this station's session (queued roster changes) "
        "while it is away.",
    )

    # -- publishing the outbox ---------------------------------------------------------------------
    max_inflight: int = Field(
        100, ge=1, le=1000, description="Unacknowledged QoS 1 messages at once (also capped by the broker)."
    )
    max_messages_per_s: float = Field(
        5000.0, ge=1.0, le=50_000.0, description="Upper bound on messages published per second."
    )
    max_bytes_per_s: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Upper bound on payload bytes per second (snapshots are the big ones).",
    )
    require_subscriber: bool = Field(
        True,
        description='A PUBACK saying "no matching subscribers" means the broker dropped the message: '
        "keep it in the outbox and retry, instead of marking it sent.",
    )
    upload_snapshots: bool = Field(True, description="Upload each event's snapshot JPEG after the event.")
    max_snapshot_bytes: int = Field(
        4 * 1024 * 1024,
        ge=16 * 1024,
        le=64 * 1024 * 1024,
        description="Larger snapshot files are not uploaded.",
    )
    snapshot_wait_s: float = Field(
        30.0,
        ge=1.0,
        le=3600.0,
        description="How long a snapshot upload waits for its JPEG to appear (written after the event).",
    )
    enrolment_photos: bool = Field(
        False,
        description="Send the enrolment photo with an on-site enrolment (only for members with "
        "cross-station consent). Off: template and consent record only.",
    )
    delivery: Literal["auto", "centre_ack", "puback"] = Field(
        "auto",
        description="What marks an outbox message delivered: the centre's down/ack (centre_ack), the "
        "broker's PUBACK (puback), or PUBACK until the centre's first ack and its acks from then on "
        "(auto). docs/mqtt.md, Durability.",
    )
    ack_timeout_s: float = Field(
        60.0,
        ge=1.0,
        le=86_400.0,
        description="Under the ack rule: a message the centre has not acknowledged this long after "
        "its PUBACK is published again (the broker may have lost it).",
    )
    max_unconfirmed: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="Under the ack rule: messages PUBACKed and waiting for the centre's ack at once.",
    )
    outbox_keep_sent_days: float = Field(
        7.0, ge=0.0, le=365.0, description="Delivered outbox rows are deleted after this many days."
    )
    heartbeat_s: float = Field(
        60.0, ge=1.0, le=3600.0, description="Retained status (health) every this many seconds."
    )

    # -- what the centre may send -----------------------------------------------------------------
    max_payload_bytes: int = Field(
        2 * 1024 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Larger inbound messages are refused unread (roster snapshots come in parts).",
    )
    command_max_ttl_s: float = Field(
        300.0,
        ge=5.0,
        le=86_400.0,
        description="A command must expire within this many seconds of now; later expiries are refused.",
    )
    centre_key_file: Path | None = Field(
        None,
        description="The centre's public signing key(s) (PEM or base64 lines; several during a key "
        "rotation). With a key, only signed messages from the centre are read; with none (and none "
        "trusted by `yizhan sync trust`), remote opening is refused.",
    )
    command_clock_skew_s: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description="How far ahead of this station's clock a command's issued_at may be.",
    )
    resync_interval_s: float = Field(
        30.0, ge=1.0, le=3600.0, description="At most one roster resync request per this many seconds."
    )
    inbox_queue: int = Field(
        1000, ge=10, le=100_000, description="Inbound messages waiting for the worker; more are dropped."
    )

    @model_validator(mode="after")
    def _coherent(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        if not self.tls and any(p is not None for p in (self.ca_file, self.cert_file, self.key_file)):
            raise ValueError("ca_file / cert_file / key_file are set but tls = false")
        if self.key_password_file is not None and self.key_file is None:
            raise ValueError("key_password_file needs key_file")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def rebased(self, base: Path) -> MqttConfig:
        """The same section with relative file paths taken relative to `base` (the config's folder)."""
        changes: dict[str, Any] = {}
        for key in _FILE_KEYS:
            value = getattr(self, key)
            if value is not None and not value.is_absolute():
                changes[key] = base / value
        return self.model_copy(update=changes) if changes else self

    def effective_station_id(self, fallback: str) -> str:
        """The id used in topics: `station_id` here, else `[station] station_id`."""
        return self.station_id or fallback

    def effective_client_id(self, station_id: str) -> str:
        return self.client_id or f"yz-{station_id}"

    def effective_username(self, station_id: str) -> str | None:
        if self.username is not None:
            return self.username
        return station_id if self.password_file is not None else None
