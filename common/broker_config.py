"""How a process reaches the MQTT broker: address, credentials, TLS files, reconnection.

The centre's `[mqtt]` section derives from `BrokerConnection`; the station's (`sync.config`) has the
same keys with the same meaning (docs/mqtt.md) and can derive from it too. Secrets never live in
the TOML: the password and an encrypted client key's passphrase are read from files named by
`*_file` keys (mode 0600, out of configuration backups). Relative file paths are taken relative to
the config file's folder (`rebased`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self

from pydantic import Field, model_validator

from common.config_files import Section, rebased

FILE_KEYS = ("password_file", "ca_file", "cert_file", "key_file", "key_password_file")


class BrokerConnection(Section):
    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS by convention).")
    username: str | None = Field(None, min_length=1, max_length=64, description="Broker user name.")
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
    keepalive_s: int = Field(
        30, ge=5, le=1200, description="MQTT keepalive: a dead link is noticed in ~1.5x this."
    )
    connect_timeout_s: float = Field(
        5.0, ge=0.5, le=60.0, allow_inf_nan=False, description="TCP connect and TLS handshake timeout."
    )
    reconnect_min_s: int = Field(
        1, ge=1, le=60, description="First reconnect delay; doubles on each failure."
    )
    reconnect_max_s: int = Field(60, ge=1, le=3600, description="Longest reconnect delay.")
    session_expiry_s: int = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="How long the broker keeps this client's session (queued QoS 1 messages) "
        "while it is away.",
    )

    @model_validator(mode="after")
    def _coherent_connection(self) -> BrokerConnection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        if not self.tls and any(p is not None for p in (self.ca_file, self.cert_file, self.key_file)):
            raise ValueError("ca_file / cert_file / key_file are set but tls = false")
        if self.key_password_file is not None and self.key_file is None:
            raise ValueError("key_password_file needs key_file")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def rebased(self, base: Path) -> Self:
        """The same section with relative file paths taken relative to `base` (the config's folder)."""
        changes = {
            key: rebased(getattr(self, key), base) for key in FILE_KEYS if getattr(self, key) is not None
        }
        return self.model_copy(update=changes)


class TlsFiles(Protocol):
    """The TLS keys of a broker connection (the centre's `[mqtt]` and the station's have them all)."""

    @property
    def ca_file(self) -> Path | None: ...
    @property
    def cert_file(self) -> Path | None: ...
    @property
    def key_file(self) -> Path | None: ...
    @property
    def key_password_file(self) -> Path | None: ...


def ssl_context(settings: TlsFiles, read_secret: Callable[[Path, str], str]) -> ssl.SSLContext:
    """The TLS context both sides connect with: the broker's certificate verified against `ca_file`
    (default: the system CAs) with its host name checked, TLS 1.2 or newer, and the client
    certificate for mutual TLS (its key's passphrase read by `read_secret` from
    `key_password_file`). Raises OSError, ssl.SSLError or ValueError for files that cannot be used."""
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file is not None and settings.key_file is not None:
        password = (
            read_secret(settings.key_password_file, "TLS key passphrase")
            if settings.key_password_file is not None
            else None
        )
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file), password=password)
    return context
