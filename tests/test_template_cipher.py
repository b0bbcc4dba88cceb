"""Template encryption (AES-256-GCM) and template key loading: loud failure, never a silent 'no match'."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common import template_cipher as tc
from common.template_cipher import (
    ENV_VAR,
    KeyFileError,
    TemplateCipher,
    TemplateCorrupt,
    TemplateDecryptError,
    TemplateKeyMismatch,
    load_or_create_key,
)
from models.database import StoreError, ValidationError

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def _vector(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=128).astype(np.float32)


# --- cipher ----------------------------------------------------------------------------------------


def test_round_trip_is_exact_float32() -> None:
    cipher = TemplateCipher(KEY_A)
    vec = _vector()
    blob = cipher.encrypt("m1", "t1", vec)
    out = cipher.decrypt("m1", "t1", cipher.fingerprint, blob)
    assert out.dtype == np.float32 and out.shape == (128,)
    np.testing.assert_array_equal(out, vec)
    assert len(blob) == tc.BLOB_BYTES
    assert vec.tobytes() not in blob


def test_float64_input_is_stored_as_float32() -> None:
    cipher = TemplateCipher(KEY_A)
    vec64 = np.random.default_rng(1).normal(size=128)
    out = cipher.decrypt("m1", "t1", cipher.fingerprint, cipher.encrypt("m1", "t1", list(vec64)))
    np.testing.assert_array_equal(out, vec64.astype(np.float32))


def test_nonce_is_random_per_encryption() -> None:
    cipher = TemplateCipher(KEY_A)
    vec = _vector()
    assert cipher.encrypt("m1", "t1", vec) != cipher.encrypt("m1", "t1", vec)


def test_fingerprint_is_documented_hash() -> None:
    expected = hashlib.sha256(b"yizhan-template-key" + KEY_A).hexdigest()[:16]
    assert TemplateCipher(KEY_A).fingerprint == expected
    assert TemplateCipher(KEY_B).fingerprint != expected
    assert KEY_A.hex() not in repr(TemplateCipher(KEY_A))


def test_wrong_key_is_a_key_mismatch_naming_both_fingerprints() -> None:
    a, b = TemplateCipher(KEY_A), TemplateCipher(KEY_B)
    blob = a.encrypt("m1", "t1", _vector())
    with pytest.raises(TemplateKeyMismatch) as info:
        b.decrypt("m1", "t1", a.fingerprint, blob)
    message = str(info.value)
    assert a.fingerprint in message and b.fingerprint in message and "wrong key" in message
    assert isinstance(info.value, TemplateDecryptError) and isinstance(info.value, StoreError)
    assert info.value.member_id == "m1" and info.value.template_id == "t1"


def test_wrong_key_with_forged_fingerprint_is_still_refused() -> None:
    a, b = TemplateCipher(KEY_A), TemplateCipher(KEY_B)
    blob = a.encrypt("m1", "t1", _vector())
    with pytest.raises(TemplateCorrupt):
        b.decrypt("m1", "t1", b.fingerprint, blob)


@pytest.mark.parametrize("position", [0, 11, 12, 200, tc.BLOB_BYTES - 17, tc.BLOB_BYTES - 1])
def test_any_flipped_byte_is_corrupt(position: int) -> None:
    cipher = TemplateCipher(KEY_A)
    blob = bytearray(cipher.encrypt("m1", "t1", _vector()))
    blob[position] ^= 0x01
    with pytest.raises(TemplateCorrupt, match="failed authentication"):
        cipher.decrypt("m1", "t1", cipher.fingerprint, bytes(blob))


@pytest.mark.parametrize("cut", [0, 1, 12, tc.BLOB_BYTES - 1])
def test_truncated_or_extended_blob_is_corrupt(cut: int) -> None:
    cipher = TemplateCipher(KEY_A)
    blob = cipher.encrypt("m1", "t1", _vector())
    with pytest.raises(TemplateCorrupt):
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob[:cut])
    with pytest.raises(TemplateCorrupt):
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob + b"\x00")


@pytest.mark.parametrize(("member_id", "template_id"), [("m2", "t1"), ("m1", "t2"), ("m1t", "1")])
def test_blob_is_bound_to_its_member_and_template(member_id: str, template_id: str) -> None:
    cipher = TemplateCipher(KEY_A)
    blob = cipher.encrypt("m1", "t1", _vector())
    with pytest.raises(TemplateCorrupt, match=f"template {template_id} of member {member_id}"):
        cipher.decrypt(member_id, template_id, cipher.fingerprint, blob)


def test_authentic_blob_holding_nan_is_corrupt() -> None:
    # Only someone holding the key could produce this; still, NaN must never reach the matcher.
    nonce = b"\x00" * 12
    plaintext = np.full(128, np.nan, dtype="<f4").tobytes()
    blob = nonce + AESGCM(KEY_A).encrypt(nonce, plaintext, tc._aad("m1", "t1"))
    cipher = TemplateCipher(KEY_A)
    with pytest.raises(TemplateCorrupt, match="invalid vector"):
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(127),
        np.zeros(129),
        np.zeros((2, 128)),
        np.full(128, np.nan),
        np.full(128, np.inf),
        np.full(128, 1e300),  # overflows float32 to inf
        ["x"] * 128,
    ],
)
def test_encrypt_refuses_invalid_vectors(bad: object) -> None:
    with pytest.raises(ValidationError, match="encoding"):
        TemplateCipher(KEY_A).encrypt("m1", "t1", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, "0" * 32])
def test_cipher_refuses_wrong_key_size(key: object) -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        TemplateCipher(key)  # type: ignore[arg-type]


# --- key loading -----------------------------------------------------------------------------------


def _write_key(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def test_default_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    key = load_or_create_key(key_file=None, data_dir=data_dir, env={})
    path = data_dir / "template.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.hex() + "\n"
    assert load_or_create_key(key_file=None, data_dir=data_dir, env={}) == key
    assert sorted(p.name for p in data_dir.iterdir()) == ["template.key"]  # no temp file left behind


def test_default_key_file_mode_ignores_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_key(key_file=None, data_dir=tmp_path, env={})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "template.key").stat().st_mode) == 0o600


def test_concurrent_first_use_yields_one_key(tmp_path: Path) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(load_or_create_key(key_file=None, data_dir=tmp_path, env={}))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and len(results) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["template.key"]


def test_env_var_hex_takes_precedence_over_everything(tmp_path: Path) -> None:
    key_file = _write_key(tmp_path / "configured.key", KEY_B.hex())
    env = {ENV_VAR: KEY_A.hex().upper()}
    assert load_or_create_key(key_file=key_file, data_dir=tmp_path / "d", env=env) == KEY_A
    assert not (tmp_path / "d" / "template.key").exists()


def test_env_var_base64_accepted(tmp_path: Path) -> None:
    for encoded in (base64.b64encode(KEY_A), base64.urlsafe_b64encode(b"\xff" * 32)):
        key = load_or_create_key(key_file=None, data_dir=tmp_path, env={ENV_VAR: encoded.decode() + "\n"})
        assert key == base64.urlsafe_b64decode(encoded)
    assert not (tmp_path / "template.key").exists()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "00" * 31,
        "00" * 33,
        "zz" * 32,
        base64.b64encode(b"\x00" * 31).decode(),
        "not a key at all!",
    ],
)
def test_env_var_garbage_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyFileError, match=ENV_VAR):
        load_or_create_key(key_file=None, data_dir=tmp_path, env={ENV_VAR: value})
    assert not (tmp_path / "template.key").exists()


def test_configured_key_file_used_instead_of_data_dir(tmp_path: Path) -> None:
    key_file = _write_key(tmp_path / "configured.key", KEY_B.hex() + "\n")
    assert load_or_create_key(key_file=key_file, data_dir=tmp_path / "d", env={}) == KEY_B
    assert not (tmp_path / "d" / "template.key").exists()


def test_configured_missing_key_file_is_an_error_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "secrets" / "template.key"
    with pytest.raises(KeyFileError, match="does not exist"):
        load_or_create_key(key_file=missing, data_dir=tmp_path, env={})
    assert not missing.exists()
    assert not (tmp_path / "template.key").exists()


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\n",
        "abc",
        "00" * 16,  # a 128-bit key: too short
        "00" * 33,
        "g" * 64,
        KEY_A,  # raw binary, not the hex text format
        b"\xff\xfe" * 40,
        "x" * 5000,
    ],
)
def test_garbage_key_file_is_refused(tmp_path: Path, content: str | bytes) -> None:
    key_file = _write_key(tmp_path / "configured.key", content)
    with pytest.raises(KeyFileError, match="configured.key"):
        load_or_create_key(key_file=key_file, data_dir=tmp_path, env={})
    # The default path is checked the same way (no silent regeneration over a damaged file).
    _write_key(tmp_path / "template.key", content)
    with pytest.raises(KeyFileError):
        load_or_create_key(key_file=None, data_dir=tmp_path, env={})
    assert (tmp_path / "template.key").read_bytes() == (
        content.encode() if isinstance(content, str) else content
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = _write_key(tmp_path / "configured.key", KEY_A.hex(), mode=mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_key(key_file=key_file, data_dir=tmp_path, env={})


def test_key_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "template.key").mkdir()
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_key(key_file=None, data_dir=tmp_path, env={})
