"""Opening hours: read the ones in force, replace them until the next restart.

A replacement is validated by the very parser the door uses (`ScheduleConfig`), applied at once,
and recorded in the event log. It is not written to the configuration file, which stays the source
of truth across restarts for a standalone station (the centre's `set_schedule` command is the
durable way for a connected one); the answer says so, and the page tells the installer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from contract.schedule import ScheduleConfig
from edge.api.deps import ContextDep, CurrentInstaller, actor, current_installer
from edge.api.errors import ApiError
from edge.api.services import current_schedule

router = APIRouter(prefix="/api/v1/schedule", tags=["schedule"], dependencies=[Depends(current_installer)])

NOT_PERSISTED = "in force until the daemon restarts; put it in [schedule] of the config file to keep it"


@router.get("")
def get_schedule(ctx: ContextDep) -> dict[str, Any]:
    """The opening hours in force, and whether they are the config file's."""
    schedule = current_schedule(ctx.services, ctx.schedule)
    return {"schedule": schedule.model_dump(), "from_config": schedule == ctx.services.config.schedule}


@router.put("")
def put_schedule(body: ScheduleConfig, ctx: ContextDep, installer: CurrentInstaller) -> dict[str, Any]:
    """Replace the opening hours (the exit button and remote opening work at any hour)."""
    try:
        ctx.services.set_schedule(body)
    except RuntimeError:
        raise ApiError(503, "the door is not running", "not_running") from None
    ctx.schedule = body
    ctx.audit("schedule_changed", by=actor(installer), details={"always_open": body.always_open})
    return {"schedule": body.model_dump(), "from_config": False, "note": NOT_PERSISTED}
