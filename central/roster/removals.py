"""A face template removed on site, withdrawn from the whole fleet (`up/template_removal`).

"Enrol once, open everywhere" has a reverse: a template an installer removes at one station (a
photo of the wrong person, a poor one) was, with cross-station consent, uploaded here and passed to
every station the member may enter. Left there, it would keep opening those doors. So the centre
deletes its copy and `member_changed` sends `remove_template` to every station that holds it, in
the transaction that stores the removal, with an audit entry (docs/mqtt.md, "template removal").

What a station may withdraw: a template of the member it names (never another member's), that
this station holds: one it enrolled (its origin), or a fleet template it was given. A station
that holds a fleet template may withdraw it everywhere, not only its origin: a wrong face must be
removable wherever an installer notices it, and the cost of a wrong removal is a re-enrolment
(the member's pass keeps working). Another station's own template, or one of a member not admitted
at the sender, is refused: a station's login must not reach into faces it never held.

Each removal is remembered once per template id (`template_removals`): a re-sent message changes
nothing, and an enrolment carrying the same template that is stored after the removal (another
ingest worker took it) does not bring it back (`central.roster.enrolments`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from central.ingest.messages import TemplateRemovalIn
from central.roster import changes, state
from central.roster.view import view
from central.store import audit
from central.store import members as member_store
from central.store import removals as removal_store
from central.store.tables import FaceTemplate, Station, TemplateRemoval


class RemovalRefused(Exception):
    """A removal the centre will not act on; `reason` is the refusal's metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RemovalOutcome:
    new: bool  # False: this template's removal was stored before (a re-send)
    held: bool = False  # the centre held the template and withdrew it
    stations: int = 0  # stations sent a remove_template


def _sender_holds(session: Session, template: FaceTemplate, station: Station) -> bool:
    if template.origin_station_id == station.station_id:
        return True
    if not station.roster_basis:
        return False  # never sent a roster: it holds only what it enrolled itself
    published = state.published(session, template.member_id)
    seen = view(published, state.basis(station)) if published is not None else None
    return seen is not None and template.template_id in seen.templates


def _withdraw(
    session: Session,
    template: FaceTemplate,
    *,
    actor: str,
    district_id: str | None,
    client: str | None,
    details: dict[str, Any],
) -> int:
    """Delete the centre's copy, send `remove_template` to every holder, audit; returns how many
    stations get the change."""
    member_id, template_id = template.member_id, template.template_id
    session.delete(template)
    session.flush()
    stations = changes.member_changed(session, member_id, cause=f"template_removal:{actor[:100]}")
    audit.record(
        session,
        actor=actor,
        action="template_removed",
        target_type="member",
        target_id=member_id,
        district_id=district_id,
        client=client,
        details={"template_id": template_id, "stations": stations, **details},
    )
    return stations


def template_removal_received(
    session: Session, *, station: Station, message: TemplateRemovalIn, received_at: dt.datetime
) -> RemovalOutcome:
    """Check, remember and carry out one on-site removal (see the module doc).

    Raises `RemovalRefused` (nothing written) for a template of another member or one the sender
    does not hold."""
    removal_store.lock_templates(session, [message.template_id])
    template = session.get(FaceTemplate, message.template_id)
    if template is not None:
        if template.member_id != message.member_id:
            raise RemovalRefused(
                "wrong_member", f"template {message.template_id} is not of member {message.member_id}"
            )
        if not _sender_holds(session, template, station):
            raise RemovalRefused(
                "not_held", f"template {message.template_id} was never given to {station.station_id}"
            )
    new = removal_store.store_removal(
        session,
        {
            "template_id": message.template_id,
            "member_id": message.member_id,
            "station_id": station.station_id,
            "message_id": message.id,
            "seq": message.seq,
            "removed_by": message.removed_by,
            "removed_at": message.ts,
            "received_at": received_at,
            "held": template is not None,
            "stations": 0,
        },
    )
    if not new or template is None:
        # A re-send, or a template the centre never had (no cross-station consent) or no longer has.
        return RemovalOutcome(new)
    stations = _withdraw(
        session,
        template,
        actor=f"station:{station.station_id}",
        district_id=station.district_id,
        client=None,
        details={"removed_by": message.removed_by, "removed_at": message.ts.isoformat()},
    )
    row = session.get(TemplateRemoval, message.template_id)
    if row is not None:
        row.stations = stations
    return RemovalOutcome(True, True, stations)


def remove_template(
    session: Session, member_id: str, template_id: str, actor: str, *, client: str | None = None
) -> int | None:
    """Staff remove one of a member's templates at the centre (a wrong or poor photo): the centre's
    copy goes and every station holding it gets `remove_template`, audited. Returns how many
    stations get the change, or None when the member has no such template."""
    template = session.get(FaceTemplate, template_id)
    if template is None or template.member_id != member_id:
        return None
    member = template.member
    return _withdraw(
        session,
        template,
        actor=actor,
        district_id=member_store.member_district(session, member) if member is not None else None,
        client=client,
        details={},
    )
