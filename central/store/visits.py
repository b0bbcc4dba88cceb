"""Visits per station per day or week, counted in the station's own time zone, in the database.

The union's daily report counts what happened at a station on a *station-local* day, so a visit at
00:30 in Beijing belongs to that Beijing date, not to the UTC date before it. Counting is done in
SQL (a district has over a thousand stations: the rows never come to Python), grouped on the local
date computed as `ts + offset`. A time zone's offset changes at daylight-saving transitions, so the
period is first cut into segments of constant offset (`offset_segments`, pure) and each segment is
one grouped query; stations are grouped by time zone. That gives the same exact answer on SQLite
and PostgreSQL without either database's time-zone support.

Counted per station and period: entries (`kind = 'entry'`), distinct members among them, refusals
and emergency calls. A week starts on Monday (ISO 8601, as Chinese calendars and reports do).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from central.store.tables import Event, Station
from contract.schedule import DEFAULT_TIMEZONE, load_timezone

Period = Literal["day", "week"]
COUNTED_KINDS = ("entry", "refused", "emergency")
_PROBE = dt.timedelta(hours=6)  # DST transitions are hours apart at the very least


@dataclass(frozen=True, slots=True)
class VisitRow:
    station_id: str
    period_start: dt.date  # the day, or the Monday of the week
    entries: int
    members: int
    refused: int
    emergencies: int


def station_timezone(station: Station) -> str:
    """The IANA zone of the station's opening hours (the contract's default when unset)."""
    schedule: Any = station.schedule or {}
    name = schedule.get("timezone") if isinstance(schedule, dict) else None
    return name if isinstance(name, str) and name else DEFAULT_TIMEZONE


def local_day_bounds(tz: ZoneInfo, first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start of `first`, start of the day after `last`) in `tz`, as aware UTC datetimes."""
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
    return start, end


def offset_segments(
    tz: ZoneInfo, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """Cut [start, end) (aware, whole seconds) into pieces of constant UTC offset.

    Returns [(from, to, offset seconds)]. Probes every six hours and bisects to the second where
    the offset changes, so it needs no access to the zone's transition table.
    """

    def offset(at: int) -> int:
        delta = dt.datetime.fromtimestamp(at, dt.UTC).astimezone(tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def utc(at: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, dt.UTC)

    first, stop = int(start.timestamp()), int(end.timestamp())
    if stop <= first:
        return []
    step = int(_PROBE.total_seconds())
    segments: list[tuple[dt.datetime, dt.datetime, int]] = []
    seg_start, current, probe = first, offset(first), first
    while probe < stop - 1:
        check = min(probe + step, stop - 1)
        if offset(check) == current:
            probe = check
            continue
        lo, hi = probe, check  # offset(lo) == current != offset(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
        segments.append((utc(seg_start), utc(hi), current))
        seg_start, current, probe = hi, offset(hi), hi
    segments.append((utc(seg_start), utc(stop), current))
    return segments


def _local_period(session: Session, offset_s: int, period: Period) -> ColumnElement[Any]:
    """SQL for the station-local date (or its week's Monday) of `Event.ts` at a fixed offset."""
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone("UTC", Event.ts) + literal(dt.timedelta(seconds=offset_s))
        if period == "week":
            local = func.date_trunc("week", local)
        return cast(local, Date)
    # SQLite keeps UTC as naive text: date() shifts it; 'weekday 0' then '-6 days' is the Monday.
    modifiers = [f"{offset_s:+d} seconds"]
    if period == "week":
        modifiers += ["weekday 0", "-6 days"]
    return func.date(Event.ts, *modifiers)


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def period_start(day: dt.date, period: Period) -> dt.date:
    return day if period == "day" else day - dt.timedelta(days=day.weekday())


def periods(first: dt.date, last: dt.date, period: Period) -> list[dt.date]:
    """Every period start from `first` to `last` (inclusive), in order."""
    out: list[dt.date] = []
    day = period_start(first, period)
    step = dt.timedelta(days=1 if period == "day" else 7)
    while day <= last:
        out.append(day)
        day += step
    return out


def count_visits(
    session: Session,
    *,
    stations: Iterable[Station],
    first: dt.date,
    last: dt.date,
    period: Period = "day",
) -> list[VisitRow]:
    """Counts per (station, period) with at least one counted event, between the station-local days
    `first` and `last` inclusive, ordered by station then period. Periods without events are left
    out (a report that needs every day fills them with zeros: `periods`)."""
    by_zone: dict[str, list[str]] = defaultdict(list)
    for station in stations:
        by_zone[station_timezone(station)].append(station.station_id)
    totals: dict[tuple[str, dt.date], list[int]] = {}
    for zone_name, station_ids in by_zone.items():
        tz = load_timezone(zone_name)
        segments = offset_segments(tz, *local_day_bounds(tz, first, last))
        # One offset (the usual case, e.g. all of China): distinct members come from SQL. Across an
        # offset change a week or day may straddle two queries, so the member ids are united here.
        member_sets: dict[tuple[str, dt.date], set[str]] | None = (
            defaultdict(set) if len(segments) > 1 else None
        )
        for seg_start, seg_end, offset_s in segments:
            for chunk in _chunks(station_ids, 500):
                local = _local_period(session, offset_s, period).label("period")
                where = (
                    Event.station_id.in_(chunk),
                    Event.ts >= seg_start,
                    Event.ts < seg_end,
                    Event.kind.in_(COUNTED_KINDS),
                )
                query = (
                    select(Event.station_id, local, *_counts())
                    .where(*where)
                    .group_by(Event.station_id, local)
                )
                for station_id, when, entries, refused, emergencies, distinct in session.execute(query):
                    row = totals.setdefault((station_id, _as_date(when)), [0, 0, 0, 0])
                    row[0] += int(entries or 0)
                    row[1] += int(refused or 0)
                    row[2] += int(emergencies or 0)
                    row[3] += int(distinct or 0)
                if member_sets is not None:
                    ids = (
                        select(Event.station_id, local, Event.member_id)
                        .where(*where, Event.kind == "entry", Event.member_id.is_not(None))
                        .distinct()
                    )
                    for station_id, when, member_id in session.execute(ids):
                        member_sets[(station_id, _as_date(when))].add(member_id)
        if member_sets is not None:
            for key, row in totals.items():
                if key[0] in station_ids:
                    row[3] = len(member_sets.get(key, ()))
    return [
        VisitRow(station_id, when, values[0], values[3], values[1], values[2])
        for (station_id, when), values in sorted(totals.items())
    ]


def _counts() -> list[ColumnElement[Any]]:
    is_entry = Event.kind == "entry"
    return [
        func.sum(cast(case((is_entry, 1), else_=0), Integer)),
        func.sum(cast(case((Event.kind == "refused", 1), else_=0), Integer)),
        func.sum(cast(case((Event.kind == "emergency", 1), else_=0), Integer)),
        func.count(func.distinct(case((is_entry, Event.member_id)))),
    ]


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
