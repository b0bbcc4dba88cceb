"""The centre's signing keys this station trusts, and the check every `down/` message passes.

Trusted = the keys in `[mqtt] centre_key_file` (pinned at install) + keys added with `yizhan sync
trust` or a signed `add_centre_key` roster op (kept in `station_state`), minus keys revoked by
`yizhan sync trust --remove` or a signed `revoke_centre_key` op. With at least one trusted key,
every message from the centre must be signed by one of them (docs/mqtt.md, "Signatures"); with
none, unsigned messages are read but the `open` command is refused (`no_centre_key`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contract.signing import PublicKey, SignatureError, parse_public_keys, verify_message
from models import members as member_store
from models.tables import StationState

log = logging.getLogger(__name__)

TRUSTED_PREFIX = "sync.centre_key."
REVOKED_PREFIX = "sync.centre_key_revoked."
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(ValueError):
    """`centre_key_file` cannot be used (missing, not keys, too large)."""


def read_key_file(path: Path) -> list[PublicKey]:
    try:
        size = path.stat().st_size
        if size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"centre_key_file {path} is {size} bytes: not a key file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"centre_key_file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"centre_key_file {path} is not UTF-8 text: {exc}") from None
    try:
        keys = parse_public_keys(text)
    except ValueError as exc:
        raise KeyFileError(f"centre_key_file {path}: {exc}") from None
    if not keys:
        raise KeyFileError(f"centre_key_file {path} holds no key")
    return keys


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: PublicKey
    source: str  # "file", "cli", "centre"
    revoked: bool


def stored_keys(session: Session) -> tuple[dict[str, tuple[PublicKey, str]], set[str]]:
    """Keys trusted in the database (kid -> key, source) and revoked kids."""
    trusted: dict[str, tuple[PublicKey, str]] = {}
    revoked: set[str] = set()
    rows = session.execute(
        select(StationState.key, StationState.value).where(StationState.key.like("sync.centre_key%"))
    )
    for name, value in rows:
        if name.startswith(REVOKED_PREFIX):
            revoked.add(name[len(REVOKED_PREFIX) :])
        elif name.startswith(TRUSTED_PREFIX):
            try:
                record = json.loads(value)
                key = PublicKey.from_b64(record["public_key"], str(record.get("label", "")))
            except (ValueError, KeyError, TypeError):
                log.error("unusable centre key in station_state ignored", extra={"fields": {"key": name}})
                continue
            trusted[key.kid] = (key, str(record.get("source", "")))
    return trusted, revoked


def list_keys(session: Session, file_keys: list[PublicKey]) -> list[KeyEntry]:
    trusted, revoked = stored_keys(session)
    entries = [KeyEntry(k, "file", k.kid in revoked) for k in file_keys]
    seen = {k.kid for k in file_keys}
    entries.extend(KeyEntry(k, src, kid in revoked) for kid, (k, src) in trusted.items() if kid not in seen)
    return entries


def trusted_keys(session: Session, file_keys: list[PublicKey]) -> list[PublicKey]:
    return [e.key for e in list_keys(session, file_keys) if not e.revoked]


def trust(session: Session, key: PublicKey, source: str) -> None:
    """Trust `key` (and lift an earlier revocation of it). Inside the caller's transaction."""
    record = {
        "public_key": key.b64,
        "label": key.label,
        "source": source,
        "added_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    member_store.set_state(session, TRUSTED_PREFIX + key.kid, json.dumps(record))
    row = session.get(StationState, REVOKED_PREFIX + key.kid)
    if row is not None:
        session.delete(row)


def revoke(session: Session, kid: str, file_keys: list[PublicKey]) -> None:
    """Stop trusting `kid`; refused (ValueError) when no trusted key would be left."""
    left = [k for k in trusted_keys(session, file_keys) if k.kid != kid]
    if not left:
        raise ValueError(f"revoking {kid} would leave this station trusting no centre key")
    member_store.set_state(
        session, REVOKED_PREFIX + kid, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )


class CentreKeys:
    """The trusted set, cached; `reload()` after anything changed it (a roster commit, the CLI)."""

    def __init__(self, sessions: sessionmaker[Session], station_id: str, key_file: Path | None) -> None:
        self._sessions = sessions
        self._station_id = station_id
        self.file_keys: list[PublicKey] = read_key_file(key_file) if key_file is not None else []
        self._lock = threading.Lock()
        self._keys: list[PublicKey] = []
        self.reload()

    def reload(self) -> None:
        with self._sessions() as session:
            keys = trusted_keys(session, self.file_keys)
        with self._lock:
            self._keys = keys

    @property
    def keys(self) -> list[PublicKey]:
        with self._lock:
            return list(self._keys)

    @property
    def required(self) -> bool:
        """True when this station trusts a centre key: then only signed messages are read."""
        return bool(self.keys)

    def verify(self, message: Mapping[str, Any]) -> None:
        """The `Verifier` of `contract.messages.parse_*`: signature (when keys are trusted) and
        the `station_id` the message names."""
        keys = self.keys
        if keys:
            verify_message(message, keys, self._station_id)
            return
        named = message.get("station_id")
        if named is not None and named != self._station_id:
            raise SignatureError(
                "wrong_station", f"message for station {str(named)[:64]!r}, not {self._station_id!r}"
            )
