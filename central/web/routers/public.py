"""`GET /api/public/stations`: the station directory anyone may read (workers' phones, other
union platforms embedding it). No personal data, no health details, no credentials needed."""

from __future__ import annotations

from fastapi import APIRouter

from central.store import stations as station_store
from central.web.deps import ContextDep, DbSession
from central.web.schemas import PublicStation

public = APIRouter(prefix="/api/public", tags=["public"])


@public.get("/stations", response_model=list[PublicStation])
def stations(ctx: ContextDep, db: DbSession) -> list[PublicStation]:
    """Every station in service, whether it is open now, where it is and what it offers."""
    now = ctx.now()
    return [PublicStation.of(s, now) for s in station_store.list_stations(db, active_only=True)]
