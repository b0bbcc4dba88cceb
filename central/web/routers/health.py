"""`GET /healthz`: for load balancers and systemd, without credentials, saying little."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from central.web.deps import ContextDep
from central.web.errors import ApiError

public = APIRouter(tags=["health"])


@public.get("/healthz")
def healthz(ctx: ContextDep) -> dict[str, str]:
    """200 while the database answers; 503 otherwise."""
    try:
        with ctx.db() as db:
            db.execute(text("SELECT 1"))
    except Exception:
        raise ApiError(503, "the database does not answer", "database_down") from None
    return {"status": "ok"}
