"""Events as the dashboard shows them (`EventView`): names, whether the door opened, the snapshot.

Both the REST lists (rows read from the database) and the live feed (notices from the live bus,
whose `data` carries the same public fields) go through `views`, so a live entry and the same entry
after a reload look the same. Names are looked up in one query per batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.store import members as member_store
from central.store import snapshots as snapshot_store
from central.store.tables import Event, Station
from central.web.schemas import GRANTED_KINDS, EventView, snapshot_url

_FIELDS = (
    "id",
    "station_id",
    "ts",
    "kind",
    "method",
    "member_id",
    "reason",
    "latency_ms",
    "snapshot",
    "details",
)


def row_fields(event: Event) -> dict[str, Any]:
    """The public fields of a stored event (what ingest publishes on the bus), plus received_at."""
    out = {name: getattr(event, name) for name in _FIELDS}
    out["received_at"] = event.received_at
    return out


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def station_directory(db: Session, station_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{station id: (name, district id)}."""
    ids = list(set(station_ids))
    if not ids:
        return {}
    rows = db.execute(
        select(Station.station_id, Station.name, Station.district_id).where(Station.station_id.in_(ids))
    )
    return {sid: (name, district) for sid, name, district in rows}


def views(
    db: Session,
    items: Sequence[Mapping[str, Any]],
    *,
    stations: Mapping[str, tuple[str, str]] | None = None,
) -> list[EventView]:
    """EventViews of event field mappings (`row_fields`, or a bus notice's data); items without a
    usable id, station or time are skipped (a notice is a hint, the database is the truth)."""
    usable = [i for i in items if isinstance(i.get("id"), str) and isinstance(i.get("station_id"), str)]
    names = member_store.member_names(
        db, member_ids=[i["member_id"] for i in usable if isinstance(i.get("member_id"), str)]
    )
    snapshots = snapshot_store.stored(db, event_ids=[i["id"] for i in usable])
    if stations is None:
        stations = station_directory(db, (i["station_id"] for i in usable))
    out: list[EventView] = []
    for item in usable:
        ts = _time(item.get("ts"))
        if ts is None:
            continue
        event_id, station_id = item["id"], item["station_id"]
        snapshot = snapshots.get(event_id)
        if snapshot is not None:
            state = "expired" if snapshot.deleted_at is not None else "ok"
        else:
            state = "pending" if item.get("snapshot") else "none"
        name, district = stations.get(station_id, (None, None))
        details = item.get("details")
        member_id = item.get("member_id") if isinstance(item.get("member_id"), str) else None
        kind = str(item.get("kind") or "")
        out.append(
            EventView(
                id=event_id,
                station_id=station_id,
                ts=ts,
                kind=kind,
                method=_str(item.get("method")),
                member_id=member_id,
                reason=_str(item.get("reason")),
                latency_ms=_float(item.get("latency_ms")),
                snapshot=_str(item.get("snapshot")),
                details=details if isinstance(details, dict) else {},
                district_id=district,
                station_name=name,
                member_name=names.get(member_id) if member_id else None,
                granted=kind in GRANTED_KINDS,
                received_at=_time(item.get("received_at")),
                snapshot_state=state,
                snapshot_url=snapshot_url(event_id) if state == "ok" else None,
            )
        )
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
