"""Finding and deleting event snapshots on behalf of the API.

Paths always come from event rows and always go through `SnapshotStore.resolve`, which accepts only
`YYYY-MM-DD/<uuid>.jpg` (or `.face.jpg`) inside the snapshot folder and refuses symlinks, so no
request can name a file of its own choosing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from edge.api.services import StationServices
from edge.snapshots import SnapshotStore
from edge.station import Station
from models import events as event_store

log = logging.getLogger(__name__)

Variant = Literal["frame", "face"]


def snapshot_store(services: StationServices) -> SnapshotStore | None:
    writer = services.snapshots
    return writer.store if writer is not None else None


def snapshot_path(store: SnapshotStore, relative: str, variant: Variant) -> Path | None:
    """The file of an event's snapshot (or its face crop) if it is on disk, else None."""
    if variant == "face":
        if not relative.endswith(".jpg"):
            return None
        relative = relative[: -len(".jpg")] + ".face.jpg"
    try:
        path = store.resolve(relative)
    except ValueError:
        return None
    return path if path.is_file() else None


def delete_member_snapshots(station: Station, store: SnapshotStore | None, member_id: str) -> int:
    """Delete the snapshot files of every event naming the member; the event rows stay (append-only).

    The store's running total notices the missing files at its next pruning pass.
    """
    if store is None:
        return 0
    with station.sessions() as session:
        paths = [
            e.snapshot
            for e in event_store.list_events(session, member_id=member_id, limit=event_store.LIST_LIMIT_MAX)
            if e.snapshot
        ]
    deleted = 0
    for relative in paths:
        variants: tuple[Variant, ...] = ("frame", "face")
        for variant in variants:
            path = snapshot_path(store, relative, variant)
            if path is None:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("snapshot not deleted", extra={"fields": {"path": relative, "error": str(exc)}})
                continue
            deleted += 1
    return deleted


def member_photo(station: Station, store: SnapshotStore | None, member_id: str) -> Path | None:
    """The newest picture of a member the station already keeps: the face crop (else the frame) of
    their latest event with a snapshot. Nothing new is stored for it: enrolment photos stay in
    memory (see captures), and these snapshots follow the disk budget and deletion like any other."""
    if store is None:
        return None
    with station.sessions() as session:
        events = event_store.list_events(session, member_id=member_id, limit=200, newest_first=True)
        relatives = [e.snapshot for e in events if e.snapshot]
    variants: tuple[Variant, ...] = ("face", "frame")
    for relative in relatives:
        for variant in variants:
            path = snapshot_path(store, relative, variant)
            if path is not None:
                return path
    return None
