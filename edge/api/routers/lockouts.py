"""Lockouts: what the door has locked after repeated failed attempts, and clearing them.

A lockout covers one face track, face entry as one member, or one pass (`edge.lockouts`), never the
door. `GET /api/v1/lockouts` lists the active ones; `DELETE /api/v1/lockouts/{id}` ends one and
`DELETE /api/v1/lockouts` all of them, each recorded as a `lockout_cleared` event naming the
installer. The `lockout` event itself reached the centre when the lockout started.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from edge.api.deps import ContextDep, CurrentInstaller, actor, current_installer
from edge.api.errors import ApiError
from edge.api.services import StationServices
from edge.lockouts import LOCK_ID, LockoutInfo

router = APIRouter(prefix="/api/v1/lockouts", tags=["lockouts"], dependencies=[Depends(current_installer)])


class LockoutOut(BaseModel):
    id: str = Field(description='"scope:key", e.g. "member:W-0001", "pass:3f9c0a1b2c3d4e5f", "appearance:17"')
    scope: str = Field(description="appearance (one face track), member (face entry as this member), pass")
    key: str
    member_id: str | None = Field(description="The member it concerns, when known")
    member_name: str | None
    label: str = Field(description="What is locked, in English (the page builds its own words from scope)")
    remaining_s: float
    until: str = Field(description="When it ends (ISO 8601, station clock)")
    started_at: str
    attempts: int = Field(description="Counted refusals that started it")
    reason: str = Field(description="The refusal that tripped it (unknown_face, bad_signature, ...)")


class LockoutList(BaseModel):
    lockouts: list[LockoutOut]
    face_counting_paused_s: float = Field(
        description="Face refusals do not count toward lockouts for this long (an enrolment is under way)"
    )


class ClearedOut(BaseModel):
    cleared: list[LockoutOut]
    event: dict[str, Any] | None = Field(description="The lockout_cleared event (null: nothing was locked)")


def _out(ctx: ContextDep, info: LockoutInfo, now_wall: float) -> LockoutOut:
    station = ctx.services.station
    member_id = info.member_id or (info.key if info.scope == "member" else None)
    member = station.roster.current.members.get(member_id) if station and member_id else None
    name = member.name if member is not None else None
    who = f"{name} ({member_id})" if name else member_id
    label = {
        "member": f"face entry as {who}",
        "pass": f"a pass of {who}" if who else "a pass (unknown holder)",
        "appearance": f"face track {info.key}",
    }[info.scope]
    return LockoutOut(
        id=info.id,
        scope=info.scope,
        key=info.key,
        member_id=member_id,
        member_name=name,
        label=label,
        remaining_s=round(info.remaining_s, 1),
        until=_iso(now_wall + info.remaining_s),
        started_at=_iso(now_wall - info.age_s),
        attempts=info.attempts,
        reason=info.reason,
    )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _daemon(ctx: ContextDep) -> StationServices:
    services = ctx.services
    if services.decider is None:
        raise ApiError(503, "the door is not running", "not_running")
    return services


@router.get("", response_model=LockoutList)
def list_lockouts(ctx: ContextDep) -> LockoutList:
    """Active lockouts, the longest remaining first."""
    services = _daemon(ctx)
    now_wall, now_mono = time.time(), time.monotonic()
    return LockoutList(
        lockouts=[_out(ctx, info, now_wall) for info in services.lockouts()],
        face_counting_paused_s=round(
            services.decider.face_counting_paused_s(now_mono) if services.decider else 0.0, 1
        ),
    )


@router.delete("/{lockout_id}", response_model=ClearedOut, responses={404: {"description": "Not locked"}})
def clear_lockout(
    ctx: ContextDep,
    installer: CurrentInstaller,
    lockout_id: str = Path(pattern=f"^{LOCK_ID.pattern}$", max_length=80),
) -> ClearedOut:
    """End one lockout now (recorded as lockout_cleared with the installer's name)."""
    services = _daemon(ctx)
    now_wall = time.time()
    cleared, event = services.clear_lockouts(lockout_id, by=actor(installer))
    if not cleared:
        raise ApiError(404, f"{lockout_id} is not locked (ended already, or never was)", "lockout_not_found")
    return ClearedOut(cleared=[_out(ctx, info, now_wall) for info in cleared], event=event)


@router.delete("", response_model=ClearedOut)
def clear_all_lockouts(ctx: ContextDep, installer: CurrentInstaller) -> ClearedOut:
    """End every lockout now (one lockout_cleared event listing them; none if nothing was locked)."""
    services = _daemon(ctx)
    now_wall = time.time()
    cleared, event = services.clear_lockouts(None, by=actor(installer))
    return ClearedOut(cleared=[_out(ctx, info, now_wall) for info in cleared], event=event)
