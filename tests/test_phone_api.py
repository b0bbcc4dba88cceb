"""The phone API on SQLite and PostgreSQL: registering with an SMS code from a real local gateway,
staff approval, logging in on a new phone, opening (every check the centre makes), the pass, my
data, and hostile input: forged sessions, CSRF, replayed open requests, SMS-code brute force,
registration floods, another member's ids."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from central_fixtures import CentralDb
from fastapi.testclient import TestClient
from phone_support import PHONE, Env, Phone, answer, phone_env
from sqlalchemy import select

from central.config import CentralConfig
from central.store import signing_keys
from central.store.events import store_event
from central.store.tables import AuditEntry, Command, Erasure, Member, PhoneCode, PhoneLogin, Station
from contract.topics import StationTopics
from recognizer.qr_token import public_key_map, verify_token


@pytest.fixture
def env(
    central_db: CentralDb, central_config: CentralConfig, request: pytest.FixtureRequest
) -> Iterator[Env]:
    with phone_env(central_db, central_config, getattr(request, "param", {})) as built:
        yield built


# -- registering -----------------------------------------------------------------------------------


def test_register_with_an_sms_code_in_an_auto_district(env: Env) -> None:
    phone = env.phone()
    started = phone.post(
        "/api/m/register",
        {
            "station_id": "hd-1",
            "name": "张三",
            "phone": "+86 138-0013-8000",
            "kind": "rider",
            "employer": "美团",
            "consent_face": True,
            "agree": True,
        },
    )
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "code_sent" and started.json()["phone_masked"] == "138****8000"
    message = env.sms.last(PHONE)
    assert message.body["purpose"] == "register" and message.body["minutes"] == 5
    assert message.headers["Content-Type"].startswith("application/json")
    registration = started.json()["registration_id"]
    with env.db.sessions() as session:  # only a MAC of the code is stored
        row = session.scalars(select(PhoneCode)).one()
        assert message.code not in row.code_mac and len(row.code_mac) == 64
        assert session.scalars(select(Member)).all() == []  # no member before the number is confirmed

    wrong = phone.post(
        f"/api/m/register/{registration}/verify", {"code": "000000" if message.code != "000000" else "111111"}
    )
    assert (
        wrong.status_code == 401
        and wrong.json()["code"] == "wrong_code"
        and wrong.json()["attempts_left"] == 4
    )
    result = phone.logged_in(phone.post(f"/api/m/register/{registration}/verify", {"code": message.code}))
    assert result["status"] == "active"
    member = env.member(result["member_id"])
    assert (member.name, member.phone, member.kind, member.employer, member.source) == (
        "张三",
        PHONE,
        "rider",
        "美团",
        "phone",
    )
    assert member.consent_face and not member.consent_cross_station and member.home_station_id == "hd-1"
    assert env.fleet.changed == [result["member_id"]]  # active: the roster was told
    me = phone.get("/api/m/me").json()
    assert me["status"] == "active" and me["phone_masked"] == "138****8000" and me["consents"]["face"] is True
    # the same code cannot be used twice
    again = phone.post(f"/api/m/register/{registration}/verify", {"code": message.code})
    assert again.status_code == 404


def test_registration_in_a_staff_district_waits_for_approval(env: Env) -> None:
    phone = env.phone()
    result = env.register(phone, station="cy-1")
    assert result["status"] == "pending" and env.fleet.changed == []
    view = phone.get("/api/m/stations/cy-1").json()
    assert (
        view["member_status"] == "pending"
        and view["may_open"] is False
        and view["why_not"] == "member_pending"
    )
    assert phone.get("/api/m/pass").status_code == 403

    hd_staff, cy_staff = env.staff("hd.staff"), env.staff("cy.staff")
    client = TestClient(env.app, base_url="https://testserver")
    assert client.get("/api/v1/registrations", headers=hd_staff).json() == []  # another district's
    queue = client.get("/api/v1/registrations", headers=cy_staff).json()
    assert [(r["name"], r["phone"], r["verified_phone"]) for r in queue] == [("张三", PHONE, True)]
    rid = queue[0]["registration_id"]
    assert client.post(f"/api/v1/registrations/{rid}/approve", json={}, headers=hd_staff).status_code == 404
    assert (
        client.post(f"/api/v1/registrations/{rid}/approve", json={}, headers=env.staff("viewer")).status_code
        == 403
    )
    approved = client.post(
        f"/api/v1/registrations/{rid}/approve", json={"note": "已电话核实"}, headers=cy_staff
    )
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert env.fleet.changed == [result["member_id"]] and env.member(result["member_id"]).status == "active"
    assert client.post(f"/api/v1/registrations/{rid}/approve", json={}, headers=cy_staff).status_code == 409


@pytest.mark.parametrize("env", [{"no_sms": True}], indirect=True)
def test_without_a_gateway_the_member_waits_for_staff_and_can_be_rejected(env: Env) -> None:
    phone = env.phone()
    env.register(phone, station="hd-1")  # an auto district: still staff, nobody confirmed the number
    me = phone.get("/api/m/me").json()
    assert me["status"] == "pending" and env.sms.messages == []
    assert phone.post("/api/m/login/code", {"phone": PHONE}).json()["code"] == "sms_unavailable"
    client = TestClient(env.app, base_url="https://testserver")
    admin = env.staff()
    queue = client.get("/api/v1/registrations", headers=admin).json()
    assert len(queue) == 1 and queue[0]["verified_phone"] is False
    rejected = client.post(
        f"/api/v1/registrations/{queue[0]['registration_id']}/reject",
        json={"note": "不是本区工作人员"},
        headers=admin,
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert rejected.json()["phone"] is None and rejected.json()["member_id"] is None
    with env.db.sessions() as session:
        assert session.scalars(select(Member)).all() == [] and session.scalars(select(PhoneLogin)).all() == []
    assert phone.get("/api/m/me").status_code == 401  # the login went with the member


def test_a_district_chooses_its_approval_rule(env: Env) -> None:
    client = TestClient(env.app, base_url="https://testserver")
    cy = env.staff("cy.staff")
    assert client.get("/api/v1/districts/chaoyang/registration", headers=cy).json() == {"approval": "staff"}
    assert (
        client.put(
            "/api/v1/districts/haidian/registration", json={"approval": "staff"}, headers=cy
        ).status_code
        == 404
    )
    assert (
        client.put(
            "/api/v1/districts/chaoyang/registration", json={"approval": "auto"}, headers=cy
        ).status_code
        == 200
    )
    result = env.register(env.phone(), station="cy-1")
    assert result["status"] == "active"


def test_a_registered_number_logs_in_on_a_new_phone(env: Env) -> None:
    first = env.phone()
    member_id = env.register(first)["member_id"]
    assert (
        first.post(
            "/api/m/register",
            {"station_id": "hd-1", "name": "李四", "phone": PHONE, "kind": "other", "agree": True},
        ).json()["code"]
        == "phone_registered"
    )
    second = env.phone()
    assert second.post("/api/m/login/code", {"phone": "13900000000"}).json()["code"] == "phone_unknown"
    sent = second.post("/api/m/login/code", {"phone": PHONE})
    assert sent.status_code == 202 and env.sms.last(PHONE).body["purpose"] == "login"
    logged = second.logged_in(
        second.post("/api/m/login/verify", {"phone": PHONE, "code": env.sms.code_for(PHONE)})
    )
    assert logged["member_id"] == member_id
    assert second.get("/api/m/me").json()["logins"] == 2
    # "my phone was stolen": log out everywhere from the new phone; the old one is out
    assert second.post("/api/m/logout", {"everywhere": True}).status_code == 204
    assert first.get("/api/m/me").status_code == 401 and second.get("/api/m/me").status_code == 401


def test_a_gateway_that_refuses_voids_the_code(env: Env) -> None:
    env.sms.fail_with = 500
    response = env.phone().post(
        "/api/m/register",
        {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True},
    )
    assert response.status_code == 503 and response.json()["code"] == "sms_failed"
    with env.db.sessions() as session:
        assert session.scalars(select(PhoneCode)).one().used_at is not None


# -- hostile input: codes, floods, sessions ---------------------------------------------------------


def test_sms_code_brute_force_is_locked_out(env: Env) -> None:
    phone = env.phone()
    started = phone.post(
        "/api/m/register",
        {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True},
    ).json()
    rid, code = started["registration_id"], env.sms.code_for(PHONE)
    guesses = [f"{n:06d}" for n in range(1000) if f"{n:06d}" != code]
    for guess in guesses[:5]:  # [sms] max_attempts = 5
        assert phone.post(f"/api/m/register/{rid}/verify", {"code": guess}).json()["code"] == "wrong_code"
    # the code is void now: even the right one is refused
    assert phone.post(f"/api/m/register/{rid}/verify", {"code": code}).json()["code"] == "code_expired"
    # new codes, more guesses: after 10 wrong guesses in an hour the number is locked
    assert phone.post(f"/api/m/register/{rid}/resend").status_code == 202
    code = env.sms.code_for(PHONE)
    for guess in [g for g in guesses if g != code][5:10]:
        phone.post(f"/api/m/register/{rid}/verify", {"code": guess})
    locked = phone.post(f"/api/m/register/{rid}/verify", {"code": code})
    assert (
        locked.status_code == 429
        and locked.json()["code"] == "locked_out"
        and "Retry-After" in locked.headers
    )
    assert phone.post(f"/api/m/register/{rid}/resend").json()["code"] == "locked_out"
    env.clock.advance(3601)  # an hour later the number may try again
    assert phone.post(f"/api/m/register/{rid}/resend").status_code == 202


def test_registration_floods_are_rate_limited(env: Env) -> None:
    phone = env.phone()
    for n in range(5):  # [phone] registrations_per_address_per_hour = 5
        body = {
            "station_id": "hd-1",
            "name": f"人{n}",
            "phone": f"1380013800{n}",
            "kind": "other",
            "agree": True,
        }
        assert phone.post("/api/m/register", body).status_code == 202
    flood = phone.post(
        "/api/m/register",
        {"station_id": "hd-1", "name": "x", "phone": "13800138009", "kind": "other", "agree": True},
    )
    assert flood.status_code == 429 and flood.json()["code"] == "rate_limited"
    assert len(env.sms.messages) == 5  # the refused one sent nothing


def test_codes_to_one_number_are_capped(env: Env) -> None:
    phone = env.phone()
    rid = phone.post(
        "/api/m/register",
        {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True},
    ).json()["registration_id"]
    for _ in range(4):
        assert phone.post(f"/api/m/register/{rid}/resend").status_code == 202
    capped = phone.post(f"/api/m/register/{rid}/resend")
    assert (
        capped.status_code == 429 and capped.json()["code"] == "rate_limited" and len(env.sms.messages) == 5
    )


def test_forged_and_foreign_sessions_are_refused(env: Env) -> None:
    phone = env.phone()
    env.register(phone)
    token = phone.client.cookies.get("yizhan_phone")
    client = TestClient(env.app, base_url="https://testserver")
    for cookie in ("forged", "x" * 43, "", "a" * 5000, token[:-1] + ("A" if token[-1] != "A" else "B")):
        client.cookies.set("yizhan_phone", cookie)
        assert client.get("/api/m/me").status_code == 401, cookie[:20]
    # a staff login is no phone login, and a phone login is no staff login
    staff_token = env.staff()["Authorization"].split()[1]
    client.cookies.set("yizhan_phone", staff_token)
    assert client.get("/api/m/me").status_code == 401
    client.cookies.clear()
    assert client.get("/api/v1/stations", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    client.cookies.set("yizhan_staff", token)
    assert client.get("/api/v1/stations").status_code == 401
    # a logged-out login stays dead
    assert phone.post("/api/m/logout").status_code == 204
    client.cookies.clear()
    client.cookies.set("yizhan_phone", token)
    assert client.get("/api/m/me").status_code == 401


def test_csrf_is_required_and_bound_to_the_login(env: Env) -> None:
    phone = env.phone()
    member_id = env.register(phone)["member_id"]
    anon_csrf = phone.client.cookies.get("yizhan_m_csrf")
    body = {"request_id": "0a8f6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": anon_csrf}):
        response = phone.client.post("/api/m/stations/hd-1/open", json=body, headers=headers)
        assert response.status_code == 403 and response.json()["code"] == "csrf", headers
    cross = phone.post("/api/m/stations/hd-1/open", body, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    # anonymous actions without the double-submit token are refused as well
    fresh = TestClient(env.app, base_url="https://testserver")
    assert fresh.post("/api/m/login/code", json={"phone": PHONE}).status_code == 403
    assert env.fleet.opens == []
    assert phone.post("/api/m/stations/hd-1/open", body).status_code == 202
    assert env.fleet.opens[0]["member_id"] == member_id


def test_another_members_ids_lead_nowhere(env: Env) -> None:
    alice, bob = env.phone(), env.phone()
    env.register(alice, number="13800138001")
    bob_id = env.register(bob, number="13800138002")["member_id"]
    rid = "5b2f6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    assert bob.post("/api/m/stations/hd-1/open", {"request_id": rid}).status_code == 202
    assert alice.get(f"/api/m/opens/{rid}").status_code == 404  # Bob's request is not Alice's
    smuggled = alice.post("/api/m/stations/hd-1/open", {"request_id": rid, "member_id": bob_id})
    assert smuggled.status_code == 422  # no field names a member
    assert alice.post("/api/m/consents", {"member_id": bob_id, "consent_face": True}).status_code == 422
    assert [o["member_id"] for o in env.fleet.opens] == [bob_id]
    # the same request id from Alice is hers, not a replay of Bob's
    assert alice.post("/api/m/stations/hd-1/open", {"request_id": rid}).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {"station_id": "hd-1", "name": "张三", "phone": "12345", "kind": "courier", "agree": True},
        {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "astronaut", "agree": True},
        {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "courier", "agree": False},
        {"station_id": "hd-1", "name": "张\u202e三", "phone": PHONE, "kind": "courier", "agree": True},
        {"station_id": "hd-1", "name": "x" * 51, "phone": PHONE, "kind": "courier", "agree": True},
        {"station_id": "../etc", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True},
        {"station_id": "nope", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True},
        {
            "station_id": "hd-1",
            "name": "张三",
            "phone": PHONE,
            "kind": "courier",
            "agree": True,
            "consent_cross_station": True,
        },
        {
            "station_id": "hd-1",
            "name": "张三",
            "phone": PHONE,
            "kind": "courier",
            "agree": True,
            "status": "active",
        },
    ],
)
def test_hostile_registrations_are_refused_without_a_trace(env: Env, body: dict[str, Any]) -> None:
    response = env.phone().post("/api/m/register", body)
    assert response.status_code in (404, 422), response.text
    assert env.sms.messages == []
    with env.db.sessions() as session:
        assert session.scalars(select(Member)).all() == []


# -- opening ---------------------------------------------------------------------------------------


def _open(phone: Phone, station: str = "hd-1", **body: Any) -> Any:
    import uuid

    return phone.post(f"/api/m/stations/{station}/open", {"request_id": str(uuid.uuid4()), **body})


def test_open_sends_a_signed_command_and_replays_are_refused(env: Env) -> None:
    phone = env.phone()
    member_id = env.register(phone)["member_id"]
    rid = "3c9e6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    sent = phone.post("/api/m/stations/hd-1/open", {"request_id": rid})
    assert sent.status_code == 202 and sent.json()["state"] == "sent"
    [opened] = env.fleet.opens
    assert opened["command_id"].startswith("c-") and opened == {
        "command_id": opened["command_id"],
        "station_id": "hd-1",
        "member_id": member_id,
        "by": f"phone:{member_id}",
        "ttl_s": 15,
    }
    # central.commands.send_command recorded, audited and published it, signed, for this station only
    with env.db.sessions() as session:
        command = session.get(Command, opened["command_id"])
        assert command is not None and command.name == "open" and command.issued_by == f"phone:{member_id}"
        assert command.params["member_id"] == member_id and command.state == "sent"
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "remote_open")).all()
        assert entry.actor == f"phone:{member_id}" and entry.target_id == "hd-1"
    [(topic, payload)] = env.ctx.down.published  # type: ignore[union-attr]
    assert topic == StationTopics("hd-1").command
    signed = json.loads(payload)
    assert signed["name"] == "open" and signed["member_id"] == member_id and "sig" in signed
    env.clock.advance(60)
    replay = phone.post("/api/m/stations/hd-1/open", {"request_id": rid})
    assert replay.status_code == 409 and replay.json()["code"] == "replayed" and len(env.fleet.opens) == 1


def test_the_door_answers(env: Env) -> None:
    phone = env.phone()
    env.register(phone)
    rid = "7d1e6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    assert phone.post("/api/m/stations/hd-1/open", {"request_id": rid}).status_code == 202
    assert phone.get(f"/api/m/opens/{rid}").json()["state"] == "sent"
    answer(env, env.fleet.opens[0]["command_id"], ok=True)  # as ingest handles the station's up/result
    assert phone.get(f"/api/m/opens/{rid}?wait=2").json()["state"] == "opened"

    env.clock.advance(30)
    rid2 = "8e2e6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    phone.post("/api/m/stations/hd-1/open", {"request_id": rid2})
    answer(env, env.fleet.opens[1]["command_id"], ok=False, error="refused", message="door_fault")
    refused = phone.get(f"/api/m/opens/{rid2}?wait=1").json()
    assert (refused["state"], refused["reason"], refused["message"]) == ("refused", "refused", "door_fault")

    env.clock.advance(30)
    rid3 = "9f3e6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    phone.post("/api/m/stations/hd-1/open", {"request_id": rid3})
    env.clock.advance(5)  # past [phone] answer_timeout_s (4 s) and nobody answered
    assert phone.get(f"/api/m/opens/{rid3}?wait=1").json()["state"] == "no_answer"


def test_a_door_the_centre_cannot_reach_shows_the_pass_at_once(env: Env) -> None:
    """The broker does not take the command (central.commands marks it `broker_unreachable`):
    the page is told at once that no answer will come, not that the door refused."""
    phone = env.phone()
    env.register(phone)
    env.ctx.down.connected = False  # type: ignore[union-attr]
    rid = "5a1e6c1e-0d0b-4c8e-a4d5-8a3e2b1c0d9f"
    assert phone.post("/api/m/stations/hd-1/open", {"request_id": rid}).status_code == 202
    state = phone.get(f"/api/m/opens/{rid}?wait=1").json()
    assert (state["state"], state["reason"]) == ("no_answer", "broker_unreachable")
    assert env.ctx.down.published == []  # type: ignore[union-attr]


def test_every_check_before_the_door_is_asked(env: Env) -> None:
    phone = env.phone()
    member_id = env.register(phone)["member_id"]

    def reason(station: str = "hd-1", **body: Any) -> str | None:
        response = _open(phone, station, **body)
        assert response.status_code == 202, response.text
        return response.json()["reason"] if response.json()["state"] != "sent" else "sent"

    assert reason("hd-2") == "station_closed"  # open 20:00-22:00 only, it is noon
    assert reason("cy-1") == "not_allowed_here"  # sanitation only
    assert reason("hd-3") == "location_required"
    assert reason("hd-3", location={"lat": 39.98, "lon": 116.31}) == "too_far"
    assert reason("hd-3", location={"lat": 39.9005, "lon": 116.4005, "accuracy_m": 20}) == "sent"
    assert reason("hd-1") == "sent"
    assert reason("hd-1") == "cooldown"
    env.clock.advance(11)
    with env.db.sessions.begin() as session:
        session.get(Station, "hd-1").last_state = "offline"  # type: ignore[union-attr]
    offline = _open(phone, "hd-1").json()
    assert offline["state"] == "offline" and offline["reason"] == "station_offline"
    with env.db.sessions.begin() as session:
        member = session.get(Member, member_id)
        assert member is not None
        member.valid_until = env.clock() - dt.timedelta(seconds=1)
    assert reason("hd-1") == "member_expired"
    with env.db.sessions.begin() as session:
        member = session.get(Member, member_id)
        assert member is not None
        member.valid_until, member.status = None, "suspended"
    assert reason("hd-1") == "member_suspended"
    assert len(env.fleet.opens) == 2  # only the two allowed ones reached a door


def test_open_rate_limits(env: Env) -> None:
    phone = env.phone()
    env.register(phone)
    for _ in range(10):  # opens_per_member_per_10min = 10 (refusals count: they are attempts)
        assert _open(phone, "hd-2").status_code == 202
        env.clock.advance(1)
    limited = _open(phone, "hd-1")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    env.clock.advance(600)
    assert _open(phone, "hd-1").json()["state"] == "sent"


# -- the pass, my data -----------------------------------------------------------------------------


def test_the_pass_is_a_short_lived_token_signed_with_the_active_qr_key(env: Env) -> None:
    phone = env.phone()
    member_id = env.register(phone)["member_id"]
    issued = phone.get("/api/m/pass").json()
    assert issued["svg"].startswith("data:image/svg+xml") and issued["refresh_s"] == 60
    with env.db.sessions() as session:
        keys = public_key_map(
            k.public_key for k in signing_keys.trusted_keys(session, purpose="qr", now=env.clock())
        )
    now = int(env.clock().timestamp())
    claims = verify_token(issued["token"], keys, now=now, max_clock_skew_s=0)
    assert claims.member_id == member_id and claims.expires_at - claims.issued_at == 180
    with pytest.raises(ValueError, match="expired"):
        verify_token(issued["token"], keys, now=now + 181, max_clock_skew_s=0)
    env.clock.advance(60)
    assert phone.get("/api/m/pass").json()["token"] != issued["token"]  # renewed every minute


def test_my_visits_consents_and_face_deletion(env: Env) -> None:
    phone, other = env.phone(), env.phone()
    member_id = env.register(phone, consent_face=True, consent_cross_station=True)["member_id"]
    other_id = env.register(other, number="13900139000")["member_id"]
    with env.db.sessions.begin() as session:
        for n, who in enumerate((member_id, other_id, member_id)):
            store_event(
                session,
                id=f"00000000-0000-4000-8000-00000000000{n}",
                ts=env.clock() + dt.timedelta(minutes=n),
                station_id="hd-1",
                kind="entry",
                method="face",
                member_id=who,
            )
    visits = phone.get("/api/m/visits").json()
    assert [(v["station_name"], v["kind"]) for v in visits] == [("海淀一号", "entry")] * 2

    changed = phone.post("/api/m/consents", {"consent_cross_station": False}).json()
    assert changed["consents"]["face"] is True and changed["consents"]["cross_station"] is False
    assert env.fleet.withdrawn == [(member_id, f"phone:{member_id}", False, True)]
    assert phone.get("/api/m/face/deletion").json()["state"] == "none"
    deleting = phone.post("/api/m/face/delete", {"confirm": True})
    assert deleting.status_code == 202 and env.fleet.withdrawn[-1] == (
        member_id,
        f"phone:{member_id}",
        True,
        False,
    )
    assert deleting.json()["state"] == "done"  # the recording fleet deleted nothing: nothing to wait for
    assert env.member(member_id).consent_face is False
    assert phone.post("/api/m/face/delete", {"confirm": False}).status_code == 422
    # the erasure path records progress; the page reads it
    with env.db.sessions.begin() as session:
        session.add(
            Erasure(
                member_id=member_id,
                requested_by=f"phone:{member_id}",
                reason="consent_withdrawn",
                stations_pending=["hd-1", "hd-3"],
                requested_at=env.clock(),
            )
        )
    assert phone.get("/api/m/face/deletion").json() == {
        "state": "pending",
        "requested_at": env.clock().isoformat().replace("+00:00", "Z"),
        "completed_at": None,
        "stations_pending": 2,
        "templates_deleted": 0,
    }


# -- the public directory and the poster --------------------------------------------------------------


def test_the_directory_sorts_by_distance_and_links_the_map_apps(env: Env) -> None:
    client = TestClient(env.app, base_url="https://testserver")
    plain = client.get("/api/public/stations").json()
    assert [s["station_id"] for s in plain] == ["cy-1", "hd-1", "hd-2", "hd-3"] and plain[0][
        "distance_m"
    ] is None
    near_hd3 = client.get("/api/public/stations", params={"lat": 39.9001, "lon": 116.4001}).json()
    assert [s["station_id"] for s in near_hd3][:2] == ["hd-3", "hd-1"]
    assert near_hd3[0]["distance_m"] < 20 and 11_000 < near_hd3[1]["distance_m"] < 12_500
    assert near_hd3[-1]["distance_m"] is None  # stations without coordinates last
    hd1 = near_hd3[1]
    assert {"station_id", "name", "open_now"} <= set(hd1) and hd1["open_now"] is True
    assert hd1["gcj02"]["lat"] != 39.98 and set(hd1["nav"]) == {"amap", "baidu", "tencent"}
    for bad in ({"lat": 91, "lon": 0}, {"lat": "nan", "lon": 0}, {"lat": 39.9}, {"lon": 116.4, "lat": "x"}):
        assert client.get("/api/public/stations", params=bad).status_code == 422, bad


def test_the_staff_poster_route(env: Env) -> None:
    import io

    import zxingcpp
    from PIL import Image

    client = TestClient(env.app, base_url="https://testserver")
    assert client.get("/api/v1/stations/hd-1/poster.png").status_code == 401
    png = client.get("/api/v1/stations/hd-1/poster.png", headers=env.staff("hd.staff"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    texts = [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))]
    assert texts == ["https://testserver/m/s/hd-1"]
    pdf = client.get("/api/v1/stations/hd-1/poster.pdf", headers=env.staff())
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get("/api/v1/stations/cy-1/poster.png", headers=env.staff("hd.staff")).status_code == 404
    assert client.get("/api/v1/stations/hd-1/poster.svg", headers=env.staff()).status_code == 422


@pytest.mark.parametrize("env", [{"phone": {"requests_per_address_per_minute": 10}}], indirect=True)
def test_a_request_flood_from_one_address_is_cut_off_before_any_route(env: Env) -> None:
    client = TestClient(env.app, base_url="https://testserver")
    answers = [client.get("/api/m/stations/hd-1").status_code for _ in range(12)]
    assert answers[:10] == [200] * 10 and answers[10:] == [429, 429]
    flooded = client.get("/api/m/me")
    assert flooded.json()["code"] == "rate_limited" and int(flooded.headers["Retry-After"]) >= 1
    assert client.get("/api/public/stations").status_code == 200  # the brake is the phone API's own


def test_address_buckets_refill_and_stay_bounded() -> None:
    from central.phone.web.gate import AddressBuckets

    now = [0.0]
    buckets = AddressBuckets(60, max_addresses=3, clock=lambda: now[0])  # 1 per second, burst 15
    assert [buckets.take("a") for _ in range(15)] == [None] * 15
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") is None  # another address has its own bucket
    now[0] += 2.0
    assert buckets.take("a") is None and buckets.take("a") is None and buckets.take("a") is not None
    for address in ("c", "d", "e"):
        buckets.take(address)
    assert len(buckets._buckets) == 3


def test_staff_set_a_stations_location_rule(env: Env) -> None:
    client = TestClient(env.app, base_url="https://testserver")
    hd = env.staff("hd.staff")
    rule = client.put("/api/v1/stations/hd-1/phone-location", json={"within_m": 150}, headers=hd)
    assert rule.status_code == 200 and rule.json() == {"within_m": 150}
    assert (
        client.put("/api/v1/stations/cy-1/phone-location", json={"within_m": 150}, headers=hd).status_code
        == 404
    )
    assert (
        client.put("/api/v1/stations/hd-2/phone-location", json={"within_m": 150}, headers=hd).status_code
        == 422
    )
    assert (
        client.put("/api/v1/stations/hd-1/phone-location", json={"within_m": 5}, headers=hd).status_code
        == 422
    )
    viewer = env.staff("viewer")
    assert (
        client.put(
            "/api/v1/stations/hd-1/phone-location", json={"within_m": None}, headers=viewer
        ).status_code
        == 403
    )
    phone = env.phone()
    env.register(phone)
    assert _open(phone, "hd-1").json()["reason"] == "location_required"
    assert (
        client.put("/api/v1/stations/hd-1/phone-location", json={"within_m": None}, headers=hd).status_code
        == 200
    )
    assert _open(phone, "hd-1").json()["state"] == "sent"


def test_old_opening_requests_are_forgotten(env: Env) -> None:
    phone = env.phone()
    env.register(phone)
    assert _open(phone, "hd-1").json()["state"] == "sent"  # the first request of a process also purges
    env.clock.advance(91 * 86_400)
    env.app.state.phone.opener._requests = 0  # the next request purges again
    assert _open(phone, "hd-2").json()["state"] == "denied"
    with env.db.sessions() as session:
        from central.store.tables import PhoneOpen

        assert [o.station_id for o in session.scalars(select(PhoneOpen))] == ["hd-2"]


def test_two_registrations_for_one_number_make_one_member(env: Env) -> None:
    first, second = env.phone(), env.phone()
    body = {"station_id": "hd-1", "name": "张三", "phone": PHONE, "kind": "courier", "agree": True}
    one = first.post("/api/m/register", body).json()["registration_id"]
    one_code = env.sms.code_for(PHONE)
    two = second.post("/api/m/register", body).json()["registration_id"]
    two_code = env.sms.code_for(PHONE)
    assert first.post(f"/api/m/register/{one}/verify", {"code": one_code}).status_code == 200
    late = second.post(f"/api/m/register/{two}/verify", {"code": two_code})
    assert late.status_code == 409 and late.json()["code"] == "phone_registered"
    with env.db.sessions() as session:
        assert len(session.scalars(select(Member)).all()) == 1
