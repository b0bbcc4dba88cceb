"""Annotated dependencies the routes declare (`ContextDep`, `StationDep`, `CurrentInstaller`).

Authentication itself happens in `edge.api.middleware.AuthGate`, before FastAPI reads a body or
matches a route, so every `/api/v1/...` request without credentials is a 401 whatever else is wrong
with it. `current_installer` reads the identity the gate established; its security parameters exist
so that the OpenAPI schema documents how to authenticate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from edge.api.auth import Identity
from edge.api.context import ApiContext
from edge.api.errors import ApiError
from edge.station import Station

SESSION_COOKIE = "yizhan_session"
CSRF_HEADER = "X-CSRF-Token"

_bearer = HTTPBearer(
    auto_error=False, description="The token returned by POST /auth/login (Authorization: Bearer ...)."
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"The login cookie the page uses; unsafe methods also need the {CSRF_HEADER} header.",
)


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_station(ctx: ContextDep) -> Station:
    station = ctx.services.station
    if station is None:
        raise ApiError(503, "the station is not running", "not_running")
    return station


StationDep = Annotated[Station, Depends(get_station)]


def current_installer(
    request: Request,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _cookie_value: Annotated[str | None, Security(_cookie)] = None,
) -> Identity:
    identity = getattr(request.state, "installer", None)
    if not isinstance(identity, Identity):
        raise ApiError(
            401, "log in first", "not_authenticated", headers={"WWW-Authenticate": 'Bearer realm="yizhan"'}
        )
    return identity


CurrentInstaller = Annotated[Identity, Depends(current_installer)]


def client_address(request: Request) -> str:
    """The peer address (proxy headers are not trusted: they would let anyone dodge the throttle)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def actor(identity: Identity) -> str:
    """How an installer appears in event details (`by`)."""
    return f"installer:{identity.username}"
