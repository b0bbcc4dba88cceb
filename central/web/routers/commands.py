"""Commands to a station from the dashboard (and later the phone pages): send one, see how it went.

`POST /api/v1/stations/{id}/commands` `{"name": "open", "reason": "...", "seconds": 5}` answers 202
with `{"command_id": ...}` once the command is recorded (it is published, signed, after this
request's commit; central.commands). `GET /api/v1/commands/{id}` shows its state and the station's
answer. Staff who may act (not viewers), on stations of their district; every command is audited.
A station that is offline gets nothing: the command comes back `failed` with `station_offline`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from central.commands import command_view, send_command
from central.store import commands as command_store
from central.web.deps import (
    Actor,
    ClientAddress,
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    station_in_scope,
)
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["commands"], dependencies=[Depends(current_staff)])
StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
CommandId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,48}$")]


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["open", "reload", "set_schedule", "snapshot", "ping"]
    reason: str | None = Field(
        None, max_length=500, description="Required for open: who is at the door, why."
    )
    seconds: float | None = Field(None, gt=0, le=600, allow_inf_nan=False, description="open: how long.")
    member_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="open: for whom.")
    schedule: dict[str, Any] | None = Field(None, description="set_schedule: the [schedule] shape.")


class CommandAccepted(BaseModel):
    command_id: str
    state: str
    error: str | None
    message: str | None


class CommandOut(BaseModel):
    command_id: str
    station_id: str
    name: str
    state: str
    issued_by: str
    reason: str | None
    issued_at: Any
    expires_at: Any
    sent_at: Any
    finished_at: Any
    ok: bool | None
    error: str | None
    message: str | None
    result: dict[str, Any] | None
    args: dict[str, Any]


@router.post("/stations/{station_id}/commands", response_model=CommandAccepted, status_code=202)
def post_command(
    station_id: StationId,
    body: CommandIn,
    staff: Actor,
    ctx: ContextDep,
    db: DbSession,
    client: ClientAddress,
) -> CommandAccepted:
    station = station_in_scope(db, staff, station_id)
    if ctx.signer is None:
        raise ApiError(503, "commands are not available in this process", "commands_unavailable")
    args = {k: v for k, v in body.model_dump(exclude={"name", "reason"}).items() if v is not None}
    command_id = send_command(
        db,
        ctx.signer,
        ctx.down,
        station_id=station.station_id,
        name=body.name,
        args=args,
        staff=staff,
        reason=body.reason,
        ttl_s=ctx.config.mqtt.command_ttl_s,
        client=client,
    )
    command = command_store.get_command(db, command_id=command_id)
    assert command is not None
    return CommandAccepted(
        command_id=command_id, state=command.state, error=command.error, message=command.message
    )


@router.get("/commands/{command_id}", response_model=CommandOut)
def get_command(command_id: CommandId, staff: CurrentStaff, ctx: ContextDep, db: DbSession) -> CommandOut:
    command = command_store.get_command(db, command_id=command_id)
    if command is None:
        raise ApiError(404, f"no command {command_id!r}", "command_not_found")
    try:
        station_in_scope(db, staff, command.station_id)
    except ApiError:
        raise ApiError(404, f"no command {command_id!r}", "command_not_found") from None
    return CommandOut(**command_view(command, ctx.now()))
