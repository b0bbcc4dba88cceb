"""`Annotated` dependencies the routes declare, and the district scoping helpers.

`DbSession` is one database session per request, committed when the route returns normally and
rolled back when it raises. `CurrentStaff` is the logged-in account as the database has it now
(a disabled or deleted account is logged out here); `Actor` also refuses viewers (403), `Admin`
everyone but admins. District staff see and act on their district only: list queries go through
`scoped_stations` / `district_scope`, and single-station routes through `station_in_scope`, which
answers 404 (not 403) for another district's station so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from central.store import members as member_store
from central.store import staff as staff_store
from central.store import stations as station_store
from central.store.tables import Member, Station
from central.web.auth import StaffIdentity
from central.web.context import WebContext
from central.web.errors import ApiError
from central.web.middleware import CHALLENGE, CSRF_HEADER, SESSION_COOKIE
from common.sessions import Session as LoginSession

_bearer = HTTPBearer(auto_error=False, description="The token from POST /api/auth/login.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"The dashboard's cookie; unsafe methods need {CSRF_HEADER}.",
)


def get_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[WebContext, Depends(get_context)]


def db_session(ctx: ContextDep) -> Iterator[Session]:
    with ctx.db.begin() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def current_staff(
    request: Request,
    ctx: ContextDep,
    db: DbSession,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _cookie_value: Annotated[str | None, Security(_cookie)] = None,
) -> StaffIdentity:
    session = getattr(request.state, "staff_session", None)
    if not isinstance(session, LoginSession):
        raise ApiError(401, "log in first", "not_authenticated", headers=CHALLENGE)
    account = staff_store.get_by_username(db, username=session.username)
    if account is None or not account.active:
        ctx.auth.sessions.revoke(session)
        raise ApiError(
            401, "this account no longer exists or was disabled", "session_expired", headers=CHALLENGE
        )
    return StaffIdentity(account.id, account.username, account.role, account.district_id, session)


CurrentStaff = Annotated[StaffIdentity, Depends(current_staff)]


def acting_staff(staff: CurrentStaff) -> StaffIdentity:
    if not staff.can_act:
        raise ApiError(403, "viewers can look but not change anything", "forbidden_role")
    return staff


def admin_staff(staff: CurrentStaff) -> StaffIdentity:
    if staff.role != "admin":
        raise ApiError(403, "only an admin can do this", "forbidden_role")
    return staff


Actor = Annotated[StaffIdentity, Depends(acting_staff)]
Admin = Annotated[StaffIdentity, Depends(admin_staff)]


def district_scope(staff: StaffIdentity) -> list[str] | None:
    """The districts `staff` may see (None: every district). Pass it to the store's list queries."""
    return staff.district_scope


def scoped_stations(db: Session, staff: StaffIdentity) -> Sequence[Station]:
    return station_store.list_stations(db, district_ids=district_scope(staff))


def station_in_scope(db: Session, staff: StaffIdentity, station_id: str) -> Station:
    station = station_store.get_station(db, station_id=station_id)
    scope = district_scope(staff)
    if station is None or (scope is not None and station.district_id not in scope):
        raise ApiError(404, f"no station {station_id!r}", "station_not_found")
    return station


def scoped_station_ids(db: Session, staff: StaffIdentity) -> list[str] | None:
    """Ids of the stations `staff` may see (None: all of them)."""
    return None if district_scope(staff) is None else [s.station_id for s in scoped_stations(db, staff)]


def member_in_scope(db: Session, staff: StaffIdentity, member_id: str) -> Member:
    """The member, if `staff` may see them: district staff see the members enrolled at (whose home
    station is) one of their district's stations. 404 otherwise, as for stations."""
    member = member_store.get_member(db, member_id=member_id)
    scope = district_scope(staff)
    if member is not None and scope is not None:
        home = (
            station_store.get_station(db, station_id=member.home_station_id)
            if member.home_station_id
            else None
        )
        if home is None or home.district_id not in scope:
            member = None
    if member is None:
        raise ApiError(404, f"no member {member_id!r}", "member_not_found")
    return member


def client_address(request: Request) -> str:
    """The peer address (behind a proxy listed in [web] forwarded_allow_ips, uvicorn resolves it)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]
