"""Alarm rules: what a station said (plain data) in, what must be raised or cleared (plain data) out.

Nothing here reads a clock, the database or the network: the engine (`central.alarms.engine`)
hands in facts with the times they were observed and applies the returned actions through
`central.store.alarms`. So every rule is tested on plain values (tests/test_alarm_rules.py).

Two families of alarms (docs/ALARMS.md has the table):

* **Incidents** (emergency call, door forced, tamper, lockout, repeated refusals): something
  happened. They never clear by themselves; further occurrences while the alarm is open are counted
  on it (one alarm per station and kind, `dedup_key`), and after it was acknowledged the next
  occurrence raises a new one.
* **Conditions** (station offline, camera down, door held open, disk low, clock wrong): something
  *is* wrong. The opposite observation (station online, camera up, door closed, disk ok, clock ok)
  returns a `Clear`, which marks the alarm cleared but leaves it open until someone acknowledges it
  (staff must learn that a station was offline for twenty minutes at 3 a.m. even if it came back).
  A condition that returns before the acknowledgement re-opens the same alarm (a flapping station
  makes one alarm with a count, not a flood). An acknowledged condition that persists is not raised
  again by every heartbeat: only a *transition* (an event such as `camera_down`) or a new occurrence
  after it cleared raises a new one.

Every action carries a `dedup_key` ("<kind>:<station_id>"); the store keeps at most one open alarm
per key (the partial unique index `uq_alarms_open_dedup_key`).
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Severity = Literal["emergency", "critical", "warning"]

#: Severity order, lowest first (a disk that goes from "warn" to "fail" escalates its alarm).
SEVERITY_RANK: Final[dict[str, int]] = {"warning": 0, "critical": 1, "emergency": 2}

# -- alarm kinds ------------------------------------------------------------------------------------
EMERGENCY: Final = "emergency"
DOOR_FORCED: Final = "door_forced"
DOOR_HELD_OPEN: Final = "door_held_open"
TAMPER: Final = "tamper"
CAMERA_DOWN: Final = "camera_down"
STATION_OFFLINE: Final = "station_offline"
DISK_LOW: Final = "disk_low"
CLOCK_WRONG: Final = "clock_wrong"
LOCKOUT: Final = "lockout"
REPEATED_REFUSALS: Final = "repeated_refusals"
#: Raised instead of one station_offline per station when most of the fleet falls silent at once:
#: that is the broker or the centre's ingest failing, not hundreds of stations.
FLEET_SILENT: Final = "fleet_silent"

SEVERITY: Final[dict[str, Severity]] = {
    EMERGENCY: "emergency",
    DOOR_FORCED: "critical",
    TAMPER: "critical",
    DOOR_HELD_OPEN: "critical",
    CAMERA_DOWN: "critical",
    STATION_OFFLINE: "critical",
    FLEET_SILENT: "critical",
    DISK_LOW: "warning",
    CLOCK_WRONG: "warning",
    LOCKOUT: "warning",
    REPEATED_REFUSALS: "warning",
}
ALARM_KINDS: Final = frozenset(SEVERITY)
CONDITIONS: Final = frozenset({STATION_OFFLINE, CAMERA_DOWN, DOOR_HELD_OPEN, DISK_LOW, CLOCK_WRONG, TAMPER})

# -- the station's event kinds the rules read (edge/access.py, door/controller.py, edge/app.py) -----
EV_EMERGENCY: Final = "emergency"
EV_DOOR_FORCED: Final = "door_forced"
EV_DOOR_HELD_OPEN: Final = "door_held_open"
EV_DOOR_CLOSED_AFTER_HELD: Final = "door_closed_after_held"
EV_TAMPER: Final = "tamper"
EV_CAMERA_DOWN: Final = "camera_down"
EV_CAMERA_UP: Final = "camera_up"
EV_LOCKOUT: Final = "lockout"
EV_REFUSED: Final = "refused"
#: Event kinds that raise or clear an alarm by themselves (the sweep looks for exactly these).
EVENT_KINDS: Final = frozenset(
    {
        EV_EMERGENCY,
        EV_DOOR_FORCED,
        EV_DOOR_HELD_OPEN,
        EV_DOOR_CLOSED_AFTER_HELD,
        EV_TAMPER,
        EV_CAMERA_DOWN,
        EV_CAMERA_UP,
        EV_LOCKOUT,
    }
)
#: Reasons of refusals that are not an attempt to get in and must not count toward an alarm:
#: `lockout` is the door refusing everyone while locked out (the lockout alarm covers it).
NOT_COUNTED_REFUSALS: Final = frozenset({"lockout"})


#: Bounds of what the bus may carry (the contract's and the events table's).
EVENT_ID_MAX: Final = 36
KIND_MAX: Final = 64
STATION_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def dedup_key(kind: str, station_id: str | None) -> str:
    return f"{kind}:{station_id or '*'}"


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise (or count on the open) alarm `kind` at `station_id`.

    `transition`: the observation is a change (an event such as `camera_down`), not a level seen in
    a heartbeat; only a transition raises a condition again while an acknowledged alarm of the same
    key is still in force. `quiet_s`: no new alarm when one with this key was raised less than
    this long ago (rate alarms such as repeated refusals would otherwise re-raise right after an
    acknowledgement, for every further refusal in the window). `occurred_at`: when it happened by
    the station's clock, if known.
    """

    kind: str
    station_id: str | None
    severity: Severity
    details: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    occurred_at: dt.datetime | None = None
    transition: bool = True
    quiet_s: float = 0.0

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.kind, self.station_id)

    @property
    def condition(self) -> bool:
        return self.kind in CONDITIONS


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition `kind` at `station_id` is over (the alarm stays open until acknowledged)."""

    kind: str
    station_id: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    occurred_at: dt.datetime | None = None

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.kind, self.station_id)


Action = Raise | Clear


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The `[alarms]` numbers the rules use (the engine builds it from the configuration)."""

    offline_after_s: float = 180.0
    clock_skew_max_s: float = 120.0
    refusals_threshold: int = 20
    refusals_window_s: float = 600.0
    #: Two clock measurements must be at least this far apart to confirm each other (a burst of
    #: heartbeats queued by the broker while the centre was away arrives within a second).
    clock_confirm_gap_s: float = 20.0
    #: ... and agree with each other within this many seconds.
    clock_agree_s: float = 10.0
    #: Most of the fleet silent at once (at least `fleet_silent_min` stations, this fraction of
    #: those that were online): one `fleet_silent` alarm instead of one per station.
    fleet_silent_fraction: float = 0.5
    fleet_silent_min: int = 5


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFacts:
    """The fields of a stored event the rules read (the live bus's `event` data, or the row)."""

    id: str
    station_id: str
    kind: str
    ts: dt.datetime | None = None
    method: str | None = None
    member_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EventFacts | None:
        """From the live bus's `event` data; None when an essential field is missing or malformed
        (the bus carries what ingest stored, but the rules must not crash on a surprise)."""
        event_id, station_id, kind = data.get("id"), data.get("station_id"), data.get("kind")
        if not (isinstance(event_id, str) and 0 < len(event_id) <= EVENT_ID_MAX):
            return None
        if not (isinstance(station_id, str) and STATION_ID_RE.fullmatch(station_id)):
            return None
        if not (isinstance(kind, str) and 0 < len(kind) <= KIND_MAX):
            return None
        details = data.get("details")
        return cls(
            id=str(event_id),
            station_id=str(station_id),
            kind=str(kind),
            ts=parse_time(data.get("ts")),
            method=_str_or_none(data.get("method")),
            member_id=_str_or_none(data.get("member_id")),
            reason=_str_or_none(data.get("reason")),
            details=details if isinstance(details, Mapping) else {},
        )


def from_event(event: EventFacts) -> list[Action]:
    """What one event raises or clears (refusals are counted separately: `RefusalWindow`)."""
    base: dict[str, Any] = {"event_kind": event.kind}
    if event.ts is not None:
        base["event_ts"] = event.ts.isoformat()
    sid = event.station_id

    def raise_(kind: str, **extra: Any) -> Raise:
        return Raise(
            kind,
            sid,
            SEVERITY[kind],
            {**base, **extra},
            event_id=event.id,
            occurred_at=event.ts,
        )

    kind = event.kind
    if kind == EV_EMERGENCY:
        return [raise_(EMERGENCY, method=event.method, local_alarm=_get(event.details, "alarm"))]
    if kind == EV_DOOR_FORCED:
        return [raise_(DOOR_FORCED)]
    if kind == EV_DOOR_HELD_OPEN:
        return [raise_(DOOR_HELD_OPEN, open_s=_number(event.details.get("open_s")))]
    if kind == EV_DOOR_CLOSED_AFTER_HELD:
        return [
            Clear(
                DOOR_HELD_OPEN,
                sid,
                {**base, "open_s": _number(event.details.get("open_s"))},
                event_id=event.id,
                occurred_at=event.ts,
            )
        ]
    if kind == EV_TAMPER:
        return [raise_(TAMPER, at_start=_get(event.details, "at_start"))]
    if kind == EV_CAMERA_DOWN:
        return [raise_(CAMERA_DOWN, reason=event.reason)]
    if kind == EV_CAMERA_UP:
        return [Clear(CAMERA_DOWN, sid, base, event_id=event.id, occurred_at=event.ts)]
    if kind == EV_LOCKOUT:
        return [
            raise_(
                LOCKOUT,
                reason=event.reason,
                lockout_s=_number(event.details.get("lockout_s")),
                trigger_event=_str_or_none(event.details.get("trigger_event")),
            )
        ]
    return []


def counts_as_refusal(event: EventFacts) -> bool:
    return event.kind == EV_REFUSED and event.reason not in NOT_COUNTED_REFUSALS


def refusals_alarm(
    station_id: str, count: int, latest: dt.datetime | None, settings: RuleSettings
) -> Raise | None:
    """`count` refusals at one station within the window ending at `latest`: an alarm at the
    threshold (people trying face after face or code after code at an unattended door)."""
    if count < settings.refusals_threshold:
        return None
    return Raise(
        REPEATED_REFUSALS,
        station_id,
        SEVERITY[REPEATED_REFUSALS],
        {
            "refusals": count,
            "window_s": settings.refusals_window_s,
            "latest_ts": None if latest is None else latest.isoformat(),
        },
        occurred_at=latest,
        quiet_s=settings.refusals_window_s,
    )


class RefusalWindow:
    """Refusals per station over the last `refusals_window_s` of the *station's* clock.

    Fed from the live bus (one call per refused event), so the common case needs no query. It is
    memory only: after a restart the engine's database sweep counts from the table instead, so a
    burst that straddles a restart still raises its alarm.
    """

    def __init__(self, settings: RuleSettings, max_stations: int = 100_000) -> None:
        self._settings = settings
        self._max_stations = max_stations
        self._times: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def add(self, station_id: str, ts: dt.datetime) -> Raise | None:
        window = self._settings.refusals_window_s
        stamp = ts.timestamp()
        times = self._times.pop(station_id, None) or collections.deque()
        times.append(stamp)
        newest = max(times)
        while times and newest - times[0] >= window:
            times.popleft()
        self._times[station_id] = times  # most recently used last
        while len(self._times) > self._max_stations:
            self._times.popitem(last=False)
        count = sum(1 for t in times if newest - t < window)
        return refusals_alarm(station_id, count, ts, self._settings)


# -- station status ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StationFacts:
    """A station's latest status as the centre stored it (the `stations` row).

    `last_seen_at` / `status_received_at`: when the centre last heard from the station at all /
    received its latest status (centre's clock). `health`: the latest heartbeat's health (stale
    while the station is offline, so the health rules are skipped then).
    """

    station_id: str
    active: bool
    state: str
    last_seen_at: dt.datetime | None
    status_received_at: dt.datetime | None
    health: Mapping[str, Any] | None


def station_actions(
    station: StationFacts, now: dt.datetime, settings: RuleSettings, clock: ClockJudge | None = None
) -> list[Action]:
    """What a station's latest status raises or clears: offline (last will or missed heartbeats),
    camera, disk, clock, enclosure. Level observations (`transition=False`): evaluating the same
    row twice changes nothing."""
    sid = station.station_id
    if not station.active or station.state == "unknown":
        return []  # not installed yet, or decommissioned: nobody expects to hear from it
    offline = offline_reason(station, now, settings)
    if offline is not None:
        details: dict[str, Any] = {"reason": offline}
        if station.last_seen_at is not None:
            details["last_seen_at"] = station.last_seen_at.isoformat()
            details["silent_s"] = round((now - station.last_seen_at).total_seconds())
        return [Raise(STATION_OFFLINE, sid, SEVERITY[STATION_OFFLINE], details, transition=False)]
    actions: list[Action] = [Clear(STATION_OFFLINE, sid, {"reason": "online"})]
    health = station.health if isinstance(station.health, Mapping) else {}
    actions.extend(_camera(sid, health.get("camera")))
    actions.extend(_disk(sid, health.get("disk")))
    actions.extend(_tamper(sid, health.get("door")))
    clock_action = _clock_status(sid, health.get("clock"))
    if clock_action is None and clock is not None and station.status_received_at is not None:
        clock_action = clock.observe(sid, station.status_received_at, health.get("clock"))
    if clock_action is not None:
        actions.append(clock_action)
    return actions


def offline_reason(station: StationFacts, now: dt.datetime, settings: RuleSettings) -> str | None:
    """Why the station counts as offline: `last_will` (the broker published its will, or it
    stopped cleanly), `missed_heartbeats` (nothing heard for `offline_after_s`, whether ingest
    has marked the row offline for it or not), or None."""
    silent_since = station.last_seen_at
    if station.state == "offline":
        # Ingest marks a silent station offline itself (`last_status_at` = when it did, long after
        # the last heartbeat); a last will arrives within a keepalive and a heartbeat of it.
        marked = station.status_received_at
        if silent_since is not None and marked is not None:
            if (marked - silent_since).total_seconds() >= settings.offline_after_s:
                return "missed_heartbeats"
        return "last_will"
    if station.state == "online" and silent_since is not None:
        if (now - silent_since).total_seconds() > settings.offline_after_s:
            return "missed_heartbeats"
    return None


def fleet_silent(stations: Iterable[StationFacts], now: dt.datetime, settings: RuleSettings) -> Raise | None:
    """One alarm when most stations that claim to be online have all gone silent at once."""
    heard = [
        s
        for s in stations
        if s.active and s.last_seen_at is not None and offline_reason(s, now, settings) != "last_will"
    ]
    silent = [s for s in heard if offline_reason(s, now, settings) == "missed_heartbeats"]
    online = heard
    if len(silent) < settings.fleet_silent_min or len(silent) < settings.fleet_silent_fraction * len(online):
        return None
    newest = max(s.last_seen_at for s in silent if s.last_seen_at is not None)
    return Raise(
        FLEET_SILENT,
        None,
        SEVERITY[FLEET_SILENT],
        {
            "silent": len(silent),
            "online_before": len(online),
            "last_heard_at": newest.isoformat(),
            "hint": "the broker or the centre's ingest is down, or the centre lost its network",
        },
        transition=False,
    )


def _camera(sid: str, camera: Any) -> list[Action]:
    if not isinstance(camera, Mapping):
        return []
    state = camera.get("state")
    if state == "down":
        reason = _str_or_none(camera.get("reason"))
        return [Raise(CAMERA_DOWN, sid, SEVERITY[CAMERA_DOWN], {"reason": reason}, transition=False)]
    if state == "up":
        return [Clear(CAMERA_DOWN, sid, {"reason": "camera up"})]
    return []  # "starting", "ended" (a demo video), unknown words: no opinion


def _disk(sid: str, disk: Any) -> list[Action]:
    if not isinstance(disk, Mapping):
        return []
    status = disk.get("status")
    detail = _str_or_none(disk.get("detail"))
    if status in ("warn", "fail"):
        severity: Severity = "critical" if status == "fail" else "warning"
        return [Raise(DISK_LOW, sid, severity, {"status": status, "detail": detail}, transition=False)]
    if status == "ok":
        return [Clear(DISK_LOW, sid, {"detail": detail})]
    return []


def _tamper(sid: str, door: Any) -> list[Action]:
    if not isinstance(door, Mapping):
        return []
    tampered = door.get("tampered")
    if tampered is True:
        return [Raise(TAMPER, sid, SEVERITY[TAMPER], {"source": "heartbeat"}, transition=False)]
    if tampered is False:
        return [Clear(TAMPER, sid, {"reason": "enclosure closed"})]
    return []  # None: no tamper switch fitted


def _clock_status(sid: str, clock: Any) -> Action | None:
    """The station's own verdict: "fail" means its time is before the software was built."""
    if isinstance(clock, Mapping) and clock.get("status") == "fail":
        return Raise(
            CLOCK_WRONG,
            sid,
            SEVERITY[CLOCK_WRONG],
            {"reason": "station_check", "detail": _str_or_none(clock.get("detail"))},
            transition=False,
        )
    return None


class ClockJudge:
    """Whether a station's clock is off, from `health.clock.station_time` against the centre's
    receive time of the same heartbeat.

    One measurement proves nothing: a heartbeat queued by the broker while the centre was down
    arrives late and makes a good clock look behind. So a clock is judged wrong only when two
    measurements received at least `clock_confirm_gap_s` apart are both off by more than
    `clock_skew_max_s` and agree with each other within `clock_agree_s` (a wrong clock is off by
    a steady amount; queued heartbeats sent a minute apart and received together are not), and
    right again as soon as one measurement is within the bound. Judging the same heartbeat twice
    (live bus, then the sweep) gives the same verdict.
    """

    def __init__(self, settings: RuleSettings, max_stations: int = 100_000) -> None:
        self._settings = settings
        self._max_stations = max_stations
        # station -> (anchor received_at, anchor skew, last judged received_at, its verdict)
        self._state: collections.OrderedDict[str, tuple[dt.datetime, float, dt.datetime, Action | None]] = (
            collections.OrderedDict()
        )

    def observe(self, station_id: str, received_at: dt.datetime, clock: Any) -> Action | None:
        station_time = parse_time(clock.get("station_time")) if isinstance(clock, Mapping) else None
        if station_time is None:
            return None
        state = self._state.pop(station_id, None)
        if state is not None and state[2] == received_at:
            self._state[station_id] = state
            return state[3]
        skew = (station_time - received_at).total_seconds()
        anchor = None if state is None else (state[0], state[1])
        verdict, anchor = self._judge(station_id, received_at, skew, anchor)
        self._state[station_id] = (anchor[0], anchor[1], received_at, verdict)
        while len(self._state) > self._max_stations:
            self._state.popitem(last=False)
        return verdict

    def _judge(
        self, station_id: str, received_at: dt.datetime, skew: float, anchor: tuple[dt.datetime, float] | None
    ) -> tuple[Action | None, tuple[dt.datetime, float]]:
        settings = self._settings
        limit = settings.clock_skew_max_s
        here = (received_at, skew)
        if abs(skew) <= limit:
            return Clear(CLOCK_WRONG, station_id, {"skew_s": round(skew, 1)}), here
        if anchor is None or received_at < anchor[0]:
            return None, here
        if (received_at - anchor[0]).total_seconds() < settings.clock_confirm_gap_s:
            return None, anchor  # keep the older measurement: a burst must not confirm itself
        agree = abs(anchor[1]) > limit and abs(skew - anchor[1]) <= settings.clock_agree_s
        if not agree:
            return None, here
        details = {"reason": "skew", "skew_s": round(skew, 1), "limit_s": limit}
        return Raise(CLOCK_WRONG, station_id, SEVERITY[CLOCK_WRONG], details, transition=False), here


# -- small parsing helpers --------------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """An aware datetime from an ISO-8601 string or a datetime; None for anything else."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and 0 < len(value) <= 64:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _str_or_none(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _get(details: Mapping[str, Any], key: str) -> Any:
    value = details.get(key)
    return value if isinstance(value, bool | int | float | str) or value is None else None
