"""The door: its state, and a test opening from the installer page.

An opening goes through `StationDaemon.remote_open`, the same decider and record-before-relay path
as every credential, so it is in the event log with the installer's name (`details.by`), as a
`door_test` event: nobody came in, so it is not an entry and `events stats` does not count it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from edge.api.deps import ContextDep, CurrentInstaller, actor, current_installer
from edge.api.errors import ApiError
from edge.api.schemas import Strict

router = APIRouter(prefix="/api/v1/door", tags=["door"], dependencies=[Depends(current_installer)])


class OpenRequest(Strict):
    seconds: float | None = Field(
        None, ge=0.2, le=30.0, allow_inf_nan=False, description="Unlock time; default [door.relay] unlock_s."
    )
    note: str | None = Field(None, max_length=200, description="Why (kept in the event's details).")


class OpenResult(BaseModel):
    granted: bool
    seconds: float
    event: dict[str, Any]


@router.get("")
def door_state(ctx: ContextDep) -> dict[str, Any]:
    """Relay, door contact and alarm state, and the configured unlock time."""
    door = ctx.services.door
    if door is None or door.closed:
        raise ApiError(503, "the door is not running", "not_running")
    return {**door.state(), "unlock_s": ctx.services.config.door.relay.unlock_s}


@router.post("/open", response_model=OpenResult)
def open_door(ctx: ContextDep, installer: CurrentInstaller, body: OpenRequest | None = None) -> OpenResult:
    """Unlock the door for N seconds: a door test, recorded as a `door_test` event (not an entry)."""
    request = body or OpenRequest()
    seconds = request.seconds if request.seconds is not None else ctx.services.config.door.relay.unlock_s
    details: dict[str, Any] = {"via": "installer_page"}
    if request.note and request.note.strip():
        details["note"] = request.note.strip()
    try:
        event = ctx.services.remote_open(seconds=seconds, by=actor(installer), details=details, test=True)
    except RuntimeError:
        raise ApiError(503, "the door is not running", "not_running") from None
    return OpenResult(granted=event.get("kind") == "door_test", seconds=seconds, event=event)
