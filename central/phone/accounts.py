"""Registering from a phone, confirming the number by SMS, logging in again on a new phone, approval.

The paths (docs/PHONE.md has the pictures):

* **With an SMS gateway**: the form is kept on a `registrations` row and a code goes out; the
  right code creates the member (district `auto`: active at once; `staff`: pending until staff
  approve) and logs this phone in.
* **Without a gateway**: nobody can confirm the number, so the member is created `pending` at
  once, this phone is logged in (it shows "waiting for approval") and staff decide.
* **A new phone**: a code to the registered number logs it in (no gateway: staff must help).

Becoming `active` is when the member reaches the stations: the roster is told
(`Fleet.member_changed`) in the same transaction, and its fan-out carries the member to every
station they may enter; no installer is involved. The brakes: codes per number and per address
per hour, wrong codes per code (`max_attempts`: the code is void) and per number per hour (the
number is locked), registrations per address and overall per hour. All counted in the database.

Methods take the request's `Session` where nothing slow happens; the ones that talk to the SMS
gateway take the sessionmaker instead, so no transaction (and, on SQLite, no write lock) is held
while a gateway takes its seconds to answer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.phone.fleet import Fleet
from central.phone.sms import SmsError, SmsSender, code_mac, code_matches, new_code
from central.store import audit
from central.store import members as member_store
from central.store import phone as phone_store
from central.store import stations as station_store
from central.store.tables import District, Member, PhoneCode, Registration
from common.asgi import ApiError

log = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
PURGE_EVERY = 50


@dataclass(frozen=True, slots=True)
class RegistrationForm:
    station_id: str
    name: str
    phone: str
    kind: str
    employer: str | None
    consent_face: bool
    consent_cross_station: bool


@dataclass(frozen=True, slots=True)
class Started:
    """A registration begun: whether a code went out, or the member waits for staff already."""

    registration_id: str
    state: str
    phone_masked: str | None
    code_ttl_s: int | None
    member_id: str | None = None
    login_token: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedIn:
    member_id: str
    status: str
    login_token: str


def _too_many(detail: str, code: str, retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        detail,
        code,
        headers={"Retry-After": str(max(1, int(retry_after_s)))},
        retry_after_s=round(retry_after_s, 1),
    )


class Accounts:
    def __init__(
        self,
        config: CentralConfig,
        *,
        code_key: bytes,
        sms: SmsSender | None,
        fleet: Fleet,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.config = config
        self.sms_config = config.sms
        self.code_key = code_key
        self.sms = sms
        self.fleet = fleet
        self.clock = clock
        self._started = 0

    @property
    def has_gateway(self) -> bool:
        return self.sms is not None

    # -- registration ---------------------------------------------------------------------------

    def register(
        self, db: sessionmaker[Session], form: RegistrationForm, *, client: str, device: str | None
    ) -> Started:
        """Start a registration at a station; sends a code, or (no gateway) creates a pending member."""
        now = self.clock()
        phone = phone_store.normalise_phone(form.phone)
        with db.begin() as session:
            self._registration_brakes(session, client, now)
            station = station_store.get_station(session, station_id=form.station_id)
            if station is None or not station.active:
                raise ApiError(404, f"no station {form.station_id!r} in service", "station_not_found")
            if phone_store.member_by_phone(session, phone=phone) is not None:
                raise ApiError(
                    409, "this number is registered already: log in with a code instead", "phone_registered"
                )
            self._started += 1
            if self._started % PURGE_EVERY == 1:
                phone_store.purge_stale(session, now=now)
            details = {
                "name": form.name,
                "kind": form.kind,
                "employer": form.employer,
                "consent_face": form.consent_face,
                "consent_cross_station": form.consent_cross_station,
            }
            if self.sms is None:
                registration = phone_store.create_registration(
                    session,
                    station=station,
                    phone=phone,
                    details=details,
                    state="awaiting_staff",
                    client=client,
                    now=now,
                )
                member = self._create_member(session, registration, status="pending", now=now)
                token, _ = phone_store.create_login(
                    session,
                    member_id=member.member_id,
                    now=now,
                    ttl=self._login_ttl,
                    client=client,
                    device=device,
                )
                audit.record(
                    session,
                    actor=f"phone:{member.member_id}",
                    action="registration_started",
                    target_type="registration",
                    target_id=registration.id,
                    district_id=registration.district_id,
                    client=client,
                    details={"station_id": station.station_id, "sms": False},
                )
                return Started(
                    registration.id,
                    registration.state,
                    phone_store.mask_phone(phone),
                    None,
                    member.member_id,
                    token,
                )
            self._code_brakes(session, phone, client, now)
            registration = phone_store.create_registration(
                session,
                station=station,
                phone=phone,
                details=details,
                state="code_sent",
                client=client,
                now=now,
            )
            code = self._new_code(session, phone, "register", registration.id, client, now)
            registration_id = registration.id
        self._send(db, code, phone, "register")
        return Started(
            registration_id, "code_sent", phone_store.mask_phone(phone), self.sms_config.code_ttl_s
        )

    def resend(self, db: sessionmaker[Session], registration_id: str, *, client: str) -> Started:
        """Send a new code for a registration still waiting for one."""
        now = self.clock()
        with db.begin() as session:
            registration = self._open_registration(session, registration_id, now)
            assert registration.phone is not None
            phone = registration.phone
            self._code_brakes(session, phone, client, now)
            code = self._new_code(session, phone, "register", registration.id, client, now)
        self._send(db, code, phone, "register")
        return Started(
            registration_id, "code_sent", phone_store.mask_phone(phone), self.sms_config.code_ttl_s
        )

    def verify_registration(
        self, session: Session, registration_id: str, code: str, *, client: str, device: str | None
    ) -> LoggedIn:
        """The right code creates the member and logs this phone in."""
        now = self.clock()
        registration = self._open_registration(session, registration_id, now)
        assert registration.phone is not None
        self._check_code(session, registration.phone, "register", registration.id, code, now)
        if phone_store.member_by_phone(session, phone=registration.phone) is not None:
            registration.state = "expired"  # two registrations raced for one number: the first one won
            raise ApiError(
                409, "this number is registered already: log in with a code instead", "phone_registered"
            )
        registration.verified_at = now
        district = session.get(District, registration.district_id)
        automatic = district is not None and district.registration_approval == "auto"
        member = self._create_member(
            session, registration, status="active" if automatic else "pending", now=now
        )
        if automatic:
            registration.state = "approved"
            registration.decided_at = now
            registration.decided_by = "auto"
            self.fleet.member_changed(session, member.member_id)
        else:
            registration.state = "awaiting_staff"
        token, _ = phone_store.create_login(
            session, member_id=member.member_id, now=now, ttl=self._login_ttl, client=client, device=device
        )
        audit.record(
            session,
            actor=f"phone:{member.member_id}",
            action="registration_verified",
            target_type="registration",
            target_id=registration.id,
            district_id=registration.district_id,
            client=client,
            details={"station_id": registration.station_id, "approval": "auto" if automatic else "staff"},
        )
        return LoggedIn(member.member_id, member.status, token)

    def _open_registration(self, session: Session, registration_id: str, now: dt.datetime) -> Registration:
        registration = phone_store.get_registration(session, registration_id=registration_id, for_update=True)
        if registration is None or registration.state != "code_sent" or registration.phone is None:
            raise ApiError(404, "no registration waiting for a code under that id", "registration_not_found")
        if now - registration.created_at > dt.timedelta(days=1):
            registration.state = "expired"
            raise ApiError(410, "this registration has expired: start again", "registration_expired")
        return registration

    def _create_member(
        self, session: Session, registration: Registration, *, status: str, now: dt.datetime
    ) -> Member:
        details = dict(registration.details)
        member = member_store.add_member(
            session,
            name=str(details.get("name", "")),
            phone=registration.phone,
            kind=details.get("kind"),
            employer=details.get("employer"),
            consent_face=bool(details.get("consent_face")),
            consent_cross_station=bool(details.get("consent_cross_station")),
            home_station_id=registration.station_id,
            status=status,
            source="phone",
        )
        registration.member_id = member.member_id
        registration.details = {}  # the member row holds it now
        return member

    # -- logging in on another phone -----------------------------------------------------------

    def request_login_code(self, db: sessionmaker[Session], phone_text: str, *, client: str) -> str:
        """Send a login code to a registered number; returns the number masked."""
        now = self.clock()
        phone = phone_store.normalise_phone(phone_text)
        if self.sms is None:
            raise ApiError(
                503,
                "no SMS gateway is configured: ask the station's staff to help you log in",
                "sms_unavailable",
            )
        with db.begin() as session:
            self._code_brakes(session, phone, client, now)
            if phone_store.member_by_phone(session, phone=phone) is None:
                raise ApiError(
                    404, "no member is registered with this number: register first", "phone_unknown"
                )
            code = self._new_code(session, phone, "login", None, client, now)
        self._send(db, code, phone, "login")
        return phone_store.mask_phone(phone) or ""

    def verify_login(
        self, session: Session, phone_text: str, code: str, *, client: str, device: str | None
    ) -> LoggedIn:
        now = self.clock()
        phone = phone_store.normalise_phone(phone_text)
        self._check_code(session, phone, "login", None, code, now)
        member = phone_store.member_by_phone(session, phone=phone)
        if member is None:  # erased between the code and now
            raise ApiError(401, "wrong or expired code", "wrong_code")
        token, _ = phone_store.create_login(
            session, member_id=member.member_id, now=now, ttl=self._login_ttl, client=client, device=device
        )
        audit.record(
            session,
            actor=f"phone:{member.member_id}",
            action="phone_login",
            target_type="member",
            target_id=member.member_id,
            client=client,
        )
        return LoggedIn(member.member_id, member.status, token)

    # -- staff decisions ------------------------------------------------------------------------

    def decide(
        self,
        session: Session,
        registration: Registration,
        *,
        approve: bool,
        actor: str,
        note: str | None,
        client: str,
    ) -> None:
        """Approve (the member becomes active and reaches the stations) or reject (the member and
        everything they typed are deleted; the row keeps only that it was rejected, when and why)."""
        if registration.state != "awaiting_staff" or registration.member_id is None:
            raise ApiError(
                409, f"this registration is {registration.state}, not waiting for staff", "not_pending"
            )
        now = self.clock()
        member = session.get(Member, registration.member_id)
        registration.decided_at, registration.decided_by, registration.note = now, actor, note
        if approve:
            if member is None:
                raise ApiError(409, "the member of this registration no longer exists", "member_gone")
            member.status = "active"
            registration.state = "approved"
            self.fleet.member_changed(session, member.member_id)
        else:
            registration.state = "rejected"
            registration.phone = None
            registration.member_id = None
            if member is not None:
                member_id = member.member_id
                session.delete(member)  # logins and everything else of theirs cascade
                session.flush()
                self.fleet.member_changed(session, member_id)  # a pending member was never sent: a no-op
        audit.record(
            session,
            actor=actor,
            action="registration_approved" if approve else "registration_rejected",
            target_type="registration",
            target_id=registration.id,
            district_id=registration.district_id,
            client=client,
            details={"note": note} if note else {},
        )

    # -- codes ----------------------------------------------------------------------------------

    @property
    def _login_ttl(self) -> dt.timedelta:
        return dt.timedelta(days=self.config.phone.login_ttl_days)

    def _registration_brakes(self, session: Session, client: str, now: dt.datetime) -> None:
        since = now - HOUR
        phone_config = self.config.phone
        if phone_store.registrations_since(session, since=since, client=client) >= (
            phone_config.registrations_per_address_per_hour
        ):
            raise _too_many("too many registrations from this address: try again later", "rate_limited", 3600)
        if phone_store.registrations_since(session, since=since) >= phone_config.registrations_per_hour:
            log.warning("registration brake engaged", extra={"fields": {"event": "registration_flood"}})
            raise _too_many("too many registrations right now: try again later", "rate_limited", 600)

    def _code_brakes(self, session: Session, phone: str, client: str, now: dt.datetime) -> None:
        since = now - HOUR
        sms = self.sms_config
        if (
            phone_store.wrong_codes_since(session, phone=phone, since=since)
            >= sms.failures_per_phone_per_hour
        ):
            raise _too_many("too many wrong codes for this number: locked for an hour", "locked_out", 3600)
        if phone_store.codes_sent_since(session, since=since, phone=phone) >= sms.sends_per_phone_per_hour:
            raise _too_many("too many codes sent to this number: try again in an hour", "rate_limited", 3600)
        if (
            phone_store.codes_sent_since(session, since=since, client=client)
            >= sms.sends_per_address_per_hour
        ):
            raise _too_many(
                "too many codes requested from this address: try again later", "rate_limited", 3600
            )

    def _new_code(
        self,
        session: Session,
        phone: str,
        purpose: str,
        registration_id: str | None,
        client: str,
        now: dt.datetime,
    ) -> str:
        code = new_code(self.sms_config.code_length)
        mac = code_mac(
            self.code_key, purpose=purpose, phone=phone, registration_id=registration_id, code=code
        )
        phone_store.add_code(
            session,
            phone=phone,
            purpose=purpose,
            code_mac=mac,
            registration_id=registration_id,
            client=client,
            now=now,
            ttl=dt.timedelta(seconds=self.sms_config.code_ttl_s),
        )
        return code

    def _send(self, db: sessionmaker[Session], code: str, phone: str, purpose: str) -> None:
        assert self.sms is not None
        try:
            self.sms.send(
                phone=phone, code=code, minutes=max(1, self.sms_config.code_ttl_s // 60), purpose=purpose
            )
        except SmsError as exc:
            log.error("sms not sent", extra={"fields": {"event": "sms_failed", "error": str(exc)}})
            with db.begin() as session:  # the code never arrived: void it so it cannot be guessed
                row = phone_store.latest_code(session, phone=phone, purpose=purpose)
                if row is not None and row.used_at is None:
                    row.used_at = self.clock()
            raise ApiError(503, "the SMS could not be sent: try again in a minute", "sms_failed") from None

    def _check_code(
        self,
        session: Session,
        phone: str,
        purpose: str,
        registration_id: str | None,
        code: str,
        now: dt.datetime,
    ) -> PhoneCode:
        """The code row if `code` is right; counts a wrong guess (the caller's transaction must
        commit even on refusal: `CodeRefused` carries that), locks the number after too many."""
        sms = self.sms_config
        if (
            phone_store.wrong_codes_since(session, phone=phone, since=now - HOUR)
            >= sms.failures_per_phone_per_hour
        ):
            raise _too_many("too many wrong codes for this number: locked for an hour", "locked_out", 3600)
        row = phone_store.latest_code(session, phone=phone, purpose=purpose, registration_id=registration_id)
        if (
            row is None
            or row.used_at is not None
            or row.expires_at <= now
            or row.attempts >= sms.max_attempts
        ):
            raise CodeRefused(401, "wrong or expired code: ask for a new one", "code_expired")
        if not code_matches(
            self.code_key,
            row.code_mac,
            purpose=purpose,
            phone=phone,
            registration_id=registration_id,
            code=code,
        ):
            row.attempts += 1
            left = sms.max_attempts - row.attempts
            raise CodeRefused(401, "wrong code", "wrong_code", attempts_left=max(0, left))
        row.used_at = now
        return row


class CodeRefused(ApiError):
    """A wrong or spent code. The web layer commits before answering, so the counted guess stays."""
