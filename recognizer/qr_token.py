"""Signed, offline-checkable QR access tokens.

A station has no network guarantee, so a QR code must carry everything needed to decide on it and
prove who issued it: the member id, an issue and expiry time, an optional station / group scope, a
random nonce (for single-use replay protection and per-token revocation) and the id of the signing
key. The centre signs with Ed25519; stations hold only public keys, so a stolen station cannot mint
tokens.

Text format (designed to be dense in a QR code and short enough for a phone screen or a card)::

    "YZ1:" + BASE32(body + signature)       RFC 4648 upper-case alphabet, no '=' padding

Every character of that is in the QR *alphanumeric* set (0-9, A-Z, ':'), which packs 5.5 bits per
module pair instead of 8 for byte mode. The body is big-endian::

    version   u8      1
    flags     u8      bit 0 = single use; other bits reserved and must be 0
    key id    4 bytes first 4 bytes of SHA-256 of the raw 32-byte Ed25519 public key
    issued    u32     unix seconds
    expires   u32     unix seconds
    nonce     8 bytes random
    member    u8 length + UTF-8 (1..64 bytes)
    station   u8 length + UTF-8 (0..64 bytes, 0 = no scope)
    group     u8 length + UTF-8 (0..64 bytes, 0 = no scope)

followed by the 64-byte signature over ``b"yizhan-qr-v1\\0" + body``; the domain prefix keeps a
signature made by the same key for any other purpose from ever validating as a token.

The parser is strict on purpose: exactly one encoding of a given token is accepted (canonical
base32, no trailing bytes, no reserved flags, no control characters), and the text length is checked
before any decoding so hostile input costs bounded work. Everything here is pure: no I/O and no
clock reads, `now` is always an argument.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import struct
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

TOKEN_PREFIX: Final = "YZ1:"
TOKEN_VERSION: Final = 1
SIGNATURE_DOMAIN: Final = b"yizhan-qr-v1\0"
MAX_TOKEN_CHARS: Final = 512
MAX_FIELD_BYTES: Final = 64
NONCE_BYTES: Final = 8
SIGNATURE_BYTES: Final = 64
RAW_KEY_BYTES: Final = 32
MIN_TTL_S: Final = 1
MAX_TTL_S: Final = 1827 * 24 * 3600  # five years, leap days included
MAX_UINT32: Final = 0xFFFF_FFFF

FLAG_SINGLE_USE: Final = 0x01
_KNOWN_FLAGS: Final = FLAG_SINGLE_USE

# Stable machine words carried by TokenError.reason (and, through the checker, by QrResult.reason).
MALFORMED: Final = "malformed"
UNSUPPORTED_VERSION: Final = "unsupported_version"
UNKNOWN_KEY: Final = "unknown_key"
BAD_SIGNATURE: Final = "bad_signature"
BAD_VALIDITY: Final = "bad_validity"
NOT_YET_VALID: Final = "not_yet_valid"
EXPIRED: Final = "expired"
TOKEN_ERROR_REASONS: Final = frozenset(
    {MALFORMED, UNSUPPORTED_VERSION, UNKNOWN_KEY, BAD_SIGNATURE, BAD_VALIDITY, NOT_YET_VALID, EXPIRED}
)

_HEADER: Final = struct.Struct(">BB4sII8s")  # version, flags, kid, issued, expires, nonce
_MIN_RAW_BYTES: Final = _HEADER.size + 3 + 1 + SIGNATURE_BYTES  # three length bytes, 1-byte member id
_BASE32_BODY: Final = re.compile(r"[A-Z2-7]*")
_OTHER_VERSION_PREFIX: Final = re.compile(r"YZ[0-9]{1,3}:")
# Unpadded base32 of n bytes has n*8/5 rounded up characters; these remainders never occur.
_IMPOSSIBLE_BASE32_REMAINDERS: Final = frozenset({1, 3, 6})
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator characters:
# they have no business in an id and can make logs or screens show something other than the value.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class QrKeyError(ValueError):
    """Key material is unusable: wrong length, wrong algorithm, undecodable or encrypted PEM."""


class TokenError(ValueError):
    """A token was refused. `reason` is a stable machine word (see TOKEN_ERROR_REASONS).

    `kid` is the key id as written in the token whenever the token parsed (it is 8 hex characters
    by construction, so safe to log, and tells an installer which key a station is missing).
    `claims` is set only once the signature has verified (bad_validity, not_yet_valid, expired):
    before that, every field is attacker-chosen and must not be reported as a member's attempt.
    """

    def __init__(
        self, reason: str, message: str, *, kid: str | None = None, claims: TokenClaims | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.kid = kid
        self.claims = claims


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says. Returned by `parse_token` unverified and by `verify_token` verified."""

    version: int
    kid: str
    member_id: str
    issued_at: int
    expires_at: int
    nonce_hex: str
    station_scope: str | None
    group_scope: str | None
    single_use: bool


# ----------------------------------------------------------------------------------------- keys


def kid_for(public_key_raw: bytes) -> str:
    """Key id of a raw Ed25519 public key: hex of the first 4 bytes of its SHA-256.

    Four bytes keep tokens short; the id only selects a key (the signature is what authenticates),
    so a collision between two of our own keys would cost a bad_signature, never an acceptance.
    """
    _require_raw_key(public_key_raw, "public")
    return hashlib.sha256(public_key_raw).digest()[:4].hex()


def generate_signing_key() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private_raw, public_raw), 32 bytes each."""
    private = Ed25519PrivateKey.generate()
    private_raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return private_raw, _public_raw(private.public_key())


def public_key_for(private_raw: bytes) -> bytes:
    """The raw public key belonging to a raw private key (what stations are given)."""
    return _public_raw(_private_key(private_raw).public_key())


def private_key_to_pem(raw: bytes) -> bytes:
    """PKCS#8 PEM, unencrypted, of a raw private key: protect the file by permissions instead."""
    return _private_key(raw).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(data: bytes) -> bytes:
    """Raw 32-byte private key from an unencrypted PKCS#8 PEM holding an Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # raised by cryptography when the PEM is encrypted
        raise QrKeyError(f"private key PEM is encrypted or unreadable: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise QrKeyError(f"not a readable private key PEM: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise QrKeyError(f"private key PEM holds a {type(key).__name__}, expected Ed25519")
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_key_to_pem(raw: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw public key."""
    return _public_key(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_pem(data: bytes) -> bytes:
    """Raw 32-byte public key from a SubjectPublicKeyInfo PEM holding an Ed25519 key."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise QrKeyError(f"not a readable public key PEM: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise QrKeyError(f"public key PEM holds a {type(key).__name__}, expected Ed25519")
    return _public_raw(key)


def public_key_map(public_keys_raw: Iterable[bytes]) -> dict[str, bytes]:
    """{kid: raw key} for `verify_token`, built so a key can never be filed under the wrong id."""
    result: dict[str, bytes] = {}
    for raw in public_keys_raw:
        result[kid_for(raw)] = bytes(raw)
    return result


def _require_raw_key(raw: object, kind: str) -> None:
    if not isinstance(raw, bytes | bytearray) or len(raw) != RAW_KEY_BYTES:
        size = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
        raise QrKeyError(f"raw Ed25519 {kind} key must be {RAW_KEY_BYTES} bytes, got {size}")


def _private_key(raw: bytes) -> Ed25519PrivateKey:
    _require_raw_key(raw, "private")
    return Ed25519PrivateKey.from_private_bytes(bytes(raw))


def _public_key(raw: bytes) -> Ed25519PublicKey:
    _require_raw_key(raw, "public")
    return _cached_public_key(bytes(raw))


@functools.lru_cache(maxsize=64)
def _cached_public_key(raw: bytes) -> Ed25519PublicKey:
    """Parsed key objects, cached: a station verifies against the same handful of keys all day."""
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise QrKeyError(f"not a valid Ed25519 public key: {exc}") from exc


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ---------------------------------------------------------------------------------------- issue


def issue_token(
    private_raw: bytes,
    member_id: str,
    *,
    now: int,
    ttl_s: int,
    station: str | None = None,
    group: str | None = None,
    single_use: bool = False,
    nonce: bytes | None = None,
) -> str:
    """Sign a token for `member_id`, valid from `now` for `ttl_s` seconds.

    Inputs are held to exactly the rules `parse_token` applies, so whatever is issued also parses;
    anything else is a ValueError (QrKeyError for the key) naming the field.
    """
    key = _private_key(private_raw)
    _check_field("member_id", member_id)
    if station is not None:
        _check_field("station", station)
    if group is not None:
        _check_field("group", group)
    if not _is_int(now) or not 0 <= now <= MAX_UINT32:
        raise ValueError(f"now must be an integer unix time in 0..{MAX_UINT32}, got {now!r}")
    if not _is_int(ttl_s) or not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be an integer in {MIN_TTL_S}..{MAX_TTL_S} s, got {ttl_s!r}")
    if now + ttl_s > MAX_UINT32:
        raise ValueError("expiry does not fit the token's 32-bit time field")
    if not isinstance(single_use, bool):
        raise ValueError(f"single_use must be a bool, got {single_use!r}")
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    elif not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    kid = bytes.fromhex(kid_for(_public_raw(key.public_key())))
    body = _HEADER.pack(
        TOKEN_VERSION, FLAG_SINGLE_USE if single_use else 0, kid, now, now + ttl_s, nonce
    ) + b"".join(_length_prefixed(value) for value in (member_id, station, group))
    signature = key.sign(SIGNATURE_DOMAIN + body)
    return TOKEN_PREFIX + base64.b32encode(body + signature).decode("ascii").rstrip("=")


def _length_prefixed(value: str | None) -> bytes:
    data = b"" if value is None else value.encode("utf-8")
    return bytes([len(data)]) + data


def _check_field(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    problem = field_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}")


def field_problem(value: str) -> str | None:
    """Why `value` cannot be a member id or scope, or None if it can.

    Shared by issuing, parsing and station configuration so that a value accepted in one place is
    never refused (or, worse, silently different) in another.
    """
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not encodable as UTF-8"
    if not 1 <= size <= MAX_FIELD_BYTES:
        return f"must be 1..{MAX_FIELD_BYTES} bytes of UTF-8, got {size}"
    if value != value.strip():
        return "must not start or end with whitespace"
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        return "contains control or invisible formatting characters"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------- parse/verify


def parse_token(text: str) -> TokenClaims:
    """Decode a token's claims WITHOUT checking its signature (for display and diagnostics).

    Raises TokenError("malformed" | "unsupported_version"). Never trust the result for access:
    that is what `verify_token` is for.
    """
    return _decode(text)[0]


def verify_token(
    text: str, public_keys: Mapping[str, bytes], *, now: int, max_clock_skew_s: int
) -> TokenClaims:
    """Parse, authenticate and time-check a token; return its claims or raise TokenError.

    `public_keys` maps kid (lower-case hex, see `kid_for`) to a raw public key. Checks run in this
    order so that a forged token always says bad_signature, never something about its content:
    malformed / unsupported_version, unknown_key, bad_signature, bad_validity, not_yet_valid
    (issued_at > now + skew), expired (expires_at < now - skew). The skew tolerance absorbs the
    drift between the issuing server's clock and a station's unsynchronised RTC.

    A key in `public_keys` that is not a valid Ed25519 key, or is filed under another key's id,
    raises QrKeyError: that is a configuration fault, not a property of the token.
    """
    if not _is_int(now):
        raise ValueError(f"now must be an integer unix time, got {now!r}")
    if not _is_int(max_clock_skew_s) or max_clock_skew_s < 0:
        raise ValueError(f"max_clock_skew_s must be a non-negative integer, got {max_clock_skew_s!r}")
    claims, body, signature = _decode(text)
    raw = public_keys.get(claims.kid)
    if raw is None:
        raise TokenError(UNKNOWN_KEY, f"token signed by unknown key {claims.kid}", kid=claims.kid)
    key = _public_key(raw)
    if kid_for(bytes(raw)) != claims.kid:
        raise QrKeyError(f"public key filed under kid {claims.kid} has kid {kid_for(bytes(raw))}")
    try:
        key.verify(signature, SIGNATURE_DOMAIN + body)
    except InvalidSignature:
        raise TokenError(BAD_SIGNATURE, "token signature does not verify", kid=claims.kid) from None
    if claims.expires_at <= claims.issued_at:
        raise TokenError(BAD_VALIDITY, "token expires before it is issued", kid=claims.kid, claims=claims)
    if claims.issued_at > now + max_clock_skew_s:
        raise TokenError(NOT_YET_VALID, "token issued in the future", kid=claims.kid, claims=claims)
    if claims.expires_at < now - max_clock_skew_s:
        raise TokenError(EXPIRED, "token expired", kid=claims.kid, claims=claims)
    return claims


def _decode(text: object) -> tuple[TokenClaims, bytes, bytes]:
    """(claims, signed body, signature) of a token text, or TokenError. Bounded work on any input."""
    if not isinstance(text, str):
        raise TokenError(MALFORMED, f"token must be text, got {type(text).__name__}")
    if len(text) > MAX_TOKEN_CHARS:
        raise TokenError(MALFORMED, f"token longer than {MAX_TOKEN_CHARS} characters")
    if not text.startswith(TOKEN_PREFIX):
        if _OTHER_VERSION_PREFIX.match(text):
            raise TokenError(UNSUPPORTED_VERSION, f"token format {text[: text.index(':')]!r} not supported")
        raise TokenError(MALFORMED, f"token does not start with {TOKEN_PREFIX!r}")
    raw = _decode_base32(text[len(TOKEN_PREFIX) :])
    if raw[0] != TOKEN_VERSION:
        raise TokenError(UNSUPPORTED_VERSION, f"token body version {raw[0]} not supported")
    if len(raw) < _MIN_RAW_BYTES:
        raise TokenError(MALFORMED, "token too short")
    version, flags, kid_bytes, issued_at, expires_at, nonce = _HEADER.unpack_from(raw)
    if flags & ~_KNOWN_FLAGS:
        raise TokenError(MALFORMED, f"token sets reserved flags 0x{flags:02x}")
    body_end = len(raw) - SIGNATURE_BYTES
    offset = _HEADER.size
    fields: list[str | None] = []
    for name in ("member id", "station scope", "group scope"):
        if offset >= body_end:
            raise TokenError(MALFORMED, f"token truncated before {name}")
        size = raw[offset]
        offset += 1
        if offset + size > body_end:
            raise TokenError(MALFORMED, f"token {name} runs past the body")
        fields.append(_decode_field(name, raw[offset : offset + size]))
        offset += size
    if offset != body_end:
        raise TokenError(MALFORMED, "token has trailing bytes after its fields")
    member_id, station_scope, group_scope = fields
    if member_id is None:
        raise TokenError(MALFORMED, "token has an empty member id")
    claims = TokenClaims(
        version=version,
        kid=kid_bytes.hex(),
        member_id=member_id,
        issued_at=issued_at,
        expires_at=expires_at,
        nonce_hex=nonce.hex(),
        station_scope=station_scope,
        group_scope=group_scope,
        single_use=bool(flags & FLAG_SINGLE_USE),
    )
    return claims, raw[:body_end], raw[body_end:]


def _decode_base32(encoded: str) -> bytes:
    """Strict RFC 4648 base32 without padding: upper case only, and canonical (the unused low bits
    of the last character must be zero) so that one token has exactly one spelling."""
    if not encoded or not _BASE32_BODY.fullmatch(encoded):
        raise TokenError(MALFORMED, "token body is not upper-case unpadded base32")
    if len(encoded) % 8 in _IMPOSSIBLE_BASE32_REMAINDERS:
        raise TokenError(MALFORMED, "token body has an impossible base32 length")
    try:
        raw = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    except (binascii.Error, ValueError) as exc:
        raise TokenError(MALFORMED, f"token body is not valid base32: {exc}") from None
    if base64.b32encode(raw).decode("ascii").rstrip("=") != encoded:
        raise TokenError(MALFORMED, "token body is not canonical base32")
    return raw


def _decode_field(name: str, data: bytes) -> str | None:
    if not data:
        return None
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenError(MALFORMED, f"token {name} is not UTF-8") from None
    problem = field_problem(value)
    if problem is not None:
        raise TokenError(MALFORMED, f"token {name} {problem}")
    return value
