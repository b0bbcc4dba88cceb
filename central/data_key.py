"""The centre's data key: what keeps face templates and signing keys unreadable in the database.

One 32-byte key outside the database (`[storage] key_file`, default `<data_dir>/central.key`,
mode 0600, or `$YIZHAN_CENTRAL_KEY`), loaded and checked by `common.template_cipher`. A stolen
database dump or backup without the key holds no usable biometric data and cannot sign passes.
Face templates use `TemplateCipher` (AES-GCM bound to member and template id); other secrets are
sealed by `seal`/`open_sealed` with AES-GCM bound to what they are (`purpose`) and their id, so a
ciphertext moved to another row or field fails to open.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from central.config import CentralConfig
from common.errors import StoreError
from common.template_cipher import TemplateCipher, key_fingerprint, load_or_create_key

ENV_VAR = "YIZHAN_CENTRAL_KEY"
KEY_FILE_NAME = "central.key"
_NONCE = 12


class SealedDataError(StoreError):
    """A sealed secret cannot be opened: another data key, or the row was altered."""


class DataKey:
    def __init__(self, key: bytes) -> None:
        self.templates = TemplateCipher(key)
        self._aead = AESGCM(key)
        self._hkdf_input = key
        self.fingerprint = key_fingerprint(key)

    @classmethod
    def load(cls, config: CentralConfig, env: Mapping[str, str] | None = None) -> DataKey:
        key = load_or_create_key(
            key_file=config.storage.key_file,
            data_dir=config.storage.data_dir,
            env=os.environ if env is None else env,
            env_var=ENV_VAR,
            file_name=KEY_FILE_NAME,
        )
        return cls(key)

    def __repr__(self) -> str:
        return f"DataKey(fingerprint={self.fingerprint!r})"

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (HKDF-SHA256), e.g. to MAC one-time codes before they are
        stored: a database dump without the data key cannot be searched for a 6-digit code."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_aad(purpose, "derive")).derive(
            self._hkdf_input
        )

    def seal(self, purpose: str, ident: str, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(purpose, ident))

    def open_sealed(self, purpose: str, ident: str, fingerprint: str, blob: bytes) -> bytes:
        if fingerprint != self.fingerprint:
            raise SealedDataError(
                f"{purpose} {ident} was sealed with data key {fingerprint}, but the loaded key is "
                f"{self.fingerprint}: wrong key file or ${ENV_VAR}?"
            )
        try:
            return self._aead.decrypt(bytes(blob[:_NONCE]), bytes(blob[_NONCE:]), _aad(purpose, ident))
        except (InvalidTag, ValueError) as exc:
            raise SealedDataError(f"{purpose} {ident} failed authentication: the row is damaged") from exc


def _aad(purpose: str, ident: str) -> bytes:
    parts = [b"yizhan-central-v1", purpose.encode(), ident.encode()]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)
