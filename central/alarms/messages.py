"""What a notification says: an alarm (plain data) in, a title and a few lines (plain data) out.

Written for the people in a union office's group chat at 3 a.m.: what, where (station name,
address), when (local time), how bad, what to do, and the link to the dashboard. zh-CN by default,
English on request (`[alarms] language`). Vendor formats (`central.alarms.vendors`) wrap this.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

KIND_LABELS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "emergency": "紧急呼叫（驿站内有人按下紧急按钮）",
        "door_forced": "门被强行打开",
        "door_held_open": "门长时间未关",
        "tamper": "设备外壳被打开（防拆报警）",
        "camera_down": "摄像头故障",
        "station_offline": "驿站离线",
        "disk_low": "存储空间不足",
        "clock_wrong": "驿站时钟错误",
        "lockout": "连续识别失败，门禁已临时锁定",
        "repeated_refusals": "频繁被拒绝开门",
        "fleet_silent": "多数驿站同时失联（请检查消息服务器和中心）",
    },
    "en": {
        "emergency": "Emergency call (someone pressed the emergency button)",
        "door_forced": "Door forced open",
        "door_held_open": "Door held open",
        "tamper": "Enclosure opened (tamper switch)",
        "camera_down": "Camera down",
        "station_offline": "Station offline",
        "disk_low": "Disk space low",
        "clock_wrong": "Station clock wrong",
        "lockout": "Door locked out after repeated failed attempts",
        "repeated_refusals": "Many refusals at the door",
        "fleet_silent": "Most stations silent at once (check the broker and the centre)",
    },
}
SEVERITY_LABELS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {"emergency": "紧急", "critical": "严重", "warning": "警告"},
    "en": {"emergency": "EMERGENCY", "critical": "critical", "warning": "warning"},
}
PURPOSE_LABELS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "raised": "驿站告警",
        "again": "驿站告警再次发生",
        "escalated": "驿站告警升级",
        "cleared": "驿站告警已恢复",
        "acknowledged": "驿站告警已确认",
        "reminder": "驿站告警无人确认",
        "test": "驿站告警测试",
    },
    "en": {
        "raised": "Station alarm",
        "again": "Station alarm again",
        "escalated": "Station alarm escalated",
        "cleared": "Station alarm cleared",
        "acknowledged": "Station alarm acknowledged",
        "reminder": "Station alarm NOT acknowledged",
        "test": "Station alarm test",
    },
}
_TEXT: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "station": "驿站",
        "address": "地址",
        "time": "时间",
        "occurred": "发生时间（驿站时钟）",
        "alarm": "告警编号",
        "repeats": "期间又发生",
        "times": "次",
        "occurrences": "第 {n} 次发生",
        "reminder": "第 {n} 次提醒：仍无人确认",
        "cleared": "已于 {time} 恢复，仍需在管理后台确认",
        "acknowledged_by": "{who} 已确认：{note}",
        "action_emergency": "请立即联系驿站附近人员或拨打驿站联系电话，处理后在管理后台确认。",
        "action": "请在管理后台查看并确认。",
        "open": "打开管理后台",
        "contact": "驿站联系人",
        "detail": "详情",
        "test": "这是一条测试消息：告警通知已配置好。",
    },
    "en": {
        "station": "Station",
        "address": "Address",
        "time": "Time",
        "occurred": "Occurred (station clock)",
        "alarm": "Alarm",
        "repeats": "Repeated since",
        "times": "times",
        "occurrences": "occurrence {n}",
        "reminder": "Reminder {n}: still not acknowledged",
        "cleared": "Cleared at {time}; still to be acknowledged on the dashboard",
        "acknowledged_by": "Acknowledged by {who}: {note}",
        "action_emergency": "Call someone near the station or its contact now; acknowledge on the dashboard.",
        "action": "Look at it and acknowledge it on the dashboard.",
        "open": "Open the dashboard",
        "contact": "Station contact",
        "detail": "Detail",
        "test": "This is a test: alarm notifications are set up.",
    },
}
#: Where the staff dashboard is served; its alarm bar (with "acknowledge") is on every page.
DASHBOARD_PATH: Final = "/dashboard/"
#: Detail keys worth a line in a notification, in this order.
_DETAIL_KEYS: Final = ("reason", "detail", "silent_s", "open_s", "skew_s", "refusals", "silent", "hint")


@dataclass(frozen=True, slots=True)
class AlarmView:
    """Everything a notification may say about one alarm (from the alarm and its station rows)."""

    id: int
    kind: str
    severity: str
    state: str
    station_id: str | None
    station_name: str | None
    district_id: str | None
    address: str | None
    contact_phone: str | None
    raised_at: dt.datetime
    cleared_at: dt.datetime | None = None
    note: str | None = None
    acknowledged_by: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notice:
    """One message, vendor-neutral: `lines` are short plain-text lines; `link` may be None."""

    title: str
    lines: tuple[str, ...]
    severity: str
    purpose: str
    link: str | None
    mention_all: bool

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines, *((self.link,) if self.link else ())))


def compose(
    view: AlarmView,
    purpose: str,
    *,
    round: int = 0,
    language: str = "zh-CN",
    timezone: str = "Asia/Shanghai",
    dashboard_url: str | None = None,
) -> Notice:
    """The notice for `purpose` (raised, again, escalated, cleared, acknowledged, reminder, test)."""
    words = _TEXT.get(language, _TEXT["zh-CN"])
    zone = zoneinfo.ZoneInfo(timezone)
    kind = KIND_LABELS.get(language, KIND_LABELS["zh-CN"]).get(view.kind, view.kind)
    severity = SEVERITY_LABELS.get(language, SEVERITY_LABELS["zh-CN"]).get(view.severity, view.severity)
    heading = PURPOSE_LABELS.get(language, PURPOSE_LABELS["zh-CN"]).get(purpose, purpose)
    where = view.station_name or view.station_id or "—"
    title = (
        f"【{severity}】{heading}：{where} · {kind}"
        if language == "zh-CN"
        else (f"[{severity}] {heading}: {where} - {kind}")
    )
    lines: list[str] = []
    if purpose == "reminder":
        lines.append(words["reminder"].format(n=round))
    if purpose == "test":
        lines.append(words["test"])
    station = view.station_name or ""
    if view.station_id:
        station = (
            f"{station}（{view.station_id}）"
            if station and language == "zh-CN"
            else (f"{station} ({view.station_id})" if station else view.station_id)
        )
        lines.append(
            f"{words['station']}：{station}" if language == "zh-CN" else f"{words['station']}: {station}"
        )
    if view.address:
        lines.append(_pair(words["address"], view.address, language))
    lines.append(_pair(words["time"], _local(view.raised_at, zone), language))
    occurred = _time(view.details.get("occurred_at"))
    if occurred is not None and abs((occurred - view.raised_at).total_seconds()) > 120:
        lines.append(_pair(words["occurred"], _local(occurred, zone), language))
    lines.append(_pair(words["alarm"], f"#{view.id}", language))
    for key in _DETAIL_KEYS:
        value = view.details.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            lines.append(_pair(f"{words['detail']} {key}", str(value)[:200], language))
    repeats = view.details.get("repeats")
    if isinstance(repeats, int) and repeats > 0:
        lines.append(f"{words['repeats']} {repeats} {words['times']}")
    occurrences = view.details.get("occurrences")
    if purpose == "again" and isinstance(occurrences, int):
        lines.append(words["occurrences"].format(n=occurrences))
    if purpose == "cleared" and view.cleared_at is not None:
        lines.append(words["cleared"].format(time=_local(view.cleared_at, zone)))
    elif purpose == "acknowledged":
        lines.append(words["acknowledged_by"].format(who=view.acknowledged_by or "—", note=view.note or ""))
    elif purpose != "test":
        if view.contact_phone and view.severity == "emergency":
            lines.append(_pair(words["contact"], view.contact_phone, language))
        lines.append(words["action_emergency"] if view.severity == "emergency" else words["action"])
    link = None
    if dashboard_url:
        page = f"stations/{view.station_id}" if view.station_id else "live"
        link = f"{dashboard_url.rstrip('/')}{DASHBOARD_PATH}#/{page}"
    mention_all = view.severity == "emergency" and purpose in ("raised", "again", "escalated", "reminder")
    return Notice(title, tuple(lines), view.severity, purpose, link, mention_all)


def _pair(label: str, value: str, language: str) -> str:
    return f"{label}：{value}" if language == "zh-CN" else f"{label}: {value}"


def _local(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
