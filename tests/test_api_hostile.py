"""Hostile input: every refusal is a 4xx with a clear message, and nothing is stored."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_api_support import ApiEnv, api_env

from models import events as event_store


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-hostile"), face_model, fixtures) as value:
        yield value


def files_under(root: Path) -> set[Path]:
    return {
        p
        for p in root.rglob("*")
        if p.is_file() and "snapshots" not in p.parts and not p.name.startswith("yizhan.db")
    }


@pytest.fixture
def nothing_stored(env: ApiEnv) -> Iterator[None]:
    """No member, template, capture or file appears during the test."""
    before_members = env.client.get("/api/v1/members", headers=env.auth).json()["total"]
    before_files = files_under(env.data_dir)
    ctx = env.app.state.ctx
    before_captures = len(ctx.captures)
    yield
    assert env.client.get("/api/v1/members", headers=env.auth).json()["total"] == before_members
    assert len(ctx.captures) == before_captures
    assert files_under(env.data_dir) == before_files


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zero pixels: tiny on disk, gigabytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def post_photo(env: ApiEnv, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg") -> Any:
    return env.client.post(
        "/api/v1/captures/upload", headers=env.auth, files={"photo": (name, data, content_type)}
    )


# -- uploads -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_stored")
def test_a_20_mb_upload_is_refused_before_it_is_read(env: ApiEnv) -> None:
    response = post_photo(env, os.urandom(20 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "MiB limit" in response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_an_oversized_chunked_upload_is_cut_off(env: ApiEnv) -> None:
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="x.jpg"\r\n\r\n'.encode()

    def body() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield head
        for _ in range(24):
            yield b"\xff" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = env.client.post(
        "/api/v1/captures/upload",
        headers={**env.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"


@pytest.mark.usefixtures("nothing_stored")
def test_a_decompression_bomb_is_refused_before_decoding(env: ApiEnv) -> None:
    bomb = png_bomb(40_000, 40_000)  # 1.6 gigapixels in ~200 KB
    assert len(bomb) < 1024 * 1024
    response = post_photo(env, bomb, "bomb.png", "image/png")
    assert response.status_code == 422 and response.json()["code"] == "too_many_pixels"
    assert "pixel" in response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_a_49_megapixel_photo_is_refused_for_its_size(env: ApiEnv) -> None:
    """A modern phone's full-resolution photo: refused for what it is (too many pixels, with the
    numbers the page shows), not as "not a usable image"."""
    buffer = io.BytesIO()
    Image.new("RGB", (8100, 6050), (120, 130, 140)).save(buffer, format="JPEG", quality=60)
    assert buffer.tell() < env.config.api.max_upload_mb * 1024 * 1024  # small file, many pixels
    response = post_photo(env, buffer.getvalue(), "IMG_0001.jpg")
    body = response.json()
    assert response.status_code == 422 and body["code"] == "too_many_pixels", body
    assert (body["width"], body["height"]) == (8100, 6050)
    assert body["max_pixels"] == int(env.config.api.max_upload_megapixels * 1_000_000)


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    ("data", "words", "code"),
    [
        (b"", "empty", "image_empty"),
        (b"#!/bin/sh\nrm -rf /\n", "not a readable image", "not_an_image"),
        (b"%PDF-1.4\n" + b"0" * 2000, "not a readable image", "not_an_image"),
    ],
    ids=["empty", "script", "pdf"],
)
def test_non_images_are_refused(env: ApiEnv, data: bytes, words: str, code: str) -> None:
    response = post_photo(env, data, "x.jpg")
    assert response.status_code == 422 and response.json()["code"] == code
    assert words in response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_a_truncated_photo_is_refused(env: ApiEnv, fixtures: Path) -> None:
    data = (fixtures / "obama_1.jpg").read_bytes()
    response = post_photo(env, data[: len(data) // 2])
    assert response.status_code == 422 and "truncated" in response.json()["detail"]
    assert response.json()["code"] == "image_damaged"


def test_a_hostile_file_name_is_never_used(env: ApiEnv, fixtures: Path) -> None:
    before = files_under(env.data_dir)
    data = (fixtures / "obama_1.jpg").read_bytes()
    response = post_photo(env, data, "../../../../tmp/evil\x00.jpg")
    assert response.status_code == 201
    capture = response.json()
    assert capture["name"].startswith("upload-") and "evil" not in str(capture)
    assert files_under(env.data_dir) == before and not Path("/tmp/evil").exists()
    env.client.delete(f"/api/v1/captures/{capture['capture_id']}", headers=env.auth)


@pytest.mark.usefixtures("nothing_stored")
def test_an_upload_without_a_file_is_a_422(env: ApiEnv) -> None:
    response = env.client.post("/api/v1/captures/upload", headers=env.auth, data={"photo": "not a file"})
    assert response.status_code == 422 and "photo" in response.json()["detail"]


# -- paths -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/members/..",
        "/api/v1/members/..%2F..%2Fyizhan.db",
        "/api/v1/members/%00",
        "/api/v1/events/..%2F..%2Fyizhan.db/snapshot",
        "/api/v1/events/00000000-0000-4000-8000-000000000000%2F..%2F../snapshot",
        "/api/v1/captures/..%2F..%2Fetc%2Fpasswd/image",
        "/static/..%2Fyizhan.db",
        "/static/../../yizhan.db",
        "/static/%2e%2e/%2e%2e/installers.json",
    ],
)
def test_path_tricks_reach_nothing(env: ApiEnv, path: str) -> None:
    response = env.client.get(path, headers=env.auth)
    assert response.status_code in (404, 422), (path, response.status_code)
    assert b"SQLite" not in response.content and b"argon2" not in response.content


def test_a_snapshot_path_planted_in_an_event_is_not_served(env: ApiEnv) -> None:
    recorder = env.daemon.recorder
    assert recorder is not None
    for planted in ("../yizhan.db", "/etc/passwd", "2026-01-01/../../installers.json"):
        event = recorder.record(kind="planted_snapshot", snapshot=planted)
        response = env.client.get(f"/api/v1/events/{event['id']}/snapshot", headers=env.auth)
        assert response.status_code == 404 and response.json()["code"] == "snapshot_not_found"


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("member_id", ["../etc", "a/b", "..", "x" * 65, "名字", "a b"])
def test_bad_member_ids_are_refused(env: ApiEnv, member_id: str) -> None:
    response = env.client.post(
        "/api/v1/members", headers=env.auth, json={"member_id": member_id, "name": "X"}
    )
    assert response.status_code == 422 and "member_id" in response.json()["detail"]


# -- JSON --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"name": ', "application/json", "bad_json"),
        (b"\xff\xfe\x00garbage", "application/json", "bad_json"),
        (b'["name", "x"]', "application/json", "invalid_request"),
        (b'{"name": "x", "is_admin": true}', "application/json", "invalid_request"),
        (b'{"name": "\\u0000\\u0007"}', "application/json", "invalid_value"),
        (b'{"name": "   "}', "application/json", "invalid_value"),
        (b'{"name": 12}', "application/json", "invalid_request"),
        (b'{"name": "x", "valid_until": "2026-13-45"}', "application/json", "invalid_request"),
        (b'{"name": "x", "valid_until": "9999-12-31T23:59:59-23:59"}', "application/json", "invalid_request"),
        (b"name=x", "application/x-www-form-urlencoded", "invalid_request"),
        (b'{"name": "x"}', "text/plain", "invalid_request"),
        (b"[" * 5000 + b"]" * 5000, "application/json", "bad_body"),
    ],
    ids=[
        "truncated",
        "binary",
        "array",
        "extra-field",
        "control-chars",
        "blank-name",
        "wrong-type",
        "bad-date",
        "overflowing-date",
        "form",
        "text-plain",
        "deep-nesting",
    ],
)
def test_bad_json_is_a_4xx_with_a_message(env: ApiEnv, body: bytes, content_type: str, code: str) -> None:
    response = env.client.post(
        "/api/v1/members", headers={**env.auth, "Content-Type": content_type}, content=body
    )
    assert response.status_code == (400 if code == "bad_body" else 422), response.text
    assert response.json()["code"] == code and response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_a_huge_json_body_is_refused(env: ApiEnv) -> None:
    body = b'{"name": "' + b"x" * (300 * 1024) + b'"}'
    response = env.client.post(
        "/api/v1/members", headers={**env.auth, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"


@pytest.mark.usefixtures("nothing_stored")
def test_a_bad_content_length_is_a_400(env: ApiEnv) -> None:
    response = env.client.post(
        "/api/v1/members",
        headers={**env.auth, "Content-Type": "application/json", "Content-Length": "-5"},
        content=b"{}",
    )
    assert response.status_code == 400


@pytest.mark.usefixtures("nothing_stored")
def test_hostile_query_values_are_refused(env: ApiEnv) -> None:
    for params in (
        {"limit": "100000000000000000000"},
        {"limit": "-1"},
        {"since": "not a date"},
        {"kind": "entry'; DROP TABLE events;--"},
        {"member_id": "\x00"},
        {"order": "sideways"},
    ):
        response = env.client.get("/api/v1/events", headers=env.auth, params=params)
        assert response.status_code == 422, params
    with env.station.sessions() as session:
        assert event_store.list_events(session, limit=1)  # the table is still there
    oversize = env.client.get("/api/v1/members", headers=env.auth, params={"q": "x" * 1000})
    assert oversize.status_code == 422


def test_enrolment_with_a_forged_capture_id_stores_nothing(env: ApiEnv, nothing_stored: None) -> None:
    response = env.client.post(
        "/api/v1/enrolments",
        headers=env.auth,
        json={"name": "X", "consent_face": True, "capture_ids": ["../../../../etc/passwd"]},
    )
    assert response.status_code == 422 and "capture_ids" in response.json()["detail"]
