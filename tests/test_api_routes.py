"""The API's resources against a running station: members, enrolment, events, door, schedule, health."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_api_support import RELAY_PIN, ApiEnv, api_env, wait_for

from models import events as event_store

HINTS = {"ok", "no_face", "move_closer", "too_dark", "too_bright", "hold_still", "head_straight",
         "face_camera", "one_person", "no_camera", "busy"}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-routes"), face_model, fixtures) as value:
        yield value


def upload(env: ApiEnv, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = env.client.post(
            "/api/v1/captures/upload", headers=env.auth, files={"photo": (path.name, handle)}
        )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def members(env: ApiEnv, **params: Any) -> dict[str, Any]:
    response = env.client.get("/api/v1/members", headers=env.auth, params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# -- members -----------------------------------------------------------------------------------------


def test_members_create_search_update_delete(env: ApiEnv) -> None:
    created = env.client.post(
        "/api/v1/members",
        headers=env.auth,
        json={"name": "张三", "phone": "138 0013 8000", "kind": "rider", "groups": ["夜班"]},
    )
    assert created.status_code == 201, created.text
    member = created.json()
    assert re.fullmatch(r"m-\d{8}-[0-9a-f]{6}", member["member_id"]) and member["templates"] == 0
    member_id = member["member_id"]
    again = env.client.post(
        "/api/v1/members", headers=env.auth, json={"member_id": member_id, "name": "李四"}
    )
    assert again.status_code == 409 and again.json()["code"] == "member_exists"

    assert [m["member_id"] for m in members(env, q="张")["items"]] == [member_id]
    assert [m["member_id"] for m in members(env, q="0013")["items"]] == [member_id]
    assert members(env, q="nobody-like-this")["total"] == 0
    assert member_id in [m["member_id"] for m in members(env, kind="rider")["items"]]

    changed = env.client.patch(
        f"/api/v1/members/{member_id}",
        headers=env.auth,
        json={"status": "suspended", "valid_until": "2030-01-01T00:00:00+08:00"},
    )
    assert changed.status_code == 200
    assert (
        changed.json()["status"] == "suspended"
        and changed.json()["valid_until"] == "2029-12-31T16:00:00+00:00"
    )
    assert member_id in [m["member_id"] for m in members(env, status="suspended")["items"]]
    backwards = env.client.patch(
        f"/api/v1/members/{member_id}", headers=env.auth, json={"valid_from": "2031-01-01T00:00:00+00:00"}
    )
    assert backwards.status_code == 422 and "valid_until" in backwards.json()["detail"]
    assert (
        env.client.patch(f"/api/v1/members/{member_id}", headers=env.auth, json={"name": None}).status_code
        == 422
    )
    assert env.client.patch(f"/api/v1/members/{member_id}", headers=env.auth, json={}).status_code == 422
    cleared = env.client.patch(f"/api/v1/members/{member_id}", headers=env.auth, json={"valid_until": None})
    assert cleared.json()["valid_until"] is None

    removed = env.client.delete(f"/api/v1/members/{member_id}", headers=env.auth)
    assert removed.status_code == 200 and removed.json()["removed"] is True
    assert env.client.get(f"/api/v1/members/{member_id}", headers=env.auth).status_code == 404
    assert env.client.delete(f"/api/v1/members/{member_id}", headers=env.auth).status_code == 404
    with env.station.sessions() as session:
        audit = [e.kind for e in event_store.list_events(session, member_id=member_id)]
    assert audit == ["member_created", "member_updated", "member_updated", "member_removed"]


def test_member_list_pages(env: ApiEnv) -> None:
    ids = [
        env.client.post(
            "/api/v1/members", headers=env.auth, json={"member_id": f"page-{i}", "name": f"Page {i}"}
        ).json()["member_id"]
        for i in range(3)
    ]
    first = members(env, q="page-", limit=2)
    second = members(env, q="page-", limit=2, offset=2)
    assert first["total"] == 3 and [m["member_id"] for m in first["items"] + second["items"]] == ids
    for member_id in ids:
        env.client.delete(f"/api/v1/members/{member_id}", headers=env.auth)


# -- enrolment ---------------------------------------------------------------------------------------


def test_enrol_from_an_uploaded_photo_duplicates_and_someone_elses_photo_are_refused(
    env: ApiEnv, fixtures: Path
) -> None:
    photo = upload(env, fixtures / "obama_1.jpg")
    assert photo["check"]["ok"] is True and photo["name"].startswith("upload-")  # not the client's file name
    image = env.client.get(photo["image_url"], headers=env.auth)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size[0] <= 800

    enrolled = env.client.post(
        "/api/v1/enrolments",
        headers=env.auth,
        json={
            "member_id": "m-obama",
            "name": "Barack Obama",
            "kind": "driver",
            "consent_face": True,
            "valid_from": "2026-01-01T00:00:00+08:00",
            "capture_ids": [photo["capture_id"]],
        },
    )
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert body["created"] is True and body["templates_added"] == 1
    assert body["member"]["templates"] == 1 and body["member"]["valid_from"] == "2025-12-31T16:00:00+00:00"
    assert env.client.get(photo["image_url"], headers=env.auth).status_code == 404  # consumed

    # Another photo of him under another id: the same person for the door, refused even confirmed.
    same_face = upload(env, fixtures / "obama_2.jpg")
    request = {
        "member_id": "m-other",
        "name": "Someone Else",
        "consent_face": True,
        "capture_ids": [same_face["capture_id"]],
    }
    for confirm in ({}, {"confirm_different_person": True}, {"force": True}):
        refused = env.client.post("/api/v1/enrolments", headers=env.auth, json={**request, **confirm})
        assert refused.status_code == 422, refused.text
        problem = refused.json()["codes"][0]
        assert problem["code"] == "same_person" and problem["member_id"] == "m-obama", refused.json()
        assert problem["distance"] <= problem["limit"] and problem["photo"].startswith("upload-")
        assert "nothing was stored" in refused.json()["detail"]
        assert env.client.get("/api/v1/members/m-other", headers=env.auth).status_code == 404
    env.client.delete(f"/api/v1/captures/{same_face['capture_id']}", headers=env.auth)

    # A photo of someone else added to him: refused with the numbers until the installer confirms.
    other = upload(env, fixtures / "biden_1.jpg")
    add = {
        "member_id": "m-obama",
        "name": "Barack Obama",
        "consent_face": True,
        "capture_ids": [other["capture_id"]],
    }
    refused = env.client.post("/api/v1/enrolments", headers=env.auth, json=add)
    assert refused.status_code == 422, refused.text
    problem = refused.json()["codes"][0]
    assert problem["code"] == "unconfirmed_same_person" and problem["member_id"] == "m-obama"
    # The numbers the installer decides on: his own photos are farther than the same-person limit.
    policy = env.station.scoring_policy
    assert problem["limit"] == round(policy.same_person_distance, 4) < problem["distance"] < 2.0
    assert f"{problem['distance']:.3f} > {problem['limit']:.3f}" in problem["text"]
    assert env.client.get("/api/v1/members/m-obama", headers=env.auth).json()["templates"] == 1
    confirmed = env.client.post(
        "/api/v1/enrolments", headers=env.auth, json={**add, "confirm_same_person": True}
    )
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["findings"][0]["kind"] == "unconfirmed_same_person"
    assert confirmed.json()["requires_pass"] == []

    # ... and the wrong photo is listed (how, by whom) and removed on its own.
    listed = env.client.get("/api/v1/members/m-obama/templates", headers=env.auth)
    assert listed.status_code == 200
    rows = listed.json()
    assert [t["origin"] for t in rows] == ["upload", "upload"]
    assert rows[1]["enrolled_by"].startswith("installer:")
    assert rows[1]["confirmed"] == {"same_person": True, "different_person": False}
    path = f"/api/v1/members/m-obama/templates/{rows[1]['template_id']}"
    removed = env.client.delete(path, headers=env.auth)
    assert removed.status_code == 200 and removed.json()["templates_left"] == 1
    assert env.client.delete(path, headers=env.auth).status_code == 404
    bad_id = env.client.delete("/api/v1/members/m-obama/templates/not-an-id", headers=env.auth)
    assert bad_id.status_code == 422
    assert env.client.get("/api/v1/members/nobody/templates", headers=env.auth).status_code == 404
    kinds = [e.kind for e in _events(env)]
    assert "template_removed" in kinds

    # An installer can make the door require the pass for a member.
    flagged = env.client.patch("/api/v1/members/m-obama", headers=env.auth, json={"requires_pass": True})
    assert flagged.status_code == 200 and flagged.json()["requires_pass"] is True
    cleared = env.client.patch("/api/v1/members/m-obama", headers=env.auth, json={"requires_pass": None})
    assert cleared.status_code == 422
    env.client.delete("/api/v1/members/m-obama", headers=env.auth)


@pytest.mark.dataset
def test_lookalikes_are_refused_with_the_numbers_then_both_require_the_pass_once_confirmed(
    env: ApiEnv, labelled_faces: Any
) -> None:
    """Two distinct people of the data set closer than the lookalike distance, enrolled through the
    API: the second is refused (nothing stored) until the installer confirms they are two people;
    then both are marked, listed and judged as requiring the pass."""
    from recognizer.roster import RosterSnapshot
    from recognizer.scoring import REQUIRES_PASS, SHOW_PASS, score

    samples, roots, _ = labelled_faces
    policy = env.station.scoring_policy
    photos = [s for s in samples if s.member and s.enrollable]
    middle = (policy.same_person_distance + policy.lookalike_distance) / 2
    candidates = [
        (float(np.linalg.norm(a.encoding - b.encoding)), a, b)
        for a in photos
        for b in photos
        if a.identity < b.identity  # fmt: skip
    ]
    in_band = [c for c in candidates if policy.same_person_distance < c[0] <= policy.lookalike_distance]
    assert in_band, "the data set has no lookalike pair for the default preset"
    _, first, second = min(in_band, key=lambda c: abs(c[0] - middle))

    def path(key: str) -> Path:
        return next(root / key for root in roots if (root / key).is_file())

    def enrol(member_id: str, key: str, **confirm: bool) -> Any:
        capture = upload(env, path(key))
        body = {"member_id": member_id, "name": member_id, "consent_face": True, **confirm}
        return env.client.post(
            "/api/v1/enrolments", headers=env.auth, json={**body, "capture_ids": [capture["capture_id"]]}
        )

    a, b = "m-look-a", "m-look-b"
    assert enrol(a, first.key).status_code == 201
    refused = enrol(b, second.key)
    assert refused.status_code == 422, refused.text
    problem = refused.json()["codes"][0]
    assert (problem["code"], problem["member_id"]) == ("lookalike", a), refused.json()
    assert policy.same_person_distance < problem["distance"] <= problem["limit"]
    assert problem["limit"] == round(policy.lookalike_distance, 4)
    assert env.client.get(f"/api/v1/members/{b}", headers=env.auth).status_code == 404
    assert env.client.get(f"/api/v1/members/{a}", headers=env.auth).json()["requires_pass"] is False

    confirmed = enrol(b, second.key, confirm_different_person=True)
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["findings"][0]["kind"] == "lookalike"
    assert sorted(confirmed.json()["requires_pass"]) == [a, b]
    for member_id, other in ((a, b), (b, a)):
        shown = env.client.get(f"/api/v1/members/{member_id}", headers=env.auth).json()
        assert shown["requires_pass"] is True and shown["lookalikes"][0]["member_id"] == other
        assert shown["lookalikes"][0]["confirmed_by"].startswith("installer:")
    template = env.client.get(f"/api/v1/members/{b}/templates", headers=env.auth).json()[0]
    assert template["confirmed"]["different_person"] is True and template["findings"][0]["member_id"] == a
    audit = [e for e in _events(env) if e.kind == "member_enrolled" and e.member_id == b]
    assert audit and audit[-1].details["requires_pass"] == [b, a]

    # At the door, even the face each was enrolled with only gets the question.
    roster = env.station.load_roster()
    assert isinstance(roster, RosterSnapshot)
    for sample in (first, second):
        result = score(roster, [sample.encoding] * policy.min_frames, policy)
        assert result.zone == SHOW_PASS and REQUIRES_PASS in result.failed
    for member_id in (a, b):
        env.client.delete(f"/api/v1/members/{member_id}", headers=env.auth)


def _events(env: ApiEnv) -> list[Any]:
    with env.station.sessions() as session:
        return list(event_store.list_events(session))


def test_a_photo_without_a_face_is_refused_with_its_reason(env: ApiEnv, fixtures: Path) -> None:
    cat = upload(env, fixtures / "cat.png")
    assert cat["check"]["ok"] is False and cat["check"]["code"] == "no_face"
    refused = env.client.post(
        "/api/v1/enrolments",
        headers=env.auth,
        json={"member_id": "m-cat", "name": "Cat", "consent_face": True, "capture_ids": [cat["capture_id"]]},
    )
    assert refused.status_code == 422 and refused.json()["codes"][0]["code"] == "no_face"
    assert env.client.get("/api/v1/members/m-cat", headers=env.auth).status_code == 404


def test_enrolment_needs_consent_and_known_captures(env: ApiEnv, fixtures: Path) -> None:
    photo = upload(env, fixtures / "eileen_collins.png")
    base = {"member_id": "m-eileen", "name": "Eileen", "capture_ids": [photo["capture_id"]]}
    no_consent = env.client.post("/api/v1/enrolments", headers=env.auth, json={**base, "consent_face": False})
    assert no_consent.status_code == 422 and no_consent.json()["code"] == "consent_required"
    unknown = env.client.post(
        "/api/v1/enrolments", headers=env.auth, json={**base, "consent_face": True, "capture_ids": ["Z" * 22]}
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "capture_not_found"
    assert env.client.get("/api/v1/members/m-eileen", headers=env.auth).status_code == 404
    listed = env.client.get("/api/v1/captures", headers=env.auth).json()
    assert photo["capture_id"] in [c["capture_id"] for c in listed]
    assert env.client.delete(f"/api/v1/captures/{photo['capture_id']}", headers=env.auth).status_code == 204
    assert env.client.delete(f"/api/v1/captures/{photo['capture_id']}", headers=env.auth).status_code == 404


def test_enrol_from_the_live_camera_then_the_door_lets_them_in(env: ApiEnv) -> None:
    """Capture the person standing at the (video) camera, enrol, and watch the door admit them;
    then deleting them removes their templates and the snapshots of their events."""
    wait_for(lambda: env.client.get("/api/v1/camera/analysis", headers=env.auth).json()["hint"] == "ok", 20)
    capture = wait_for(lambda: _good_capture(env), 20)
    enrolled = env.client.post(
        "/api/v1/enrolments",
        headers=env.auth,
        json={"member_id": "m-camera", "name": "王芳", "kind": "sanitation", "consent_face": True,
              "capture_ids": [capture["capture_id"]]},
    )  # fmt: skip
    assert enrolled.status_code == 201, enrolled.text

    def entry() -> Any:
        with env.station.sessions() as session:
            found = event_store.list_events(session, kind="entry", member_id="m-camera")
            return found[0] if found and found[0].snapshot else None

    event = wait_for(entry, 30)
    snapshot = env.client.get(f"/api/v1/events/{event.id}/snapshot", headers=env.auth)
    assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
    face = env.client.get(f"/api/v1/events/{event.id}/snapshot?variant=face", headers=env.auth)
    assert face.status_code == 200
    store = env.daemon.snapshots.store if env.daemon.snapshots else None
    assert store is not None
    on_disk = store.resolve(event.snapshot)
    assert on_disk.is_file()

    removed = env.client.delete("/api/v1/members/m-camera", headers=env.auth).json()
    assert removed["snapshots_deleted"] >= 1 and not on_disk.exists()
    assert env.client.get(f"/api/v1/events/{event.id}/snapshot", headers=env.auth).status_code == 404
    assert env.client.get(f"/api/v1/events/{event.id}", headers=env.auth).status_code == 200  # the log stays
    with env.station.sessions() as session:
        from models import members as member_store

        assert member_store.template_count(session, "m-camera") == 0


def _good_capture(env: ApiEnv) -> dict[str, Any] | None:
    response = env.client.post("/api/v1/captures", headers=env.auth)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    if data["check"]["ok"]:
        return data
    env.client.delete(f"/api/v1/captures/{data['capture_id']}", headers=env.auth)
    return None


# -- events ------------------------------------------------------------------------------------------


def test_events_filter_and_page(env: ApiEnv) -> None:
    for i in range(3):
        env.daemon.recorder.record(kind="paging_test", member_id="m-pager", details={"i": i})  # type: ignore[union-attr]
    first = env.client.get(
        "/api/v1/events", headers=env.auth, params={"kind": "paging_test", "limit": 2}
    ).json()
    assert [e["details"]["i"] for e in first["items"]] == [2, 1] and first["next_offset"] == 2
    rest = env.client.get(
        "/api/v1/events", headers=env.auth, params={"kind": "paging_test", "limit": 2, "offset": 2}
    ).json()
    assert [e["details"]["i"] for e in rest["items"]] == [0] and rest["next_offset"] is None
    oldest = env.client.get(
        "/api/v1/events", headers=env.auth, params={"member_id": "m-pager", "order": "asc", "limit": 1}
    ).json()
    assert oldest["items"][0]["details"]["i"] == 0
    ts = first["items"][0]["ts"]
    since = env.client.get(
        "/api/v1/events", headers=env.auth, params={"kind": "paging_test", "since": ts}
    ).json()
    until = env.client.get(
        "/api/v1/events", headers=env.auth, params={"kind": "paging_test", "until": ts}
    ).json()
    assert len(since["items"]) == 1 and len(until["items"]) == 2
    naive = env.client.get("/api/v1/events", headers=env.auth, params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "since" in naive.json()["detail"]
    assert (
        env.client.get("/api/v1/events", headers=env.auth, params={"offset": 9990, "limit": 50}).status_code
        == 422
    )


def test_snapshots_of_refusals_are_served_as_jpeg(env: ApiEnv) -> None:
    def refused_with_snapshot() -> Any:
        page = env.client.get("/api/v1/events", headers=env.auth, params={"kind": "refused"}).json()
        return next((e for e in page["items"] if e["snapshot_url"]), None)

    event = wait_for(refused_with_snapshot, 20)
    image = wait_for(lambda: _ok(env.client.get(event["snapshot_url"], headers=env.auth)), 10)
    assert image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (640, 480)
    missing = env.client.get(f"/api/v1/events/{'0' * 8}-0000-4000-8000-{'0' * 12}/snapshot", headers=env.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "event_not_found"


def _ok(response: Any) -> Any:
    return response if response.status_code == 200 else None


# -- camera ------------------------------------------------------------------------------------------


def test_preview_is_mjpeg_and_bounded_in_viewers(env: ApiEnv) -> None:
    response = env.client.get("/api/v1/camera/preview.mjpg", headers=env.auth, params={"max_frames": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=yizhanframe")
    parts = [p for p in response.content.split(b"--yizhanframe\r\n") if p]
    assert len(parts) == 2
    head, _, jpeg = parts[0].partition(b"\r\n\r\n")
    assert b"Content-Type: image/jpeg" in head and jpeg[:2] == b"\xff\xd8"
    ctx = env.app.state.ctx
    assert ctx.previews == 0  # the slot came back when the stream ended
    assert ctx.try_open_preview() and ctx.try_open_preview()
    try:
        busy = env.client.get("/api/v1/camera/preview.mjpg", headers=env.auth, params={"max_frames": 1})
        assert busy.status_code == 503 and busy.json()["code"] == "too_many_previews"
    finally:
        ctx.close_preview()
        ctx.close_preview()


def test_analysis_gives_a_box_and_a_hint(env: ApiEnv) -> None:
    result = wait_for(
        lambda: _with_face(env.client.get("/api/v1/camera/analysis", headers=env.auth).json()), 20
    )
    assert result["hint"] in HINTS and result["width"] == 640 and result["height"] == 480
    box = result["faces"][0]["box"]
    assert 0 <= box["left"] < box["right"] <= 640 and 0 <= box["top"] < box["bottom"] <= 480
    frame = env.client.get("/api/v1/camera/frame.jpg", headers=env.auth)
    assert frame.status_code == 200 and np.asarray(Image.open(io.BytesIO(frame.content))).shape == (
        480,
        640,
        3,
    )


def _with_face(result: dict[str, Any]) -> dict[str, Any] | None:
    return result if result["faces"] else None


# -- door, schedule, health, metrics -----------------------------------------------------------------


def test_door_test_opening_is_recorded_and_pulses_the_relay(env: ApiEnv) -> None:
    relay = env.factory.pin(RELAY_PIN)
    relay.clear_states()
    response = env.client.post(
        "/api/v1/door/open", headers=env.auth, json={"seconds": 0.5, "note": "door test"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["granted"] is True and body["seconds"] == 0.5
    assert body["event"]["method"] == "remote" and body["event"]["details"]["by"] == "installer:installer"
    assert any(s.state for s in relay.states)  # energised
    wait_for(lambda: env.client.get("/api/v1/door", headers=env.auth).json()["relay"] == "locked", 5)
    assert env.client.post("/api/v1/door/open", headers=env.auth, json={"seconds": 300}).status_code == 422
    assert env.client.post("/api/v1/door/open", headers=env.auth).status_code == 200  # default unlock_s


def test_schedule_is_read_replaced_and_validated(env: ApiEnv) -> None:
    current = env.client.get("/api/v1/schedule", headers=env.auth).json()
    assert current["schedule"]["always_open"] is True and current["from_config"] is True
    weekly = {"mon": ["06:00-22:00"], "tue": "24h"}
    replaced = env.client.put(
        "/api/v1/schedule",
        headers=env.auth,
        json={"always_open": False, "timezone": "Asia/Shanghai", "weekly": weekly},
    )
    assert replaced.status_code == 200 and replaced.json()["from_config"] is False
    assert env.client.get("/api/v1/schedule", headers=env.auth).json()["schedule"]["weekly"]["mon"] == [
        "06:00-22:00"
    ]
    bad = env.client.put(
        "/api/v1/schedule", headers=env.auth, json={"always_open": False, "weekly": {"mon": "25:00-26:00"}}
    )
    assert bad.status_code == 422 and "weekly" in bad.json()["detail"]
    unknown_zone = env.client.put("/api/v1/schedule", headers=env.auth, json={"timezone": "Mars/Olympus"})
    assert unknown_zone.status_code == 422
    assert env.client.put("/api/v1/schedule", headers=env.auth, json={"always_open": True}).status_code == 200


def test_health_and_metrics_report_the_station(env: ApiEnv) -> None:
    health = env.client.get("/api/v1/health", headers=env.auth).json()
    assert health["status"] == "ok" and health["camera"]["state"] == "up" and health["camera"]["fps"] > 0
    assert health["mqtt"] == {"enabled": False, "connected": None} and isinstance(health["outbox_depth"], int)
    wait_for(lambda: env.daemon.loop is not None and env.daemon.loop.stats.decisions > 0, 20)
    text = env.client.get("/metrics", headers=env.auth).text
    for name in (
        "yizhan_decisions_total{",
        "yizhan_stage_latency_seconds_bucket{",
        "yizhan_outbox_depth ",
        "yizhan_camera_fps ",
        "yizhan_mqtt_connected 0.0",
        "yizhan_loop_frames_total ",
        "yizhan_api_request_duration_seconds_bucket{",
    ):
        assert name in text, name
    assert 'stage="encode"' in text and 'kind="refused"' in text
    started = time.perf_counter()
    for _ in range(20):
        env.client.get("/api/v1/members", headers=env.auth)
    assert (time.perf_counter() - started) / 20 < 0.2  # far below a human's patience on a Pi


def test_a_member_write_that_sqlite_refuses_is_retried(env: ApiEnv) -> None:
    """Why `edge.api.retry` exists: a deferred read-then-write transaction cannot become the writer
    once another connection committed after its read (WAL), and SQLite says so at once."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from edge.api.retry import retry_locked
    from models import members as member_store

    recorder = env.daemon.recorder
    assert recorder is not None
    with env.station.sessions() as session, session.begin():
        member_store.get_member(session, "m-race")  # the read snapshot starts here
        recorder.record(kind="race_test")  # another connection commits
        with pytest.raises(OperationalError, match="database is locked"):
            member_store.add_member(session, member_id="m-race", name="Race")

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return "stored"

    assert retry_locked(flaky, what="test") == "stored" and len(calls) == 3

    def broken() -> str:
        calls.append(1)
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))

    calls.clear()
    with pytest.raises(OperationalError, match="disk I/O error"):
        retry_locked(broken, what="test")
    assert len(calls) == 1  # other database errors are not retried
