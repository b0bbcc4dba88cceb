"""Reading the event log back: time arguments and per-day statistics (pure functions).

Days are the station's local days (`[schedule] timezone`), because "how many visits on Monday" means
Monday in Shanghai, not in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo


def local_time(ts_wall: float, tz: ZoneInfo) -> str:
    """A unix time as ISO 8601 in the station's zone, offset included (2026-11-24T08:00:00.000+08:00)."""
    return dt.datetime.fromtimestamp(float(ts_wall), tz).isoformat(timespec="milliseconds")


def zone_label(tz: ZoneInfo, now: dt.datetime | None = None) -> str:
    """'Asia/Shanghai, UTC+08:00': the zone and its offset now, for headers."""
    offset = (now or dt.datetime.now(dt.UTC)).astimezone(tz).strftime("%z")
    return f"{tz.key}, UTC{offset[:3]}:{offset[3:]}"


_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: float, tz: ZoneInfo) -> float:
    """'2026-11-24', '2026-11-24T08:00', '2026-11-24T08:00+08:00' (local zone if none), or '90m'/'7d'."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use 2026-11-24, 2026-11-24T08:00, "
            "2026-11-24T08:00+08:00, or 90m / 12h / 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


ENTRY_KINDS = frozenset({"entry"})
REFUSAL_KINDS = frozenset({"refused"})
ALARM_KINDS = frozenset(
    {"emergency", "door_forced", "door_held_open", "tamper", "lockout", "disk_full", "clock_jump"}
)


def stats_by_day(events: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Per local day: entries (visits), distinct members, refusals, exits, alarms; oldest day first."""
    days: dict[str, dict[str, Any]] = {}
    members: dict[str, set[str]] = {}
    for event in events:
        day = dt.datetime.fromtimestamp(float(event["ts_wall"]), tz).date().isoformat()
        row = days.setdefault(
            day,
            {
                "day": day,
                "entries": 0,
                "distinct_members": 0,
                "refusals": 0,
                "exits": 0,
                "alarms": 0,
                "by_method": {},
            },
        )
        kind = event["kind"]
        if kind in ENTRY_KINDS:
            row["entries"] += 1
            method = event.get("method") or "unknown"
            row["by_method"][method] = row["by_method"].get(method, 0) + 1
            if event.get("member_id"):
                members.setdefault(day, set()).add(str(event["member_id"]))
        elif kind in REFUSAL_KINDS:
            row["refusals"] += 1
        elif kind == "exit":
            row["exits"] += 1
        elif kind in ALARM_KINDS:
            row["alarms"] += 1
    for day, row in days.items():
        row["distinct_members"] = len(members.get(day, ()))
    return [days[d] for d in sorted(days)]
