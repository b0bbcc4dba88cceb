"""The visits report as a table, and that table as CSV or Excel (what unions pass upward).

Every station in the report gets a row for every period, zeros included: a report that leaves out
a quiet day looks like a missing day. Text that a spreadsheet would run as a formula (a station
name beginning with `=`, `+`, `-`, `@`, tab or carriage return) is prefixed with an apostrophe, in
both formats (OWASP "CSV injection"; openpyxl would even store such a string as a formula).
CSV is UTF-8 with a byte-order mark, so Excel in a Chinese locale opens it as UTF-8, not GBK.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from central.store.visits import Period, VisitRow

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

HEADERS = {
    "zh-CN": {
        "day": "日期",
        "week": "周（周一）",
        "station_id": "驿站编号",
        "station": "驿站名称",
        "district": "区域",
        "entries": "进站人次",
        "members": "进站人数",
        "refused": "拒绝次数",
        "emergencies": "紧急呼叫",
        "sheet": "到访统计",
        "title": "驿站到访统计 {first} 至 {last}（驿站当地日期）",
    },
    "en": {
        "day": "Date",
        "week": "Week (Monday)",
        "station_id": "Station ID",
        "station": "Station",
        "district": "District",
        "entries": "Entries",
        "members": "Members",
        "refused": "Refused",
        "emergencies": "Emergency calls",
        "sheet": "Visits",
        "title": "Station visits {first} to {last} (station-local dates)",
    },
}


@dataclass(frozen=True, slots=True)
class StationLabel:
    station_id: str
    name: str
    district_id: str


def safe_text(value: str) -> str:
    """`value`, made inert for spreadsheets (never evaluated as a formula)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def table(
    rows: Sequence[VisitRow],
    stations: Sequence[StationLabel],
    periods: Sequence[dt.date],
    period: Period,
    lang: str,
) -> tuple[list[str], list[list[object]]]:
    """(header, body): one line per period and station, zeros filled, in period then station order."""
    words = HEADERS.get(lang, HEADERS["zh-CN"])
    header = [words[period], words["station_id"], words["station"], words["district"]] + [
        words[k] for k in ("entries", "members", "refused", "emergencies")
    ]
    counts = {(r.station_id, r.period_start): r for r in rows}
    body: list[list[object]] = []
    for start in periods:
        for station in stations:
            row = counts.get((station.station_id, start))
            body.append(
                [
                    start.isoformat(),
                    safe_text(station.station_id),
                    safe_text(station.name),
                    safe_text(station.district_id),
                    row.entries if row else 0,
                    row.members if row else 0,
                    row.refused if row else 0,
                    row.emergencies if row else 0,
                ]
            )
    return header, body


def to_csv(header: Sequence[str], body: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(body)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(
    header: Sequence[str], body: Sequence[Sequence[object]], *, lang: str, first: dt.date, last: dt.date
) -> bytes:
    words = HEADERS.get(lang, HEADERS["zh-CN"])
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = words["sheet"]
    sheet.append([words["title"].format(first=first.isoformat(), last=last.isoformat())])
    sheet["A1"].font = Font(bold=True)
    sheet.append(list(header))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for line in body:
        sheet.append(list(line))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever the text
    sheet.freeze_panes = "A3"
    for index, width in enumerate((12, 16, 24, 12, 10, 10, 10, 10), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
