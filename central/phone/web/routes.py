"""The phone API, `/api/m/...`: what the worker's pages call. Separate from the staff API.

Phone logins never work on `/api/v1/` (the staff gate knows only staff sessions) and staff logins
never work here (`phone_logins` holds only phone tokens). A member is always the one of the login
cookie: no route takes a member id from the request, so "another member's id" has nowhere to go
(request models refuse unknown fields). Unsafe requests pass `PhoneGate` (CSRF) first; those that
act for a member need the login's own CSRF token.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from central.phone import fleet as fleet_module
from central.phone.accounts import CodeRefused, LoggedIn, RegistrationForm
from central.phone.geo import Point
from central.phone.opener import OpenState
from central.phone.passes import issue_pass
from central.phone.web.context import PhoneContext
from central.phone.web.gate import ANON_CSRF_COOKIE, LOGIN_COOKIE, UNSAFE_METHODS, session_csrf
from central.store import audit
from central.store import phone as phone_store
from central.store import stations as station_store
from central.store.tables import Member, PhoneLogin
from central.web.deps import ClientAddress
from central.web.errors import ApiError

StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
RegistrationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{8,64}$")]

router = APIRouter(prefix="/api/m", tags=["phone"])


def phone_context(request: Request) -> PhoneContext:
    phone: PhoneContext = request.app.state.phone
    return phone


PhoneDep = Annotated[PhoneContext, Depends(phone_context)]


def _device(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:200] if agent else None


@dataclass(frozen=True, slots=True)
class PhoneIdentity:
    login_id: int
    member_id: str
    token: str


def _login_from_cookie(request: Request, phone: PhoneDep) -> PhoneIdentity | None:
    token = request.cookies.get(LOGIN_COOKIE)
    if not token:
        return None
    now = phone.web.now()
    with phone.reads() as session:
        login = phone_store.login_for_token(session, token=token, now=now)
        if login is None:
            return None
        identity = PhoneIdentity(login.id, login.member_id, token)
        stale = now - login.last_seen_at > dt.timedelta(hours=1)
    if stale:  # bounded writes: once an hour per login
        with phone.web.db.begin() as session:
            row = session.get(PhoneLogin, identity.login_id)
            if row is not None:
                row.last_seen_at = now
    return identity


def current_member(request: Request, phone: PhoneDep) -> PhoneIdentity:
    """The logged-in member (401 otherwise); unsafe methods need the login's own CSRF token."""
    identity = _login_from_cookie(request, phone)
    if identity is None:
        raise ApiError(
            401, "this phone is not logged in (or the login ended): log in again", "phone_login_required"
        )
    if request.method in UNSAFE_METHODS and getattr(request.state, "phone_csrf", None) != "session":
        raise ApiError(403, "this request needs the login's X-CSRF-Token (reload the page)", "csrf")
    return identity


Me = Annotated[PhoneIdentity, Depends(current_member)]
MaybeMe = Annotated[PhoneIdentity | None, Depends(_login_from_cookie)]


def _set_login_cookie(response: Response, phone: PhoneContext, token: str) -> None:
    web = phone.web.config.web
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=phone.web.config.phone.login_ttl_days * 86_400,
        httponly=True,
        samesite="lax",  # a scan of the poster is a top-level navigation from nowhere: Lax sends it
        secure=web.cookie_secure,
        path="/",
    )


def ensure_anon_csrf(request: Request, response: Response, secure: bool) -> str:
    """The double-submit CSRF cookie of anonymous phone pages (set if absent); its value."""
    value = request.cookies.get(ANON_CSRF_COOKIE)
    if value is None or not 32 <= len(value) <= 128:
        value = secrets.token_urlsafe(32)
        response.set_cookie(
            ANON_CSRF_COOKIE, value, httponly=False, samesite="strict", secure=secure, path="/"
        )
    return value


# -- shapes --------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterIn(_In):
    station_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(min_length=8, max_length=32)
    kind: Literal["courier", "rider", "sanitation", "driver", "other"]
    employer: str | None = Field(None, max_length=100)
    consent_face: bool = False
    consent_cross_station: bool = False
    agree: Literal[True] = Field(description="The worker read how their data is used (the page's text).")

    @field_validator("name", "employer")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E for c in value):
            raise ValueError("must not contain control characters")
        return value or None


class CodeIn(_In):
    code: str = Field(pattern=r"^[0-9]{4,10}$")


class PhoneIn(_In):
    phone: str = Field(min_length=8, max_length=32)


class LoginIn(PhoneIn):
    code: str = Field(pattern=r"^[0-9]{4,10}$")


class Location(_In):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(None, ge=0, le=100_000, allow_inf_nan=False)


class OpenIn(_In):
    request_id: str = Field(pattern=r"^[A-Za-z0-9-]{8,64}$", description="A fresh id per tap (a UUID).")
    location: Location | None = None


class ConsentsIn(_In):
    consent_face: bool | None = None
    consent_cross_station: bool | None = None


class ConfirmIn(_In):
    confirm: Literal[True]


class LogoutIn(_In):
    everywhere: bool = False


class StartedOut(BaseModel):
    registration_id: str
    state: str
    phone_masked: str | None
    code_ttl_s: int | None
    csrf_token: str | None = None


class LoginOut(BaseModel):
    member_id: str
    status: str
    csrf_token: str


class Consents(BaseModel):
    face: bool
    face_at: dt.datetime | None
    cross_station: bool
    cross_station_at: dt.datetime | None


class MeOut(BaseModel):
    member_id: str
    name: str
    phone_masked: str | None
    kind: str | None
    employer: str | None
    status: str
    groups: list[str]
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    consents: Consents
    templates: int
    home_station_id: str | None
    logins: int
    csrf_token: str


class OpenOut(BaseModel):
    request_id: str
    station_id: str
    state: str
    reason: str | None
    message: str | None
    at: dt.datetime
    distance_m: float | None
    retry_after_s: float | None
    answer_timeout_s: float

    @classmethod
    def of(cls, state: OpenState, timeout: float) -> OpenOut:
        return cls(
            request_id=state.request_id,
            station_id=state.station_id,
            state=state.state,
            reason=state.reason,
            message=state.message,
            at=state.at,
            distance_m=state.distance_m,
            retry_after_s=state.retry_after_s,
            answer_timeout_s=timeout,
        )


class PassOut(BaseModel):
    token: str
    svg: str
    modules: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    refresh_s: int


class StationView(BaseModel):
    station_id: str
    name: str
    address: str | None
    open_now: bool
    opens_at: dt.datetime | None
    services: list[str]
    contact_phone: str | None
    state: str
    needs_location_m: int | None
    logged_in: bool
    member_status: str | None
    may_open: bool
    why_not: str | None
    sms: bool


class VisitOut(BaseModel):
    ts: dt.datetime
    station_id: str
    station_name: str | None
    kind: str
    method: str | None
    reason: str | None


class FaceDeletionOut(BaseModel):
    state: Literal["none", "pending", "done"]
    requested_at: dt.datetime | None
    completed_at: dt.datetime | None
    stations_pending: int
    templates_deleted: int


# -- anonymous: the station page, registering, logging in ------------------------------------------


@router.get("/csrf")
def csrf(request: Request, response: Response, phone: PhoneDep) -> dict[str, str]:
    """The anonymous CSRF token (also set as the `yizhan_m_csrf` cookie by every phone page)."""
    return {"csrf_token": ensure_anon_csrf(request, response, phone.web.config.web.cookie_secure)}


@router.get("/stations/{station_id}", response_model=StationView)
def station_view(station_id: StationId, phone: PhoneDep, me: MaybeMe) -> StationView:
    """What the station page shows: the station, and whether this phone's member may open it now."""
    now = phone.web.now()
    with phone.reads() as session:
        station = station_store.get_station(session, station_id=station_id)
        if station is None or not station.active:
            raise ApiError(404, f"no station {station_id!r} in service", "station_not_found")
        open_now = station_store.is_open(station, now)
        member = session.get(Member, me.member_id) if me is not None else None
        why_not = None
        if member is not None:
            if member.status == "pending":
                why_not = "member_pending"
            elif member.status != "active":
                why_not = "member_suspended"
            elif station.allowed_groups and not set(station.allowed_groups) & set(member.groups):
                why_not = "not_allowed_here"
            elif not open_now:
                why_not = "station_closed"
        return StationView(
            station_id=station.station_id,
            name=station.name,
            address=station.address,
            open_now=open_now,
            opens_at=None
            if open_now
            else station_store.parse_schedule(station.schedule).opening_hours().next_change(now),
            services=list(station.services),
            contact_phone=station.contact_phone,
            state=station.last_state,
            needs_location_m=station.require_location_m,
            logged_in=member is not None,
            member_status=member.status if member is not None else None,
            may_open=member is not None and why_not is None,
            why_not=why_not,
            sms=phone.accounts.has_gateway,
        )


@router.post("/register", response_model=StartedOut, status_code=202)
def register(
    body: RegisterIn, request: Request, response: Response, phone: PhoneDep, client: ClientAddress
) -> StartedOut:
    """Start registering: a code goes to the number (or, without an SMS gateway, staff decide)."""
    if body.consent_cross_station and not body.consent_face:
        raise ApiError(422, "sharing the face with other stations needs face consent first", "invalid_value")
    started = phone.accounts.register(
        phone.web.db,
        RegistrationForm(
            body.station_id,
            body.name,
            body.phone,
            body.kind,
            body.employer,
            body.consent_face,
            body.consent_cross_station,
        ),
        client=client,
        device=_device(request),
    )
    csrf_token = None
    if started.login_token is not None:
        _set_login_cookie(response, phone, started.login_token)
        csrf_token = session_csrf(phone.csrf_key, started.login_token)
    return StartedOut(
        registration_id=started.registration_id,
        state=started.state,
        phone_masked=started.phone_masked,
        code_ttl_s=started.code_ttl_s,
        csrf_token=csrf_token,
    )


@router.post("/register/{registration_id}/resend", response_model=StartedOut, status_code=202)
def resend(registration_id: RegistrationId, phone: PhoneDep, client: ClientAddress) -> StartedOut:
    started = phone.accounts.resend(phone.web.db, registration_id, client=client)
    return StartedOut(
        registration_id=started.registration_id,
        state=started.state,
        phone_masked=started.phone_masked,
        code_ttl_s=started.code_ttl_s,
    )


def _logged_in(response: Response, phone: PhoneContext, result: LoggedIn) -> LoginOut:
    _set_login_cookie(response, phone, result.login_token)
    return LoginOut(
        member_id=result.member_id,
        status=result.status,
        csrf_token=session_csrf(phone.csrf_key, result.login_token),
    )


def _with_code(phone: PhoneContext, verify: Any) -> LoggedIn:
    """Run a code check in its own transaction, committed even when the code is wrong (the counted
    guess must stay counted, or brute force would cost nothing)."""
    refusal: CodeRefused | None = None
    with phone.web.db.begin() as session:
        try:
            result: LoggedIn = verify(session)
        except CodeRefused as exc:
            refusal = exc
    if refusal is not None:
        raise refusal
    return result


@router.post("/register/{registration_id}/verify", response_model=LoginOut)
def verify_registration(
    registration_id: RegistrationId,
    body: CodeIn,
    request: Request,
    response: Response,
    phone: PhoneDep,
    client: ClientAddress,
) -> LoginOut:
    """The code from the SMS: the member is created (active or waiting for staff) and logged in."""
    result = _with_code(
        phone,
        lambda session: phone.accounts.verify_registration(
            session, registration_id, body.code, client=client, device=_device(request)
        ),
    )
    return _logged_in(response, phone, result)


@router.post("/login/code", status_code=202)
def login_code(body: PhoneIn, phone: PhoneDep, client: ClientAddress) -> dict[str, Any]:
    """Send a login code to a registered number (a new phone, or after logging out)."""
    masked = phone.accounts.request_login_code(phone.web.db, body.phone, client=client)
    return {"phone_masked": masked, "code_ttl_s": phone.web.config.sms.code_ttl_s}


@router.post("/login/verify", response_model=LoginOut)
def login_verify(
    body: LoginIn, request: Request, response: Response, phone: PhoneDep, client: ClientAddress
) -> LoginOut:
    result = _with_code(
        phone,
        lambda session: phone.accounts.verify_login(
            session, body.phone, body.code, client=client, device=_device(request)
        ),
    )
    return _logged_in(response, phone, result)


# -- the member's own ------------------------------------------------------------------------------


def _member(session: Session, me: PhoneIdentity) -> Member:
    member = session.get(Member, me.member_id)
    if member is None:
        raise ApiError(401, "this member no longer exists", "phone_login_required")
    return member


@router.get("/me", response_model=MeOut)
def me_view(me: Me, phone: PhoneDep) -> MeOut:
    """The member's own record, consents and the CSRF token of this login."""
    now = phone.web.now()
    with phone.reads() as session:
        member = _member(session, me)
        return MeOut(
            member_id=member.member_id,
            name=member.name,
            phone_masked=phone_store.mask_phone(member.phone),
            kind=member.kind,
            employer=member.employer,
            status=member.status,
            groups=list(member.groups),
            valid_from=member.valid_from,
            valid_until=member.valid_until,
            consents=Consents(
                face=member.consent_face,
                face_at=member.consent_face_at,
                cross_station=member.consent_cross_station,
                cross_station_at=member.consent_cross_station_at,
            ),
            templates=len(member.templates),
            home_station_id=member.home_station_id,
            logins=len(phone_store.live_logins(session, member_id=member.member_id, now=now)),
            csrf_token=session_csrf(phone.csrf_key, me.token),
        )


@router.post("/logout", status_code=204)
def logout(body: LogoutIn, me: Me, phone: PhoneDep, response: Response, client: ClientAddress) -> Response:
    """End this phone's login, or (`everywhere`) every login of this member (a lost phone)."""
    now = phone.web.now()
    with phone.web.db.begin() as session:
        if body.everywhere:
            phone_store.revoke_logins(session, member_id=me.member_id, now=now)
        else:
            login = session.get(PhoneLogin, me.login_id)
            if login is not None:
                login.revoked_at = now
        audit.record(
            session,
            actor=f"phone:{me.member_id}",
            action="phone_logout_everywhere" if body.everywhere else "phone_logout",
            target_type="member",
            target_id=me.member_id,
            client=client,
        )
    response.status_code = 204
    response.delete_cookie(LOGIN_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.post("/stations/{station_id}/open", response_model=OpenOut, status_code=202)
def open_door(station_id: StationId, body: OpenIn, me: Me, phone: PhoneDep, client: ClientAddress) -> OpenOut:
    """Open this station's door: decided here, sent to the station signed; then ask `/opens/{id}`."""
    point = Point(body.location.lat, body.location.lon) if body.location is not None else None
    with phone.web.db.begin() as session:
        member = _member(session, me)
        station = station_store.get_station(session, station_id=station_id)
        if station is None:
            raise ApiError(404, f"no station {station_id!r}", "station_not_found")
        state = phone.opener.request(
            session,
            member=member,
            station=station,
            request_id=body.request_id,
            client=client,
            phone_point=point,
        )
    return OpenOut.of(state, phone.web.config.phone.answer_timeout_s)


@router.get("/opens/{request_id}", response_model=OpenOut)
def open_state(
    request_id: RequestId,
    me: Me,
    phone: PhoneDep,
    wait: Annotated[float, Query(ge=0, le=30, allow_inf_nan=False)] = 0.0,
) -> OpenOut:
    """How an opening went; `wait` seconds (at most the answer timeout) for the door to answer."""
    state = phone.opener.answer(
        phone.web.db, phone.reads, member_id=me.member_id, request_id=request_id, wait_s=wait
    )
    return OpenOut.of(state, phone.web.config.phone.answer_timeout_s)


@router.get("/pass", response_model=PassOut)
def my_pass(me: Me, phone: PhoneDep) -> PassOut:
    """A fresh pass (QR token) for the door camera; the page renews it every `refresh_s`."""
    config = phone.web.config.phone
    with phone.reads() as session:
        member = _member(session, me)
        if member.status != "active":
            raise ApiError(403, f"no pass while the membership is {member.status}", f"member_{member.status}")
        issued = issue_pass(
            session,
            phone.web.data_key,
            member=member,
            now=phone.web.now(),
            ttl_s=config.pass_ttl_s,
            max_ttl_s=phone.web.config.qr.max_pass_ttl_s,
        )
    return PassOut(
        token=issued.token,
        svg=issued.svg,
        modules=issued.modules,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        refresh_s=config.pass_refresh_s,
    )


@router.get("/visits", response_model=list[VisitOut])
def visits(me: Me, phone: PhoneDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[VisitOut]:
    """The member's own entries, refusals and exits at every station, newest first."""
    with phone.reads() as session:
        return [
            VisitOut(
                ts=event.ts,
                station_id=event.station_id,
                station_name=name,
                kind=event.kind,
                method=event.method,
                reason=event.reason,
            )
            for event, name in phone_store.member_events(session, member_id=me.member_id, limit=limit)
        ]


@router.post("/consents", response_model=MeOut)
def consents(body: ConsentsIn, me: Me, phone: PhoneDep, client: ClientAddress) -> MeOut:
    """Give or withdraw a consent. Withdrawing face consent deletes the face data everywhere."""
    now = phone.web.now()
    with phone.web.db.begin() as session:
        member = _member(session, me)
        face = member.consent_face if body.consent_face is None else body.consent_face
        cross = (
            member.consent_cross_station if body.consent_cross_station is None else body.consent_cross_station
        )
        if not face:
            cross = False
        if cross and not face:
            raise ApiError(422, "sharing with other stations needs face consent", "invalid_value")
        actor = f"phone:{member.member_id}"
        withdrawn_face = member.consent_face and not face
        withdrawn_cross = member.consent_cross_station and not cross
        given = (face and not member.consent_face) or (cross and not member.consent_cross_station)
        if face != member.consent_face:
            member.consent_face, member.consent_face_at = face, now
        if cross != member.consent_cross_station:
            member.consent_cross_station, member.consent_cross_station_at = cross, now
        if withdrawn_face or withdrawn_cross or given:
            audit.record(
                session,
                actor=actor,
                action="consents_changed",
                target_type="member",
                target_id=member.member_id,
                client=client,
                details={"consent_face": face, "consent_cross_station": cross},
            )
        if withdrawn_face or withdrawn_cross:
            phone.fleet.withdraw_consent(
                session, member.member_id, actor, face=withdrawn_face, cross_station=withdrawn_cross
            )
        elif given:
            phone.fleet.member_changed(session, member.member_id)
    return me_view(me, phone)


@router.post("/face/delete", response_model=FaceDeletionOut, status_code=202)
def delete_face(body: ConfirmIn, me: Me, phone: PhoneDep, client: ClientAddress) -> FaceDeletionOut:
    """Delete the member's face data at the centre and every station (face consent withdrawn)."""
    consents(ConsentsIn(consent_face=False), me, phone, client)
    progress = face_deletion(me, phone)
    if progress.state == "none":  # there was no face data to delete anywhere
        now = phone.web.now()
        return FaceDeletionOut(
            state="done", requested_at=now, completed_at=now, stations_pending=0, templates_deleted=0
        )
    return progress


@router.get("/face/deletion", response_model=FaceDeletionOut)
def face_deletion(me: Me, phone: PhoneDep) -> FaceDeletionOut:
    """How far the deletion of the face data got (`done` once every station confirmed)."""
    with phone.reads() as session:
        progress = fleet_module.face_erasure(session, me.member_id)
    if progress is None:
        return FaceDeletionOut(
            state="none", requested_at=None, completed_at=None, stations_pending=0, templates_deleted=0
        )
    return FaceDeletionOut(
        state="done" if progress.completed_at is not None else "pending",
        requested_at=progress.requested_at,
        completed_at=progress.completed_at,
        stations_pending=progress.stations_pending,
        templates_deleted=progress.templates_deleted,
    )
