"""The worker's phone pages and their API, installed into the centre's web app by `install`."""

from __future__ import annotations

from fastapi import FastAPI

from central.phone.fleet import CentreFleet, Fleet
from central.phone.sms import SmsSender
from central.phone.web.context import PhoneContext
from central.phone.web.gate import PhoneGate
from central.phone.web.pages import mount_static, pages
from central.phone.web.routes import router
from central.web.context import WebContext


def install(
    app: FastAPI, ctx: WebContext, *, fleet: Fleet | None = None, sms: SmsSender | None = None
) -> None:
    """Routes `/api/m/...`, pages `/m/...`, their static files and the CSRF gate."""
    phone = PhoneContext.build(ctx, fleet or ctx.fleet or CentreFleet(ctx), sms)
    app.state.phone = phone
    app.include_router(router)
    app.include_router(pages)
    mount_static(app)
    app.add_middleware(
        PhoneGate, key=phone.csrf_key, per_minute=ctx.config.phone.requests_per_address_per_minute
    )
