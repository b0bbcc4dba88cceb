"""Reading members and stations into the roster's pure inputs, and keeping the published state.

`current_state` reads a member as it is now; `published` is the member as the stations were last
told (`roster_published`); `basis` is a station's admission basis, the one its roster was last
built on (`stations.roster_basis`) or, for a station never sent anything, its current settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.roster.view import MemberState, StationBasis, TemplateRef
from central.store.tables import FaceTemplate, Member, RosterPublished, Station
from contract.messages import DLIB_MODEL

#: A template row without ciphertext: the centre deleted its copy (cross-station consent was
#: withdrawn) but remembers that the member's origin station holds it (view.py).
WITHDRAWN = b""


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def member_fields(member: Member) -> dict[str, Any]:
    """The member's contract fields, JSON-ready and within the contract's bounds."""
    phone = member.phone if member.phone and 3 <= len(member.phone) <= 32 else None
    return {
        "name": member.name,
        "phone": phone,
        "groups": list(member.groups or []),
        "kind": member.kind,
        "valid_from": _iso(member.valid_from),
        "valid_until": _iso(member.valid_until),
        "status": "suspended" if member.status == "suspended" else "active",
        "consent_face": bool(member.consent_face),
        "consent_cross_station": bool(member.consent_cross_station),
    }


def _template_refs(session: Session, member_ids: Sequence[str]) -> dict[str, list[TemplateRef]]:
    refs: dict[str, list[TemplateRef]] = {}
    if not member_ids:
        return refs
    rows = session.execute(
        select(
            FaceTemplate.member_id,
            FaceTemplate.template_id,
            FaceTemplate.model,
            FaceTemplate.scope,
            FaceTemplate.origin_station_id,
            FaceTemplate.ciphertext == WITHDRAWN,
        )
        .where(FaceTemplate.member_id.in_(list(member_ids)))
        .order_by(FaceTemplate.created_at, FaceTemplate.template_id)
    )
    for member_id, template_id, model, scope, origin, withdrawn in rows:
        refs.setdefault(member_id, []).append(
            TemplateRef(template_id, model, scope, origin, at_centre=not withdrawn)
        )
    return refs


def current_state(session: Session, member_id: str) -> MemberState | None:
    member = session.get(Member, member_id)
    if member is None:
        return None
    session.flush()
    refs = _template_refs(session, [member_id]).get(member_id, [])
    return MemberState(member_id, member_fields(member), member.status != "pending", tuple(refs))


def published(session: Session, member_id: str) -> MemberState | None:
    row = session.get(RosterPublished, member_id)
    return MemberState.from_json(row.state) if row is not None else None


def all_published(session: Session) -> dict[str, MemberState]:
    return {
        str(member_id): MemberState.from_json(state)
        for member_id, state in session.execute(select(RosterPublished.member_id, RosterPublished.state))
    }


def publish(session: Session, member_id: str, state: MemberState | None) -> None:
    """Record what the stations are now told about this member (None: nothing, the member is gone)."""
    row = session.get(RosterPublished, member_id)
    if state is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return
    if row is None:
        session.add(RosterPublished(member_id=member_id, state=state.to_json()))
    else:
        row.state = state.to_json()
    session.flush()


def current_basis(station: Station) -> StationBasis:
    return StationBasis(
        station.station_id,
        tuple(station.allowed_groups or ()),
        station.face_model or DLIB_MODEL,
        bool(station.active),
    )


def basis(station: Station) -> StationBasis:
    """The basis the station's roster was last built on (its current settings if never built)."""
    if station.roster_basis:
        return StationBasis.from_json(station.station_id, station.roster_basis)
    return current_basis(station)


def stations(session: Session, station_ids: Iterable[str] | None = None) -> list[Station]:
    query = select(Station).order_by(Station.station_id)
    if station_ids is not None:
        query = query.where(Station.station_id.in_(list(station_ids)))
    return list(session.scalars(query))
