"""An on-site enrolment reaching the centre (`up/enrolment`): "enrol once, open everywhere".

The station sends templates only for a member who gave cross-station consent (docs/mqtt.md,
"enrolment"); the centre checks that again on its own record, stores the templates encrypted with
the enrolling station as their origin, and hands the member to `member_changed`, which sends them
to every station the member may enter (and only the member's fields to the others when there is
no cross-station consent: the QR pass works everywhere, the face only where it was enrolled).

Who is right about a member the centre already knows: the centre is the roster master for the
member's record, but consent is given at the station, so each consent is taken from whichever side
stated it last (`consent_at` against the centre's `consent_*_at`). An enrolment that reaches the
centre after the member was erased (a station's backlog) is recorded but does not bring the member
back: the erasure is newer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.ingest.messages import EnrolmentIn, EnrolmentMemberIn
from central.roster import changes, state
from central.store import ingest as ingest_store
from central.store import members as member_store
from central.store import removals as removal_store
from central.store.tables import Erasure, FaceTemplate, Member
from common.template_cipher import TemplateCipher


@dataclass(frozen=True, slots=True)
class EnrolmentOutcome:
    new: bool
    member_id: str | None
    templates_stored: int = 0
    templates_refused: int = 0
    member_refused: str | None = None  # why the member record was not taken (it stays stored as an enrolment)
    stations: int = 0  # how many stations get a roster change from it


def _erased_since(session: Session, member_id: str, enrolled_at: dt.datetime) -> bool:
    erased = session.scalar(
        select(Erasure.requested_at)
        .where(Erasure.member_id == member_id, Erasure.reason != "consent_withdrawn")
        .order_by(Erasure.requested_at.desc())
        .limit(1)
    )
    return erased is not None and erased >= enrolled_at


def _take_consents(member: Member, record: EnrolmentMemberIn, stated_at: dt.datetime) -> None:
    if member.consent_face_at is None or stated_at > member.consent_face_at:
        if member.consent_face != record.consent_face:
            member.consent_face = record.consent_face
            member.consent_face_at = stated_at
    cross = record.consent_cross_station and member.consent_face
    if member.consent_cross_station_at is None or stated_at > member.consent_cross_station_at:
        if member.consent_cross_station != cross:
            member.consent_cross_station = cross
            member.consent_cross_station_at = stated_at
    if not member.consent_face:
        member.consent_cross_station = False


def enrolment_received(
    session: Session,
    cipher: TemplateCipher,
    *,
    station_id: str,
    message: EnrolmentIn,
    received_at: dt.datetime,
) -> EnrolmentOutcome:
    """Store the enrolment once and take its member and templates (see the module doc)."""
    record = message.member
    member_id = record.member_id if record is not None else None
    new = ingest_store.store_enrolment(
        session,
        enrolment_id=message.id,
        station_id=station_id,
        member_id=member_id,
        seq=message.seq,
        ts=message.ts,
        templates_received=len(message.templates),
        templates_withheld=message.templates_withheld,
        received_at=received_at,
    )
    if not new or record is None:
        return EnrolmentOutcome(new, member_id)
    if _erased_since(session, record.member_id, message.ts):
        return EnrolmentOutcome(
            new, member_id, templates_refused=len(message.templates), member_refused="erased"
        )
    stated_at = record.consent_at or message.ts
    member = session.get(Member, record.member_id)
    if member is None:
        member = member_store.add_member(
            session,
            member_id=record.member_id,
            name=record.name,
            phone=record.phone,
            kind=record.kind,
            groups=record.groups,
            valid_from=record.valid_from,
            valid_until=record.valid_until,
            consent_face=record.consent_face,
            consent_cross_station=record.consent_cross_station and record.consent_face,
            home_station_id=station_id,
            status=record.status,
            source="station",
        )
        member.consent_face_at = stated_at if record.consent_face else None
        member.consent_cross_station_at = stated_at if member.consent_cross_station else None
    else:
        _take_consents(member, record, stated_at)
        if member.home_station_id is None:
            member.home_station_id = station_id
    session.flush()
    stored = refused = 0
    # Removed at this station since (its removal stored first by another ingest worker): gone.
    removal_store.lock_templates(session, [t.template_id for t in message.templates])
    removed = removal_store.removed_at_station(
        session, station_id=station_id, template_ids=[t.template_id for t in message.templates]
    )
    for template in message.templates:
        if not (member.consent_face and member.consent_cross_station):
            refused += 1  # the station must not have sent it; the centre does not keep it either
            continue
        if template.template_id in removed:
            continue
        existing = session.get(FaceTemplate, template.template_id)
        if existing is not None and existing.member_id != member.member_id:
            refused += 1
            continue
        if existing is not None and existing.ciphertext == state.WITHDRAWN:
            session.delete(existing)  # consent given again: the centre may hold it once more
            session.flush()
        elif existing is not None:
            continue
        member_store.add_template(
            session,
            cipher,
            member_id=member.member_id,
            vector=template.vector,
            template_id=template.template_id,
            model=template.model,
            origin_station_id=station_id,
        )
        stored += 1
    stations = changes.member_changed(session, member.member_id, cause=f"enrolment:{station_id}")
    return EnrolmentOutcome(new, member.member_id, stored, refused, None, stations)
