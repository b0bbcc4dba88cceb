"""`MessageSigner`: signs everything the centre publishes on `down/` with its active messages key.

Stations that pinned the centre's key accept only signed acks, roster messages and commands
(docs/mqtt.md, "Signatures"). The key lives sealed in `signing_keys` (purpose `messages`); this
keeps the unsealed signer in memory and re-reads the table every `refresh_s`, so `yizhan-central
keys rotate --purpose messages` reaches running workers without a restart. A centre without a
messages key (never `init`-ed) publishes unsigned, and says so once in the log: only stations
that trust no key (lab set-ups) accept that, and they refuse `open`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.data_key import DataKey
from central.store import signing_keys
from contract.signing import CentreSigner, ack_canonical

log = logging.getLogger(__name__)


class MessageSigner:
    """`db` should be read-only sessions (`central.store.database.read_session_factory`): the signer
    is used inside other transactions, which on SQLite hold the one write lock."""

    def __init__(
        self,
        db: sessionmaker[Session],
        data_key: DataKey,
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._data_key = data_key
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._signer: CentreSigner | None = None
        self._loaded_at = -1e18
        self._warned = False

    def signer(self) -> CentreSigner | None:
        """The active key's signer (re-read when older than `refresh_s`)."""
        now = self._clock()
        with self._lock:
            if now - self._loaded_at < self._refresh_s:
                return self._signer
        with self._db() as session:
            key = signing_keys.active_key(session, purpose="messages")
            signer = signing_keys.message_signer(key, self._data_key) if key is not None else None
        with self._lock:
            if signer is None or self._signer is None or signer.kid != self._signer.kid:
                self._signer = signer
            self._loaded_at = now
            if signer is None and not self._warned:
                self._warned = True
                log.error(
                    "no active messages signing key: down/ messages go out unsigned and stations that "
                    "pinned a key will refuse them (`yizhan-central init`, `keys rotate --purpose messages`)"
                )
            return self._signer

    def refresh(self) -> None:
        """Re-read the key at the next use (after a rotation in this process)."""
        with self._lock:
            self._loaded_at = -1e18

    def sign_bytes(self, message: Mapping[str, Any]) -> bytes:
        """The message as published: signed JSON (it must name `station_id`)."""
        signer = self.signer()
        if signer is None:
            return json.dumps(
                dict(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
        return signer.sign_bytes(message)

    def sign_ack(self, station_id: str, ack_id: str, stored: list[list[int]]) -> bytes:
        """A `down/ack` as published, signed (`contract.signing.ack_canonical` writes its RFC 8785
        form directly: at a few thousand acks a second the generic path was a tenth of ingest's CPU)."""
        try:
            canonical = ack_canonical(station_id, ack_id, stored)
        except ValueError:  # not the plain shape (nothing ingest stores): the general way
            message = {"v": 1, "type": "ack", "id": ack_id, "station_id": station_id, "stored": stored}
            return self.sign_bytes(message)
        signer = self.signer()
        if signer is None:
            return canonical
        sig = signer.signature_for(canonical)  # kid hex, alg a word, value base64: no escapes
        return (
            canonical[:-1]
            + (f',"sig":{{"kid":"{sig["kid"]}","alg":"{sig["alg"]}","value":"{sig["value"]}"}}}}').encode()
        )
