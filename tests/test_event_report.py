"""Per-day statistics count visits: an installer's door test is no visit, whichever way it was stored."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from edge.event_report import stats_by_day

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI).timestamp()


def event(
    kind: str, method: str | None = None, member_id: str | None = None, **details: Any
) -> dict[str, Any]:
    return {"ts_wall": NOON, "kind": kind, "method": method, "member_id": member_id, "details": details}


def test_door_tests_are_not_entries() -> None:
    (day,) = stats_by_day(
        [
            event("entry", "face", "m-1"),
            event("door_test", "remote", by="installer:anna", via="installer_page"),
            # Stored before "door_test" existed: an entry opened from the installer page.
            event("entry", "remote", by="installer:anna", via="installer_page"),
            # A remote opening by the centre's staff lets someone in: it stays an entry.
            event("entry", "remote", by="staff:li"),
            event("refused", "qr", reason="wrong_station"),
        ],
        SHANGHAI,
    )
    assert day["day"] == "2026-11-24"
    assert day["entries"] == 2 and day["by_method"] == {"face": 1, "remote": 1}
    assert day["distinct_members"] == 1 and day["refusals"] == 1 and day["alarms"] == 0
