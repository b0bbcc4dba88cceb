"""Answering a station's roster request (docs/mqtt.md, "roster request"): changes, or a snapshot,
then always a roster status naming the request.

The changes after `have_version` when the centre has every one of them; a full snapshot when it
does not (a gap, a snapshot marker among them), when the station is new to the centre
(`roster_basis` unset: nothing incremental was ever built for it), when it has nothing
(`have_version` 0), when it changed face model, or when it is *ahead* of the centre (a centre
database restored from an older backup). The last case bumps the station's version past the one
it has, because a station refuses a snapshot older than what it applied (`stale_snapshot`).

The station's row is locked first, so a staff action changing its roster at the same moment is
either wholly in the answer or wholly after it, and the status never names a version the answer
does not reach.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.ingest.messages import RosterRequestIn
from central.roster import changes, state
from central.roster.messages import Templates, change_message, snapshot_messages, status_message
from central.roster.view import SNAPSHOT_OP
from central.store.tables import RosterChange, Station
from common.template_cipher import TemplateCipher


@dataclass
class Answer:
    station_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    snapshot: bool = False
    version: int = 0


def _is_marker(change: RosterChange) -> bool:
    return any(op.get("op") == SNAPSHOT_OP for op in change.ops)


def answer_request(
    session: Session, cipher: TemplateCipher, *, station_id: str, request: RosterRequestIn, now: dt.datetime
) -> Answer | None:
    """The messages answering `request`, in publish order (None: no such station)."""
    station = session.scalars(
        select(Station).where(Station.station_id == station_id).with_for_update()
    ).first()
    if station is None:
        return None
    if request.face_model is not None and request.face_model.name != station.face_model:
        station.face_model = request.face_model.name
    have, issued = request.have_version, int(station.issued_version)
    built = bool(station.roster_basis)
    model_changed = built and state.basis(station).face_model != state.current_basis(station).face_model
    snapshot = not built or have == 0 or have > issued or request.reason == "model" or model_changed
    rows: list[RosterChange] = []
    if not snapshot and have < issued:
        rows = list(
            session.scalars(
                select(RosterChange)
                .where(RosterChange.station_id == station_id, RosterChange.version > have)
                .order_by(RosterChange.version)
            )
        )
        complete = [r.version for r in rows] == list(range(have + 1, issued + 1))
        snapshot = not complete or any(_is_marker(r) for r in rows)
    answer = Answer(station_id)
    if snapshot:
        if issued == 0 or have > issued:
            if have > issued:
                station.issued_version = have  # versions the centre forgot: jump past the station's
                session.flush()
            issued = changes.issue(session, {station_id: [{"op": SNAPSHOT_OP}]}, cause="resync")[station_id]
            session.execute(
                update(RosterChange)
                .where(RosterChange.station_id == station_id, RosterChange.version == issued)
                .values(sent_at=now)
            )
        changes.mark_built(session, station)
        answer.messages = snapshot_messages(session, cipher, station, issued, now=now)
        answer.snapshot = True
    else:
        templates = Templates(session, cipher)
        answer.messages = [change_message(row, templates) for row in rows]
    answer.version = issued
    answer.messages.append(status_message(station_id, issued, request.id))
    station.applied_version = have
    return answer
