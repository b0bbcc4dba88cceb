"""Signed QR tokens and the station-side checker, with real Ed25519 and hostile input.

Bodies are built by hand in some tests (`_body`, `_signed`) so that the parser's strictness is
exercised on *validly signed* tokens: a strict parser must refuse a bad layout even when the
signature over it is genuine.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
import time
from typing import cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recognizer.qr_check import (
    MemoryReplayGuard,
    QrChecker,
    QrPolicy,
    ReplayGuardError,
)
from recognizer.qr_token import (
    MAX_TOKEN_CHARS,
    MAX_TTL_S,
    SIGNATURE_DOMAIN,
    TOKEN_ERROR_REASONS,
    QrKeyError,
    TokenClaims,
    TokenError,
    generate_signing_key,
    issue_token,
    kid_for,
    parse_token,
    private_key_from_pem,
    private_key_to_pem,
    public_key_for,
    public_key_from_pem,
    public_key_map,
    public_key_to_pem,
    verify_token,
)
from recognizer.results import Decision, QrResult
from recognizer.roster import MemberInfo

T0 = 1_760_000_000
TTL = 3600
SKEW = 60

PRIV_A, PUB_A = generate_signing_key()
PRIV_B, PUB_B = generate_signing_key()
PRIV_C, PUB_C = generate_signing_key()  # never given to stations
KID_A, KID_B = kid_for(PUB_A), kid_for(PUB_B)
KEYS = {KID_A: PUB_A, KID_B: PUB_B}

MEMBERS = {
    "M-001": MemberInfo("M-001", "Wang Li", groups=("drivers", "night")),
    "M-002": MemberInfo("M-002", "Zhao Min", status="suspended"),
    "M-003": MemberInfo("M-003", "Chen Jie", valid_until=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
    "M-004": MemberInfo("M-004", "Liu Yang", valid_from=dt.datetime(2100, 1, 1)),
}

ALLOWED_TEXT_REASONS = {"malformed", "unsupported_version"}


def _token(**kwargs: object) -> str:
    args: dict[str, object] = {"now": T0, "ttl_s": TTL}
    args.update(kwargs)
    member = cast(str, args.pop("member_id", "M-001"))
    key = cast(bytes, args.pop("key", PRIV_A))
    return issue_token(key, member, **args)  # type: ignore[arg-type]


def _raw(token: str) -> bytes:
    encoded = token[4:]
    return base64.b32decode(encoded + "=" * (-len(encoded) % 8))


def _text(raw: bytes) -> str:
    return "YZ1:" + base64.b32encode(raw).decode().rstrip("=")


def _body(
    *,
    version: int = 1,
    flags: int = 0,
    kid: str = KID_A,
    issued: int = T0,
    expires: int = T0 + TTL,
    nonce: bytes = b"\x01" * 8,
    member: bytes = b"M-001",
    station: bytes = b"",
    group: bytes = b"",
    extra: bytes = b"",
) -> bytes:
    head = struct.pack(">BB4sII8s", version, flags, bytes.fromhex(kid), issued, expires, nonce)
    fields = b"".join(bytes([len(v)]) + v for v in (member, station, group))
    return head + fields + extra


def _signed(body: bytes, private_raw: bytes = PRIV_A) -> str:
    signature = Ed25519PrivateKey.from_private_bytes(private_raw).sign(SIGNATURE_DOMAIN + body)
    return _text(body + signature)


def _verify(token: str, now: int = T0 + 10, skew: int = SKEW) -> TokenClaims:
    return verify_token(token, KEYS, now=now, max_clock_skew_s=skew)


def _reason(token: str, now: int = T0 + 10, skew: int = SKEW) -> str:
    with pytest.raises(TokenError) as info:
        _verify(token, now, skew)
    assert info.value.reason in TOKEN_ERROR_REASONS
    return info.value.reason


# ------------------------------------------------------------------------------------------ keys


def test_kid_is_first_four_sha256_bytes_in_hex() -> None:
    import hashlib

    assert KID_A == hashlib.sha256(PUB_A).hexdigest()[:8]
    assert len(KID_A) == 8 and KID_A != KID_B


def test_generated_keys_are_raw_32_bytes_and_match() -> None:
    assert len(PRIV_A) == 32 and len(PUB_A) == 32
    assert public_key_for(PRIV_A) == PUB_A


def test_pem_round_trips() -> None:
    assert private_key_from_pem(private_key_to_pem(PRIV_A)) == PRIV_A
    assert public_key_from_pem(public_key_to_pem(PUB_A)) == PUB_A
    assert b"BEGIN PRIVATE KEY" in private_key_to_pem(PRIV_A)
    assert b"BEGIN PUBLIC KEY" in public_key_to_pem(PUB_A)


def test_public_key_map_files_keys_under_their_kid() -> None:
    assert public_key_map([PUB_A, PUB_B]) == KEYS


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33, "a" * 32])
def test_raw_keys_of_wrong_size_or_type_are_refused(raw: object) -> None:
    with pytest.raises(QrKeyError, match="32 bytes"):
        kid_for(cast(bytes, raw))
    with pytest.raises(QrKeyError):
        private_key_to_pem(cast(bytes, raw))
    with pytest.raises(QrKeyError):
        issue_token(cast(bytes, raw), "M-001", now=T0, ttl_s=TTL)


def test_bad_pem_is_a_key_error() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encrypted = Ed25519PrivateKey.from_private_bytes(PRIV_A).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(QrKeyError, match="expected Ed25519"):
        private_key_from_pem(ec_private)
    with pytest.raises(QrKeyError, match="expected Ed25519"):
        public_key_from_pem(ec_public)
    with pytest.raises(QrKeyError, match="encrypted"):
        private_key_from_pem(encrypted)
    for garbage in (b"", b"not a pem", public_key_to_pem(PUB_A)):
        with pytest.raises(QrKeyError):
            private_key_from_pem(garbage)
    for garbage in (b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(QrKeyError):
            public_key_from_pem(garbage)


# ------------------------------------------------------------------------------ issue and parse


def test_round_trip_carries_every_claim() -> None:
    nonce = bytes(range(8))
    token = _token(station="ST-7", group="drivers", single_use=True, nonce=nonce)
    claims = _verify(token)
    assert claims == TokenClaims(
        version=1,
        kid=KID_A,
        member_id="M-001",
        issued_at=T0,
        expires_at=T0 + TTL,
        nonce_hex=nonce.hex(),
        station_scope="ST-7",
        group_scope="drivers",
        single_use=True,
    )
    assert parse_token(token) == claims


def test_unicode_member_id_round_trips() -> None:
    claims = _verify(_token(member_id="会员-王丽", group="夜班"))
    assert claims.member_id == "会员-王丽" and claims.group_scope == "夜班"


def test_token_is_qr_alphanumeric_and_compact() -> None:
    token = _token(member_id="M-" + "1" * 18)  # 20-character member id
    assert token.startswith("YZ1:")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567:1")
    assert len(token) == 179
    assert len(token) <= 200


def test_largest_possible_token_still_parses() -> None:
    token = _token(member_id="M" * 64, station="S" * 64, group="G" * 64, single_use=True)
    assert len(token) <= MAX_TOKEN_CHARS
    assert _verify(token).group_scope == "G" * 64


def test_fresh_tokens_get_fresh_nonces() -> None:
    assert _verify(_token()).nonce_hex != _verify(_token()).nonce_hex


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"member_id": ""}, "member_id must be 1..64"),
        ({"member_id": "x" * 65}, "member_id must be 1..64"),
        ({"member_id": "é" * 33}, "member_id must be 1..64"),
        ({"member_id": "M\n1"}, "control"),
        ({"member_id": "M\u202e1"}, "control"),
        ({"member_id": " M1"}, "whitespace"),
        ({"member_id": "M\ud8001"}, "UTF-8"),
        ({"member_id": 7}, "must be a string"),
        ({"station": ""}, "station must be 1..64"),
        ({"group": "a\x00b"}, "control"),
        ({"now": -1}, "now must be"),
        ({"now": True}, "now must be"),
        ({"now": 1.5}, "now must be"),
        ({"now": 2**32}, "now must be"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"ttl_s": MAX_TTL_S + 1}, "ttl_s"),
        ({"now": 2**32 - 10, "ttl_s": 11}, "32-bit"),
        ({"nonce": b"short"}, "nonce"),
        ({"single_use": 1}, "single_use"),
    ],
)
def test_issue_refuses_bad_inputs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _token(**kwargs)


def test_issue_accepts_the_ttl_bounds() -> None:
    assert _verify(_token(ttl_s=1)).expires_at == T0 + 1
    assert _verify(_token(ttl_s=MAX_TTL_S)).expires_at == T0 + MAX_TTL_S


# ---------------------------------------------------------------------------- signature forgery


def test_every_single_bit_flip_is_refused() -> None:
    # Body layout: header 0..21, length bytes at 22, 28 and 33, strings between, signature from 41.
    token = _token(station="ST-7", group="drivers")
    raw = _raw(token)
    assert len(raw) - 64 == 41
    length_bytes = {22, 28, 33}
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            mutated = bytearray(raw)
            mutated[index] ^= bit
            reason = _reason(_text(bytes(mutated)))
            if index == 0:
                expected = {"unsupported_version"}
            elif index == 1:
                expected = {"bad_signature"} if bit == 0x01 else {"malformed"}  # single_use / reserved
            elif index in (2, 3, 4, 5):
                expected = {"unknown_key"}
            elif index in length_bytes:
                expected = {"malformed"}
            elif 22 < index < 41:  # string bytes: 0x80 breaks UTF-8, 0x01 is another ASCII letter
                expected = {"bad_signature"} if bit == 0x01 else {"malformed"}
            else:  # times, nonce, signature
                expected = {"bad_signature"}
            assert reason in expected, (index, bit, reason)


def test_forged_content_says_bad_signature_not_expired() -> None:
    raw = bytearray(_raw(_token()))
    raw[23] ^= 0x01  # a member id character
    assert _reason(_text(bytes(raw)), now=T0 + 10 * TTL) == "bad_signature"


def test_resigned_with_another_key_under_a_known_kid() -> None:
    genuine = _raw(_token())
    body = genuine[:-64]
    assert _reason(_signed(body, PRIV_B)) == "bad_signature"  # kid says A, signed by B
    assert _reason(_signed(body, PRIV_C)) == "bad_signature"


def test_swapped_kid_is_refused() -> None:
    raw = bytearray(_raw(_token()))
    raw[2:6] = bytes.fromhex(KID_B)  # A's signature presented as B's
    assert _reason(_text(bytes(raw))) == "bad_signature"


def test_token_from_unknown_key() -> None:
    with pytest.raises(TokenError) as info:
        _verify(_token(key=PRIV_C))
    assert info.value.reason == "unknown_key"
    assert info.value.kid == kid_for(PUB_C)
    assert info.value.claims is None


def test_signature_over_body_without_domain_prefix_is_refused() -> None:
    body = _body()
    signature = Ed25519PrivateKey.from_private_bytes(PRIV_A).sign(body)
    assert _reason(_text(body + signature)) == "bad_signature"


def test_signature_checked_only_against_the_kid_key() -> None:
    assert _verify(_token(key=PRIV_B)).kid == KID_B
    with pytest.raises(TokenError) as info:
        verify_token(_token(key=PRIV_B), {KID_A: PUB_A}, now=T0, max_clock_skew_s=0)
    assert info.value.reason == "unknown_key"


def test_key_filed_under_wrong_kid_is_a_configuration_error() -> None:
    with pytest.raises(QrKeyError, match="filed under"):
        verify_token(_token(), {KID_A: PUB_B}, now=T0, max_clock_skew_s=0)
    with pytest.raises(QrKeyError):
        verify_token(_token(), {KID_A: b"short"}, now=T0, max_clock_skew_s=0)


# ----------------------------------------------------------------------- strict layout, signed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_body(version=2), "unsupported_version"),
        (_body(version=0), "unsupported_version"),
        (_body(flags=0x02), "malformed"),
        (_body(flags=0x81), "malformed"),
        (_body(member=b""), "malformed"),
        (_body(member=b"M\x00"), "malformed"),
        (_body(member=b"M\x1b[31m"), "malformed"),
        (_body(member=b"\xff\xfe"), "malformed"),
        (_body(member=b"\xed\xa0\x80"), "malformed"),  # UTF-8 encoded surrogate
        (_body(member=b"x" * 65), "malformed"),
        (_body(station=b"S\n"), "malformed"),
        (_body(group=b" g"), "malformed"),
        (_body(extra=b"\x00"), "malformed"),
        (_body(extra=b"trailing garbage"), "malformed"),
        (_body()[:-1], "malformed"),  # group length byte missing
        (_body(expires=T0), "bad_validity"),
        (_body(expires=T0 - 1), "bad_validity"),
    ],
    # Named, not printed: the bodies hold KID_A, which differs per process (xdist workers must agree).
    ids=[
        "version-2",
        "version-0",
        "flags-02",
        "flags-81",
        "member-empty",
        "member-nul",
        "member-escape",
        "member-not-utf8",
        "member-surrogate",
        "member-65",
        "station-newline",
        "group-space",
        "extra-nul",
        "extra-garbage",
        "group-length-missing",
        "expires-at-issue",
        "expires-before-issue",
    ],
)
def test_validly_signed_but_bad_layout_is_refused(body: bytes, reason: str) -> None:
    assert _reason(_signed(body)) == reason


def test_hand_built_body_matches_issued_layout() -> None:
    body = _body(nonce=b"\x07" * 8, station=b"ST-7")
    assert _verify(_signed(body)).station_scope == "ST-7"
    assert _raw(_token(nonce=b"\x07" * 8, station="ST-7"))[:-64] == body


def test_bad_validity_is_reported_after_signature() -> None:
    with pytest.raises(TokenError) as info:
        _verify(_signed(_body(expires=T0)))
    assert info.value.reason == "bad_validity"
    assert info.value.claims is not None and info.value.claims.member_id == "M-001"
    raw = bytearray(_raw(_signed(_body(expires=T0))))
    raw[-1] ^= 1
    assert _reason(_text(bytes(raw))) == "bad_signature"


# ----------------------------------------------------------------------------------------- time


@pytest.mark.parametrize("skew", [0, 1, SKEW, 3600])
def test_expiry_and_start_at_the_skew_edges(skew: int) -> None:
    token = _token()
    expires = T0 + TTL
    assert _verify(token, now=expires + skew, skew=skew).member_id == "M-001"
    assert _reason(token, now=expires + skew + 1, skew=skew) == "expired"
    assert _verify(token, now=T0 - skew, skew=skew).member_id == "M-001"
    assert _reason(token, now=T0 - skew - 1, skew=skew) == "not_yet_valid"


def test_time_refusals_carry_verified_claims() -> None:
    with pytest.raises(TokenError) as info:
        _verify(_token(), now=T0 + TTL + SKEW + 1)
    assert info.value.claims is not None and info.value.claims.expires_at == T0 + TTL


@pytest.mark.parametrize("bad", [{"now": 1.5}, {"now": True}, {"max_clock_skew_s": -1}])
def test_verify_refuses_bad_clock_arguments(bad: dict[str, object]) -> None:
    args: dict[str, object] = {"now": T0, "max_clock_skew_s": 0}
    args.update(bad)
    with pytest.raises(ValueError):
        verify_token(_token(), KEYS, **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ hostile text


def _hostile_variants(token: str) -> list[str]:
    return [
        "",
        "YZ1:",
        "YZ1",
        "yz1:" + token[4:],
        token.lower(),
        token + "=",
        token + "=" * ((-len(token[4:])) % 8),
        token + "\n",
        " " + token,
        token + "A",
        token + "AA",
        token[:-1],
        token + token[4:],
        token.replace("A", "\u0391"),  # Greek capital alpha
        token.replace("Y", "\uff39", 1),  # full-width Y
        "YZ1:" + "A" * (MAX_TOKEN_CHARS - 4),
        "YZ1:" + "A" * 10_000_000,
        "YZ1:" + "\x00" * 100,
        "YZ1:" + "8" * 100,
        "YZ1:" + "=" * 8,
        "YZ2:" + token[4:],
        "YZ99:AAAA",
        "https://example.com/?t=" + token,
        "\ud800" + token,
    ]


def test_hostile_variants_are_refused_cleanly() -> None:
    token = _token()
    for text in _hostile_variants(token):
        # This thread's CPU time, not the wall clock (other processes cannot inflate it); the bound
        # is far above the microseconds a refusal takes and far below a pathological parse.
        started = time.thread_time()
        reason = _reason(text)
        assert time.thread_time() - started < 0.5, "hostile input must be cheap to refuse"
        assert reason in ALLOWED_TEXT_REASONS, (text[:40], reason)
    assert _reason("YZ2:" + token[4:]) == "unsupported_version"


def test_non_canonical_last_character_is_refused() -> None:
    token = _token()
    # 109 raw bytes -> 175 characters, the last carrying 2 unused bits: set them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    last = alphabet.index(token[-1])
    assert last & 0b111 == 0
    sibling = token[:-1] + alphabet[last | 0b001]
    assert _raw(sibling) == _raw(token)  # the stdlib decoder would accept it
    assert _reason(sibling) == "malformed"


def test_every_truncation_is_malformed() -> None:
    token = _token(station="ST-7", single_use=True)
    for end in range(len(token)):
        assert _reason(token[:end]) == "malformed"


def test_non_text_input_is_malformed() -> None:
    for value in (None, b"YZ1:AAAA", 12, ["YZ1:"]):
        assert _reason(cast(str, value)) == "malformed"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600))
def test_random_text_is_refused(text: str) -> None:
    assert _reason(text) in ALLOWED_TEXT_REASONS
    assert _reason("YZ1:" + text) in ALLOWED_TEXT_REASONS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=320), st.booleans(), st.booleans())
def test_random_bytes_behind_the_prefix_are_refused(data: bytes, pad: bool, lower: bool) -> None:
    encoded = base64.b32encode(data).decode()
    if not pad:
        encoded = encoded.rstrip("=")
    if lower:
        encoded = encoded.lower()
    reason = _reason("YZ1:" + encoded)
    assert reason in ALLOWED_TEXT_REASONS | {"unknown_key"}


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=90, max_size=280))
def test_random_bodies_with_our_version_and_kid_are_refused(data: bytes) -> None:
    raw = bytes([1, 0]) + bytes.fromhex(KID_A) + data
    assert _reason(_text(raw)) in {"malformed", "bad_signature"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_single_character_edits_are_refused(data: st.DataObject) -> None:
    token = _token()
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    char = data.draw(st.characters())
    edited = token[:index] + char + token[index + 1 :]
    if edited == token:
        return
    assert _reason(edited) in TOKEN_ERROR_REASONS - {"expired", "not_yet_valid", "bad_validity"}


# ===================================================================================== checker


class _FailingGuard:
    def __init__(self) -> None:
        self.calls = 0

    def claim(self, kid: str, nonce_hex: str, expires_at: int, now: int) -> bool:
        self.calls += 1
        raise ReplayGuardError("database is locked")


def _checker(station: str | None = "ST-7", skew: int = SKEW) -> QrChecker:
    return QrChecker(QrPolicy(max_clock_skew_s=skew, station_id=station), MemoryReplayGuard())


def _check(
    checker: QrChecker,
    text: str,
    *,
    now: float = T0 + 10,
    revoked_kids: frozenset[str] = frozenset(),
    revoked_nonces: frozenset[str] = frozenset(),
    members: dict[str, MemberInfo] | None = None,
) -> QrResult:
    return checker.check(
        text,
        public_keys=KEYS,
        revoked_kids=revoked_kids,
        revoked_nonces=revoked_nonces,
        members=MEMBERS if members is None else members,
        now=now,
    )


def _refused(result: QrResult, reason: str) -> None:
    assert result.decision is Decision.QR_REFUSED
    assert result.reason == reason


def test_check_accepts_a_good_token() -> None:
    result = _check(_checker(), _token())
    assert result.decision is Decision.QR_OK
    assert result.member_id == "M-001"
    assert result.key_id == KID_A
    assert result.expires_at == T0 + TTL
    assert result.reason is None
    assert set(result.timings_ms) == {"verify"} and result.timings_ms["verify"] >= 0.0
    assert result.to_json()["decision"] == "qr_ok"


def test_check_refusals_from_the_token() -> None:
    checker = _checker()
    _refused(_check(checker, "nonsense"), "malformed")
    _refused(_check(checker, "YZ7:AAAA"), "unsupported_version")
    _refused(_check(checker, _token(key=PRIV_C)), "unknown_key")
    _refused(_check(checker, _signed(_body(expires=T0))), "bad_validity")
    _refused(_check(checker, _token(), now=T0 - SKEW - 1), "not_yet_valid")
    _refused(_check(checker, _token(), now=T0 + TTL + SKEW + 1), "expired")
    raw = bytearray(_raw(_token()))
    raw[-5] ^= 0x10
    _refused(_check(checker, _text(bytes(raw))), "bad_signature")


def test_refusal_reports_member_only_when_the_signature_verified() -> None:
    checker = _checker()
    forged = _signed(_body(member=b"M-001"), PRIV_C)  # A's kid, signed by a key no station holds
    result = _check(checker, forged)
    assert (result.member_id, result.key_id, result.expires_at) == (None, KID_A, None)
    raw = bytearray(_raw(_token()))
    raw[-1] ^= 1
    result = _check(checker, _text(bytes(raw)))
    assert (result.reason, result.member_id, result.key_id) == ("bad_signature", None, KID_A)
    result = _check(checker, _token(), now=T0 + TTL + SKEW + 1)
    assert (result.reason, result.member_id, result.expires_at) == ("expired", "M-001", T0 + TTL)
    assert _check(checker, "junk").key_id is None


def test_check_at_fractional_now_uses_whole_seconds() -> None:
    checker = _checker()
    assert _check(checker, _token(), now=T0 + TTL + SKEW + 0.999).decision is Decision.QR_OK
    _refused(_check(checker, _token(), now=T0 + TTL + SKEW + 1.0), "expired")


def test_revoked_key_and_revoked_token() -> None:
    checker = _checker()
    token = _token()
    nonce = parse_token(token).nonce_hex
    result = _check(checker, token, revoked_kids=frozenset({KID_A}))
    _refused(result, "key_revoked")
    assert result.member_id == "M-001"
    _refused(_check(checker, token, revoked_nonces=frozenset({nonce})), "token_revoked")
    other = _token(nonce=b"\x09" * 8)
    assert _check(checker, other, revoked_nonces=frozenset({nonce})).decision is Decision.QR_OK
    assert _check(checker, _token(key=PRIV_B), revoked_kids=frozenset({KID_A})).decision is Decision.QR_OK


def test_station_scope() -> None:
    token = _token(station="ST-7")
    assert _check(_checker("ST-7"), token).decision is Decision.QR_OK
    _refused(_check(_checker("ST-8"), token), "wrong_station")
    _refused(_check(_checker(None), token), "wrong_station")
    assert _check(_checker(None), _token()).decision is Decision.QR_OK


def test_member_state() -> None:
    checker = _checker()
    _refused(_check(checker, _token(member_id="M-999")), "unknown_member")
    _refused(_check(checker, _token(), members={}), "unknown_member")  # removed
    _refused(_check(checker, _token(member_id="M-002")), "member_suspended")
    _refused(_check(checker, _token(member_id="M-003")), "member_expired")
    _refused(_check(checker, _token(member_id="M-004")), "member_not_yet_valid")


def test_member_validity_uses_the_check_time() -> None:
    edge = dt.datetime.fromtimestamp(T0 + 100, tz=dt.UTC)
    members = {"M-001": MemberInfo("M-001", "Wang Li", valid_until=edge)}
    checker = _checker()
    assert _check(checker, _token(), now=T0 + 100, members=members).decision is Decision.QR_OK
    _refused(_check(checker, _token(), now=T0 + 100.5, members=members), "member_expired")


def test_group_scope() -> None:
    checker = _checker()
    assert _check(checker, _token(group="night")).decision is Decision.QR_OK
    _refused(_check(checker, _token(group="admins")), "wrong_group")


def test_single_use_replay_and_multi_use_repeat() -> None:
    checker = _checker()
    once = _token(single_use=True)
    assert _check(checker, once).decision is Decision.QR_OK
    _refused(_check(checker, once), "replayed")
    _refused(_check(checker, once, now=T0 + TTL + SKEW), "replayed")
    card = _token()
    for _ in range(5):
        assert _check(checker, card).decision is Decision.QR_OK
    _refused(_check(checker, card, revoked_nonces=frozenset({parse_token(card).nonce_hex})), "token_revoked")


def test_refused_single_use_token_is_not_burnt() -> None:
    checker = _checker()
    once = _token(member_id="M-002", single_use=True)
    _refused(_check(checker, once), "member_suspended")
    active = {"M-002": MemberInfo("M-002", "Zhao Min")}
    assert _check(checker, once, members=active).decision is Decision.QR_OK
    _refused(_check(checker, once, members=active), "replayed")


def test_replay_guard_failure_refuses() -> None:
    guard = _FailingGuard()
    checker = QrChecker(QrPolicy(), guard)
    _refused(_check(checker, _token(single_use=True)), "replay_check_failed")
    assert _check(checker, _token()).decision is Decision.QR_OK  # multi-use never asks the guard
    assert guard.calls == 1


def test_check_order_is_as_documented() -> None:
    checker = _checker("ST-7")
    everything_wrong = _token(member_id="M-002", station="ST-8", group="admins", single_use=True)
    nonce = parse_token(everything_wrong).nonce_hex
    kids, nonces = frozenset({KID_A}), frozenset({nonce})
    _refused(_check(checker, everything_wrong, revoked_kids=kids, revoked_nonces=nonces), "key_revoked")
    _refused(_check(checker, everything_wrong, revoked_nonces=nonces), "token_revoked")
    _refused(_check(checker, everything_wrong), "wrong_station")
    _refused(_check(_checker("ST-8"), everything_wrong, members={}), "unknown_member")
    _refused(_check(_checker("ST-8"), everything_wrong), "member_suspended")
    active = {"M-002": MemberInfo("M-002", "Zhao Min")}
    _refused(_check(_checker("ST-8"), everything_wrong, members=active), "wrong_group")


def test_broken_key_configuration_refuses_instead_of_raising() -> None:
    checker = _checker()
    result = checker.check(
        _token(),
        public_keys={KID_A: b"\x00" * 5},
        revoked_kids=frozenset(),
        revoked_nonces=frozenset(),
        members=MEMBERS,
        now=T0,
    )
    _refused(result, "key_config_error")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=600), st.binary(max_size=300).map(lambda b: _text(b) if b else "")))
def test_checker_never_raises_on_hostile_text(text: str) -> None:
    guard = MemoryReplayGuard()
    result = _check(QrChecker(QrPolicy(), guard), text)
    assert result.decision is Decision.QR_REFUSED
    assert result.reason in {"malformed", "unsupported_version", "unknown_key", "bad_signature"}
    assert result.member_id is None
    assert len(guard) == 0


def test_checker_refuses_hostile_variants() -> None:
    checker = _checker()
    for text in _hostile_variants(_token()):
        result = _check(checker, text)
        assert result.decision is Decision.QR_REFUSED
        assert result.reason in ALLOWED_TEXT_REASONS


# -------------------------------------------------------------------------------- replay guard


def test_memory_guard_claims_once_per_kid_and_nonce() -> None:
    guard = MemoryReplayGuard()
    assert guard.claim("aaaaaaaa", "01", T0 + 10, T0)
    assert not guard.claim("aaaaaaaa", "01", T0 + 10, T0)
    assert guard.claim("bbbbbbbb", "01", T0 + 10, T0)
    assert guard.claim("aaaaaaaa", "02", T0 + 10, T0)


def test_memory_guard_forgets_only_after_expiry() -> None:
    guard = MemoryReplayGuard()
    guard.claim("k", "01", T0 + 10, T0)
    guard.claim("k", "02", T0 + 100, T0)
    assert not guard.claim("k", "01", T0 + 10, T0 + 10)  # still acceptable at its last second
    assert len(guard) == 2
    assert guard.claim("k", "03", T0 + 100, T0 + 11)
    assert len(guard) == 2  # 01 dropped, 02 and 03 kept


def test_memory_guard_refuses_when_full_instead_of_forgetting() -> None:
    guard = MemoryReplayGuard(max_entries=2)
    guard.claim("k", "01", T0 + 10, T0)
    guard.claim("k", "02", T0 + 10, T0)
    with pytest.raises(ReplayGuardError) as info:
        guard.claim("k", "03", T0 + 10, T0)
    assert info.value.reason == "replay_guard_full"
    assert not guard.claim("k", "01", T0 + 10, T0)  # nothing was evicted
    assert guard.claim("k", "03", T0 + 10, T0 + 11)  # room again once the others expired


def test_checker_reports_a_full_guard() -> None:
    checker = QrChecker(QrPolicy(), MemoryReplayGuard(max_entries=1))
    assert _check(checker, _token(single_use=True)).decision is Decision.QR_OK
    _refused(_check(checker, _token(single_use=True)), "replay_guard_full")


def test_checker_keeps_nonces_through_the_skew_window() -> None:
    guard = MemoryReplayGuard()
    checker = QrChecker(QrPolicy(max_clock_skew_s=SKEW), guard)
    once = _token(single_use=True)
    assert _check(checker, once).decision is Decision.QR_OK
    guard.claim("other", "00", T0 + 10 * TTL, T0 + TTL + SKEW)  # prunes at the last valid second
    _refused(_check(checker, once, now=T0 + TTL + SKEW), "replayed")


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_memory_guard_size_must_be_positive(bad: object) -> None:
    with pytest.raises(ValueError):
        MemoryReplayGuard(max_entries=cast(int, bad))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_clock_skew_s": -1},
        {"max_clock_skew_s": 24 * 3600 + 1},
        {"max_clock_skew_s": 1.5},
        {"max_clock_skew_s": True},
        {"station_id": ""},
        {"station_id": "ST\n7"},
        {"station_id": "S" * 65},
        {"station_id": 7},
    ],
)
def test_policy_refuses_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        QrPolicy(**kwargs)  # type: ignore[arg-type]
