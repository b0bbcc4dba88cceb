"""Signed messages from the centre (docs/mqtt.md, "Signatures"): what a broker cannot forge.

The broker's ACL keeps a station's login inside its own topics, but anyone holding the centre's
broker credentials, or the broker itself, can publish on every station's `down/` topics. A door
must not open for them. So the centre signs what it sends with an Ed25519 key whose public half
each station pinned at install (`[mqtt] centre_key_file`, `yizhan sync trust`); the station
checks the signature before it reads anything else.

What is signed: the message's JSON object without its `sig` member, canonicalised with RFC 8785
(JSON Canonicalization Scheme: sorted keys, no whitespace, ECMAScript number form), prefixed with
`DOMAIN`. JCS makes the bytes independent of how the message was serialised, so the centre may
publish it with any JSON library and the station, which parses it strictly (no duplicate keys,
no NaN), recomputes the same bytes. Every signed message names its `station_id`, so a command
signed for one station cannot be replayed at another; commands also carry `issued_at` /
`expires_at` and a unique `id`, which the station remembers until expiry (replay).

The centre uses `CentreSigner.sign(message)` (a dict or a contract model) and publishes the
bytes it returns, unchanged; `verify_message` is the station's check. Both live here, in the
neutral contract package, so the two sides cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

DOMAIN = b"yizhan/v1 centre->station\n"
ALG = "ed25519"
SIG_FIELD = "sig"


class SignatureError(ValueError):
    """A signature that does not hold; `code` is the error code of the result (docs/mqtt.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def kid_for(public_key_raw: bytes) -> str:
    """Key id: hex of the first 4 bytes of the raw key's SHA-256 (the same rule as QR keys).

    The id only selects a key; the signature is what authenticates, so a collision between two
    trusted keys costs a `bad_signature`, never an acceptance."""
    if len(public_key_raw) != 32:
        raise ValueError("an Ed25519 public key is 32 raw bytes")
    return hashlib.sha256(public_key_raw).digest()[:4].hex()


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A trusted centre key: `kid`, the raw 32 bytes, and a label for people."""

    kid: str
    raw: bytes
    label: str = ""

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_b64(cls, text: str, label: str = "") -> PublicKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"not base64: {exc}") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
        return cls(kid_for(raw), raw, label)


def parse_public_keys(text: str) -> list[PublicKey]:
    """Keys from a `centre_key_file`: PEM blocks ("BEGIN PUBLIC KEY") and/or lines holding the
    base64 of the 32 raw bytes, optionally followed by a label; `#` starts a comment. Several
    keys = rotation with overlap (the old and the new key are both trusted meanwhile)."""
    keys: list[PublicKey] = []
    pem_lines: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if pem_lines is not None:
            pem_lines.append(stripped)
            if stripped.startswith("-----END"):
                keys.append(_from_pem("\n".join(pem_lines).encode(), number))
                pem_lines = None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("-----BEGIN"):
            pem_lines = [stripped]
            continue
        value, _, label = stripped.partition(" ")
        try:
            keys.append(PublicKey.from_b64(value, label.strip()))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    if pem_lines is not None:
        raise ValueError("a PEM block is not closed (no -----END line)")
    return keys


def _from_pem(data: bytes, line: int) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"PEM block ending on line {line}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"PEM block ending on line {line} is not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(kid_for(raw), raw)


def signing_input(message: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: DOMAIN + RFC 8785 canonical JSON of the message minus `sig`."""
    body = {k: v for k, v in message.items() if k != SIG_FIELD}
    try:
        return DOMAIN + rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        # Integers beyond 2**53, floats JSON cannot hold: nothing the contract allows.
        raise SignatureError("bad_signature", f"message cannot be canonicalised: {exc}") from None


def _plain(message: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    plain: dict[str, Any] = json.loads(json.dumps(message, allow_nan=False))  # JSON types only, as sent
    return plain


class CentreSigner:
    """The centre's side: holds the private key, signs messages. Built from a PEM (PKCS#8) key."""

    def __init__(self, private_key: Ed25519PrivateKey, label: str = "") -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = PublicKey(kid_for(raw), raw, label)

    @property
    def kid(self) -> str:
        return self.public_key.kid

    @classmethod
    def generate(cls, label: str = "") -> CentreSigner:
        return cls(Ed25519PrivateKey.generate(), label)

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None, label: str = "") -> CentreSigner:
        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the centre's signing key must be an Ed25519 private key")
        return cls(key, label)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: store it mode 0600 (or encrypt it yourself)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, message: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
        """The message with its `sig` member. It must name its `station_id`."""
        body = _plain(message)
        body.pop(SIG_FIELD, None)
        if not isinstance(body.get("station_id"), str):
            raise ValueError(
                "a signed message must name its station_id (it binds the signature to one station)"
            )
        body[SIG_FIELD] = self.signature_for(signing_input(body)[len(DOMAIN) :])
        return body

    def signature_for(self, canonical: bytes) -> dict[str, str]:
        """The `sig` member of a message whose RFC 8785 form without `sig` is `canonical`.

        For a caller that writes a fixed-shape message's canonical bytes itself because it sends
        thousands a second (the centre's acks: `central.ingest.acks`, tested equal to `rfc8785`);
        `sign` is the general way."""
        signature = self._key.sign(DOMAIN + canonical)
        return {"kid": self.kid, "alg": ALG, "value": base64.b64encode(signature).decode("ascii")}

    def sign_bytes(self, message: Mapping[str, Any] | BaseModel) -> bytes:
        """What to publish: the signed message as UTF-8 JSON."""
        return json.dumps(
            self.sign(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


def verify_message(message: Mapping[str, Any], keys: Iterable[PublicKey], station_id: str) -> str:
    """Check `message` (as parsed from the wire) against the trusted `keys`; return the kid.

    Raises `SignatureError` with code `signature_required` (no `sig`), `unknown_key` (signed by a
    key this station does not trust), `bad_signature` (malformed or not valid: tampered, or signed
    by another key claiming a trusted kid) or `wrong_station` (signed for another station)."""
    sig = message.get(SIG_FIELD)
    if sig is None:
        raise SignatureError("signature_required", "this station accepts only messages signed by the centre")
    if not isinstance(sig, Mapping) or set(sig) != {"kid", "alg", "value"}:
        raise SignatureError("bad_signature", "sig must be an object with exactly kid, alg and value")
    kid, alg, value = sig.get("kid"), sig.get("alg"), sig.get("value")
    if alg != ALG or not isinstance(kid, str) or not isinstance(value, str):
        raise SignatureError("bad_signature", f"sig.alg must be {ALG!r}; kid and value strings")
    try:
        raw_sig = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("bad_signature", "sig.value is not base64") from None
    if len(raw_sig) != 64:
        raise SignatureError("bad_signature", "sig.value is not a 64-byte Ed25519 signature")
    candidates = [k for k in keys if k.kid == kid]
    if not candidates:
        raise SignatureError("unknown_key", f"signed by key {kid[:16]!r}, which this station does not trust")
    data = signing_input(message)
    for key in candidates:
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(raw_sig, data)
        except InvalidSignature:
            continue
        break
    else:
        raise SignatureError("bad_signature", f"signature does not verify with trusted key {kid!r}")
    if message.get("station_id") != station_id:
        raise SignatureError(
            "wrong_station", f"signed for station {str(message.get('station_id'))[:64]!r}, not {station_id!r}"
        )
    return kid


_PLAIN = re.compile(r"[A-Za-z0-9._-]{1,64}")  # ids that JSON writes as they are (no escapes)


def ack_canonical(station_id: str, ack_id: str, stored: list[list[int]]) -> bytes:
    """The RFC 8785 canonical JSON of a `down/ack` without `sig`, written directly (the centre
    signs thousands a second). Keys sorted, no spaces; its ids are plain ASCII and its numbers
    integers, so this is exactly what `rfc8785.dumps` gives (a test checks). Anything else:
    ValueError, and the caller signs the general way."""
    if not (_PLAIN.fullmatch(station_id) and _PLAIN.fullmatch(ack_id)):
        raise ValueError("an ack's ids are plain identifiers")
    if not all(type(n) is int and 0 < n < 2**53 for span in stored for n in span):
        raise ValueError("an ack's seqs are integers of the contract's range")
    spans = "[" + ",".join(f"[{first},{last}]" for first, last in stored) + "]"
    return (f'{{"id":"{ack_id}","station_id":"{station_id}","stored":{spans},"type":"ack","v":1}}').encode()
