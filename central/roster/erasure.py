"""Erasing a member, withdrawing consent, and knowing which stations have done their part.

`erase_member`: the member's face templates and snapshots are deleted at the centre, every station
holding the member gets `remove_member` (its templates go with it there), the member row is
deleted, and an `erasures` row records that it happened, by whom, how much was deleted and which
stations have not confirmed yet: never the name, phone or face (docs/CENTRAL.md, "Erasures").

`withdraw_consent`: face consent withdrawn means no station and not the centre may keep the face
(`update_member consent_face=false` deletes the templates on each station); cross-station
consent withdrawn means the face stays only where it was enrolled: the other stations get
`remove_template`, and the centre deletes its copies (it keeps the template row without the
ciphertext, to remember that the origin station holds one, `central.roster.view`).

A station has done its part once its applied roster version reaches the version of the change
that carried the removal (`confirm_applied`, from its results and status heartbeats).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from central.roster import changes, state
from central.roster.view import StationBasis, view
from central.snapshot_files import SnapshotFiles
from central.store import audit, members
from central.store import snapshots as snapshot_store
from central.store.members import MemberNotFoundError
from central.store.tables import Erasure, FaceTemplate, Member, RosterChange, Station
from common.db_types import utc_now
from common.errors import ValidationError

log = logging.getLogger(__name__)

ERASURE_CAUSE = "erasure:{id}"


#: Why staff erase a member (a consent withdrawal that keeps the member goes through withdraw_consent).
ERASURE_REASONS = ("member_request", "staff", "consent_withdrawn")


def _after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed (never if it rolls back)."""

    def run(_session: Session) -> None:
        try:
            action()
        except Exception:
            log.exception("after-commit action failed")

    event.listen(session, "after_commit", run, once=True)
    event.listen(session, "after_rollback", lambda _s: event.remove(session, "after_commit", run), once=True)


def _holders(session: Session, member_id: str) -> list[str]:
    """Stations whose roster holds the member now (by what they were told)."""
    published = state.published(session, member_id)
    if published is None:
        return []
    rows = session.execute(select(Station.station_id, Station.roster_basis)).all()
    return sorted(
        str(sid)
        for sid, basis in rows
        if isinstance(basis, dict) and basis and view(published, StationBasis.from_json(str(sid), basis))
    )


def _delete_snapshots(session: Session, member_id: str, now: dt.datetime, files: SnapshotFiles | None) -> int:
    rows = snapshot_store.of_member(session, member_id=member_id)
    snapshot_store.mark_deleted(session, event_ids=[r.event_id for r in rows], at=now)
    paths = [r.path for r in rows]
    if files is not None and paths:

        def delete_files() -> None:
            for path in paths:
                files.delete(path)

        _after_commit(session, delete_files)
    return len(rows)


def erase_member(
    session: Session,
    member_id: str,
    actor: str,
    *,
    reason: str = "staff",
    files: SnapshotFiles | None = None,
    client: str | None = None,
) -> Erasure:
    """Erase the member everywhere (see the module doc). `actor` is who asked (`staff:<name>`).

    Snapshot files are deleted after the commit when `files` is given, else by the snapshot
    janitor's next run (it removes the files of rows marked deleted)."""
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFoundError(f"no member {member_id!r}")
    if reason not in ERASURE_REASONS:
        raise ValidationError(f"an erasure's reason is one of {', '.join(ERASURE_REASONS)}")
    now = utc_now()
    holders = _holders(session, member_id)
    district = members.member_district(session, member)
    templates = len(member.templates)
    snapshots = _delete_snapshots(session, member_id, now, files)
    erasure = Erasure(
        member_id=member_id,
        requested_by=actor[:100],
        reason=reason,
        requested_at=now,
        templates_deleted=templates,
        snapshots_deleted=snapshots,
        stations_pending=holders,
        completed_at=None if holders else now,
    )
    session.add(erasure)
    session.delete(member)
    session.flush()
    changes.member_changed(session, member_id, cause=ERASURE_CAUSE.format(id=erasure.id))
    audit.record(
        session,
        actor=actor,
        action="member_erased",
        target_type="member",
        target_id=member_id,
        district_id=district,
        client=client,
        details={
            "erasure_id": erasure.id,
            "templates": templates,
            "snapshots": snapshots,
            "stations": len(holders),
        },
    )
    return erasure


def withdraw_consent(
    session: Session,
    member_id: str,
    actor: str,
    *,
    face: bool = False,
    cross_station: bool = False,
    client: str | None = None,
) -> Erasure | None:
    """Record a withdrawal of face consent (`face`) or of cross-station consent, delete the centre's
    copies, and tell the stations. Returns the erasure row when templates were deleted."""
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFoundError(f"no member {member_id!r}")
    if not (face or cross_station):
        raise ValidationError("say which consent is withdrawn: face and/or cross_station")
    now = utc_now()
    holders = _holders(session, member_id)
    rows = list(session.scalars(select(FaceTemplate).where(FaceTemplate.member_id == member_id)))
    deleted = 0
    if face:
        member.consent_face = False
        member.consent_face_at = now
        for row in rows:
            session.delete(row)
        deleted = sum(1 for r in rows if r.ciphertext)
    if face or cross_station:
        if member.consent_cross_station:
            member.consent_cross_station_at = now
        member.consent_cross_station = False
    if cross_station and not face:
        for row in rows:
            if row.ciphertext:
                deleted += 1
            if row.origin_station_id is None:
                session.delete(row)  # enrolled at the centre: no station keeps it
            else:
                row.ciphertext, row.key_fingerprint, row.scope = state.WITHDRAWN, "", "station"
    session.flush()
    erasure = None
    if deleted:
        erasure = Erasure(
            member_id=member_id,
            requested_by=actor[:100],
            reason="consent_withdrawn",
            requested_at=now,
            templates_deleted=deleted,
            snapshots_deleted=0,
            stations_pending=holders,
            completed_at=None if holders else now,
        )
        session.add(erasure)
        session.flush()
    cause = ERASURE_CAUSE.format(id=erasure.id) if erasure is not None else "consent"
    changes.member_changed(session, member_id, cause=cause)
    audit.record(
        session,
        actor=actor,
        action="consent_withdrawn",
        target_type="member",
        target_id=member_id,
        district_id=members.member_district(session, member),
        client=client,
        details={"face": face, "cross_station": cross_station, "templates_deleted": deleted},
    )
    return erasure


def confirm_applied(session: Session, *, station_id: str, applied_version: int) -> list[int]:
    """The station applied its roster up to `applied_version`: erasures whose change it now has
    are confirmed for it. Returns the erasure ids completed now."""
    return confirm_applied_many(session, {station_id: applied_version})


def confirm_applied_many(session: Session, applied: dict[str, int]) -> list[int]:
    """`confirm_applied` for several stations (one ingest batch): one query when nothing is pending."""
    pending = list(
        session.scalars(select(Erasure).where(Erasure.completed_at.is_(None)).order_by(Erasure.id))
    )
    completed: list[int] = []
    for erasure in pending:
        waiting = list(erasure.stations_pending or [])
        confirmed = []
        for station_id in waiting:
            if station_id not in applied:
                continue
            version = session.scalar(
                select(RosterChange.version)
                .where(
                    RosterChange.station_id == station_id,
                    RosterChange.cause == ERASURE_CAUSE.format(id=erasure.id),
                )
                .order_by(RosterChange.version.desc())
                .limit(1)
            )
            if version is None or applied[station_id] >= version:
                confirmed.append(station_id)
        if not confirmed:
            continue
        remaining = [s for s in waiting if s not in confirmed]
        values: dict[str, object] = {"stations_pending": remaining}
        if not remaining:
            values["completed_at"] = utc_now()
            completed.append(erasure.id)
        session.execute(update(Erasure).where(Erasure.id == erasure.id).values(**values))
    return completed
