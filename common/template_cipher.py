"""Encryption at rest of face templates (AES-256-GCM) and the loading of its key.

A face template is biometric data: a copied SD card or database file must not give the encodings
away. The key therefore never lives in the database: it comes from the ``YIZHAN_TEMPLATE_KEY``
environment variable, a configured key file, or ``<data_dir>/template.key`` (created on first use).

Failure is always loud. A wrong key or a damaged row raises a `TemplateDecryptError` subclass with a
message that says which one it is; it is never turned into "no template", because a roster that
silently lost rows would look healthy while refusing members at the door (or, worse, a future bug
could match against garbage).

Blob layout: ``nonce (12 bytes) || AES-GCM(ciphertext of D little-endian float32 || tag (16))``,
D being the face model's embedding length (dlib: 128). The associated data binds the blob to its
member and template id, and (for every model but dlib's, whose rows predate the binding) to the
model's name, so a ciphertext copied or swapped into another row, or relabelled as another model's,
fails authentication instead of making one member match another's face.

Shared by the station (`models`) and the centre (`central.store`), which both keep templates at rest
under a key that is not in their database. The key variable is a parameter so the two processes can
run side by side on a developer's laptop without sharing a key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import stat
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.errors import StoreError, ValidationError
from recognizer.encoder import DLIB_DIM, MODEL_DLIB

#: Embedding lengths a template may have (every supported model's lies in between; the MQTT
#: contract's bounds).
MIN_DIM = 64
MAX_DIM = 1024

ENV_VAR = "YIZHAN_TEMPLATE_KEY"
KEY_FILE_NAME = "template.key"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
PLAINTEXT_BYTES = DLIB_DIM * 4  # of a dlib template
BLOB_BYTES = NONCE_BYTES + PLAINTEXT_BYTES + TAG_BYTES
_AAD_PREFIX = b"yizhan-template-v1"
_FINGERPRINT_PREFIX = b"yizhan-template-key"
_MAX_KEY_FILE_BYTES = 1024
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class KeyFileError(StoreError):
    """The template key could not be loaded: missing configured file, garbage, or unsafe permissions."""


class TemplateDecryptError(StoreError):
    """A stored template could not be decrypted. Never to be read as "this member has no template"."""

    def __init__(self, message: str, *, member_id: str, template_id: str) -> None:
        super().__init__(message)
        self.member_id = member_id
        self.template_id = template_id


class TemplateKeyMismatch(TemplateDecryptError):
    """The template was encrypted with a different key than the one loaded."""


class TemplateCorrupt(TemplateDecryptError):
    """The right key, but the row fails authentication or decodes to an invalid vector."""


def _parse_key(text: str, source: str) -> bytes:
    """Decode 64 hex characters or base64 of 32 bytes; anything else is a `KeyFileError`."""
    value = text.strip()
    if not value:
        raise KeyFileError(f"the template key from {source} is empty")
    if _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    try:
        # Standard or URL-safe alphabet; validate=True refuses stray characters instead of dropping them.
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise KeyFileError(
            f"the template key from {source} is not 64 hex characters or base64 of 32 bytes "
            f"({len(value)} characters read); refusing to use it"
        )
    return raw


def _read_key_file(path: Path) -> bytes:
    """Read and check one key file: regular file, mode without group/other bits, valid content."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise KeyFileError(f"template key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot stat template key file {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"template key file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise KeyFileError(
            f"template key file {path} has mode {stat.S_IMODE(st.st_mode):04o}: it is accessible to "
            f"group/others, so the face templates are not protected; run `chmod 600 {path}`"
        )
    if st.st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"template key file {path} is {st.st_size} bytes: not a key file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read template key file {path}: {exc}") from exc
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise KeyFileError(
            f"template key file {path} is not text (expected 64 hex characters); refusing to use it"
        ) from exc
    return _parse_key(text, f"key file {path}")


def _create_key_file(path: Path) -> None:
    """Create `path` with a fresh key, atomically and durably, unless someone else created it first.

    The key is written to a private temporary file (O_CREAT|O_EXCL, mode 0600), fsynced, then
    hard-linked into place: `link` never overwrites, so two processes racing on first start end up
    with one key, and a reader never sees a half-written file. The directory is fsynced before we
    return, because templates encrypted with a key that a power cut then erased would be lost.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        # FileExistsError: another process won the race, and its key is the one to use.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create_key(
    *,
    key_file: Path | None,
    data_dir: Path,
    env: Mapping[str, str],
    env_var: str = ENV_VAR,
    file_name: str = KEY_FILE_NAME,
) -> bytes:
    """Return the 32-byte template key.

    Precedence: the ``YIZHAN_TEMPLATE_KEY`` environment variable (64 hex characters or base64 of 32
    bytes), else `key_file` when configured (it must exist: creating a different key would make
    every stored template undecryptable), else ``data_dir/template.key``, created with mode 0600 on
    first use. A key file accessible to group or others is refused, not merely warned about: the
    service runs unattended and nobody reads warnings, while the fix (chmod 600) is trivial.
    """
    if env_var in env:
        return _parse_key(env[env_var], f"environment variable {env_var}")
    if key_file is not None:
        path = Path(key_file)
        if not path.exists():
            raise KeyFileError(
                f"the configured template key file {path} does not exist; refusing to create a new key "
                "there, since templates encrypted with the old key could then never be read. Restore "
                "the file, or remove the key_file setting to use the default key in the data directory"
            )
        return _read_key_file(path)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / file_name
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret identifier of a key, stored with every template to detect a key swap."""
    return hashlib.sha256(_FINGERPRINT_PREFIX + key).hexdigest()[:16]


def _aad(member_id: str, template_id: str, model: str = MODEL_DLIB) -> bytes:
    # Length-prefixed so that no two (member, template[, model]) tuples produce the same associated
    # data. dlib rows keep the two-part form they were written with before models were named.
    parts = [member_id.encode("utf-8"), template_id.encode("utf-8")]
    if model != MODEL_DLIB:
        parts.append(model.encode("utf-8"))
    return _AAD_PREFIX + b"".join(struct.pack(">I", len(p)) + p for p in parts)


def as_template_vector(
    vector: npt.ArrayLike, field: str = "encoding", dim: int | None = DLIB_DIM
) -> npt.NDArray[np.float32]:
    """Coerce to a float32 vector of `dim` finite values (None: any length a face model may have,
    MIN_DIM..MAX_DIM), or raise `ValidationError` naming `field`."""
    try:
        # Overflow to inf is caught by the finiteness check below, with a clearer message than a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} is not a numeric vector: {exc}") from exc
    if dim is not None and arr.shape != (dim,):
        raise ValidationError(f"{field} must be {dim} floats, got shape {arr.shape}")
    if arr.ndim != 1 or not MIN_DIM <= arr.shape[0] <= MAX_DIM:
        raise ValidationError(f"{field} must be {MIN_DIM}..{MAX_DIM} floats, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{field} holds NaN or infinity (or a value too large for float32)")
    return arr


class TemplateCipher:
    """AES-256-GCM for face templates, bound to one key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValidationError(f"template key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._fingerprint = key_fingerprint(key)

    @property
    def fingerprint(self) -> str:
        """16 hex characters identifying the key (safe to store and to log)."""
        return self._fingerprint

    def __repr__(self) -> str:
        return f"TemplateCipher(fingerprint={self._fingerprint!r})"

    def encrypt(
        self, member_id: str, template_id: str, vector: npt.ArrayLike, model: str = MODEL_DLIB
    ) -> bytes:
        """Encrypt an encoding of face model `model` for the row (member_id, template_id)."""
        arr = as_template_vector(vector, dim=DLIB_DIM if model == MODEL_DLIB else None)
        plaintext = arr.astype("<f4").tobytes()
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(member_id, template_id, model))

    def decrypt(
        self,
        member_id: str,
        template_id: str,
        key_fingerprint: str,
        blob: bytes,
        model: str = MODEL_DLIB,
        dim: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Decrypt a stored template; raise `TemplateKeyMismatch` or `TemplateCorrupt`, never return junk.

        `dim` is the length the caller expects (default: 128 for dlib's model, any valid length
        for another model); a row of another length is corrupt, not a shorter face.
        """
        if dim is None and model == MODEL_DLIB:
            dim = DLIB_DIM
        if key_fingerprint != self._fingerprint:
            raise TemplateKeyMismatch(
                f"templates were encrypted with key {key_fingerprint}, but the loaded key is "
                f"{self._fingerprint}: wrong key file / env? (template {template_id} of member {member_id})",
                member_id=member_id,
                template_id=template_id,
            )
        corrupt = (
            f"template {template_id} of member {member_id} failed authentication: "
            "the row is corrupted or was tampered with"
        )
        overhead = NONCE_BYTES + TAG_BYTES
        if (
            not isinstance(blob, bytes | bytearray | memoryview)
            or (len(blob) - overhead) % 4
            or not MIN_DIM * 4 <= len(blob) - overhead <= MAX_DIM * 4
            or (dim is not None and len(blob) != overhead + dim * 4)
        ):
            raise TemplateCorrupt(corrupt, member_id=member_id, template_id=template_id)
        raw = bytes(blob)
        try:
            plaintext = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(member_id, template_id, model)
            )
        except InvalidTag as exc:
            raise TemplateCorrupt(corrupt, member_id=member_id, template_id=template_id) from exc
        vector = np.frombuffer(plaintext, dtype="<f4").astype(np.float32)
        if (dim is not None and vector.shape != (dim,)) or not np.all(np.isfinite(vector)):
            raise TemplateCorrupt(
                f"template {template_id} of member {member_id} decrypted to an invalid vector "
                "(wrong length or NaN): the row is corrupted",
                member_id=member_id,
                template_id=template_id,
            )
        return vector
