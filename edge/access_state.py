"""The access decider's state across restarts: `station_state` key `access_state`.

`AccessDecider.snapshot_state` (member and pass lockouts, their counted refusals, anti-passback
presence) is written whenever it changed, so a kill -9 or a power cut does not clear a lockout,
and read back at start. The wall time of the save goes with it: `yizhan doctor` (another process)
shows how long each lockout still has, and nothing else trusts that clock.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models import members as member_store

log = logging.getLogger(__name__)

KEY = "access_state"


def save(sessions: sessionmaker[Session], state: dict[str, Any], *, now_wall: float | None = None) -> None:
    """Store `state` (one small row, its own transaction)."""
    payload = json.dumps({"saved_wall": time.time() if now_wall is None else now_wall, "state": state})
    with sessions() as session, session.begin():
        member_store.set_state(session, KEY, payload)


def load(sessions: sessionmaker[Session]) -> tuple[dict[str, Any], float] | None:
    """(state, saved_wall) as last saved, or None (never saved, or unreadable: logged)."""
    with sessions() as session:
        raw = member_store.get_state(session, KEY)
    return parse(raw)


def parse(raw: str | None) -> tuple[dict[str, Any], float] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        state, saved = data["state"], float(data["saved_wall"])
        if not isinstance(state, dict):
            raise TypeError("state is not an object")
    except (ValueError, TypeError, KeyError) as exc:
        log.warning(
            "saved access state unreadable: starting without it", extra={"fields": {"error": str(exc)}}
        )
        return None
    return state, saved


def active_lockouts(raw: str | None, now_wall: float) -> list[dict[str, Any]]:
    """The lockouts a saved state still holds at `now_wall` (remaining_s counted down by the wall
    clock since the save: for display only), for `doctor`."""
    parsed = parse(raw)
    if parsed is None:
        return []
    state, saved = parsed
    elapsed = max(0.0, now_wall - saved)
    saved_locks = state.get("locks")
    locks: list[Any] = saved_locks if isinstance(saved_locks, list) else []
    shown = []
    for lock in locks:
        if not isinstance(lock, dict):
            continue
        remaining = lock.get("remaining_s")
        if isinstance(remaining, int | float) and remaining - elapsed > 0:
            shown.append({**lock, "remaining_s": round(float(remaining) - elapsed, 1)})
    return shown
