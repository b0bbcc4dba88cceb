"""The one place the dashboard's routes tell the roster that staff changed a member or a station.

Seam 4 of the centre's plan: the roster master (`central/roster/`) turns a change into versioned
`roster_changes` rows for every affected station, inside the request's transaction, so the staff
action, its roster rows and its audit entry commit together. The routes call only these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from central import roster
from central.snapshot_files import SnapshotFiles


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    templates_deleted: int
    snapshots_deleted: int
    stations_pending: list[str]


def member_changed(db: Session, member_id: str) -> None:
    """A member's data, status, validity, groups or consents changed: tell every affected station."""
    roster.member_changed(db, member_id)


def station_changed(db: Session, station_id: str) -> None:
    """A station's groups or hours changed: its roster (who may enter) may have changed."""
    roster.station_changed(db, station_id)


def withdraw_consent(
    db: Session, member_id: str, actor: str, *, face: bool, cross_station: bool, client: str | None
) -> int:
    """Withdrawn face consent deletes the member's templates at the centre and on every station;
    withdrawn cross-station consent keeps a template only at the station that enrolled it.
    Returns how many templates the centre deleted."""
    erasure = roster.withdraw_consent(
        db, member_id, actor, face=face, cross_station=cross_station, client=client
    )
    return erasure.templates_deleted if erasure is not None else 0


def remove_template(
    db: Session, member_id: str, template_id: str, actor: str, *, client: str | None
) -> int | None:
    """Staff remove one face template: gone at the centre and at every station that holds it
    (audited by the roster). None when the member has no such template."""
    return roster.remove_template(db, member_id, template_id, actor, client=client)


def erase_member(
    db: Session, member_id: str, actor: str, *, reason: str, snapshots_dir: Path, client: str | None
) -> ErasureOutcome:
    """Erase a member everywhere: the roster removes them from every station; the centre keeps
    only the fact of the erasure (who asked, when, how much went), never the person. The roster
    writes the audit entry."""
    erasure = roster.erase_member(
        db, member_id, actor, reason=reason, files=SnapshotFiles(snapshots_dir), client=client
    )
    return ErasureOutcome(
        erasure.templates_deleted, erasure.snapshots_deleted, list(erasure.stations_pending)
    )
