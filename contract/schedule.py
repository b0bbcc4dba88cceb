"""When the station is open: a weekly timetable in the station's time zone, with holiday exceptions.

Pure logic: nothing here reads the clock. The door asks `OpeningHours.is_open(at)` with the time it
already took, and the status screen asks `next_change(at)` ("opens at 06:00").

Value syntax, for a weekday (`weekly`) or a date (`holidays`):

* `"24h"`: open the whole day, from 00:00 to the next 00:00.
* `"closed"` (or an empty list): no range starts on that day.
* a list of ranges `"HH:MM-HH:MM"` (a single range may also be given as a bare string). Ranges are
  half-open: "08:00-20:00" is open at 08:00 and closed at 20:00. "24:00" is allowed as an end only.
  A range whose end is not after its start runs overnight into the next day: "22:00-06:00" on
  Monday is open from Monday 22:00 to Tuesday 06:00, *even if Tuesday is "closed"*; the equal case
  "07:00-07:00" is a full 24 hours from 07:00. Overlapping ranges simply add up.

A day's value describes the ranges that *start* on that day. A holiday (`"YYYY-MM-DD"`) replaces the
weekly value of that date only: an overnight range of the previous day still runs into the
holiday's morning, and the holiday's own overnight range runs into the next day's morning. So to
close from midnight before a holiday that follows a "22:00-06:00" evening, also give the evening
before as a holiday ("22:00-24:00"). A weekday missing from `weekly` is closed.

`always_open` (the default: these are 24-hour stations) ignores the timetable entirely; giving
`weekly` or `holidays` together with `always_open = true` is refused, so a timetable is never
silently not applied. A timetable under which the station never opens is refused too.

Time zones and daylight saving time: ranges are wall-clock times in `timezone` (an IANA name,
default "Asia/Shanghai"). A boundary takes effect at the first instant the station's clock shows
that time on that date. When clocks go back, a range therefore ends at the first of the two
moments showing its end time and never re-opens during the repeated hour; when clocks go forward
over a boundary (02:30 on a night that jumps from 02:00 to 03:00) it takes effect at the jump. A
range that lies wholly inside the skipped hour is empty that night.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAY: Final = "24h"
CLOSED: Final = "closed"
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
MINUTES_PER_DAY: Final = 24 * 60
MAX_RANGES_PER_DAY: Final = 24
NEXT_CHANGE_HORIZON: Final = dt.timedelta(days=8)

DayValue: TypeAlias = str | Sequence[str]

_RANGE_RE: Final = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_UTC: Final = dt.UTC
_CACHE_DAYS: Final = 64


@dataclass(frozen=True, slots=True)
class TimeRange:
    """One opening range, in minutes after local midnight of the day it starts on.

    `end_min` is after `start_min` and at most 24 h later; above 1440 the range is overnight and
    ends on the next day at `end_min - 1440`.
    """

    start_min: int
    end_min: int

    @property
    def overnight(self) -> bool:
        """True when the range ends on the next day (22:00-06:00), not at or before midnight."""
        return self.end_min > MINUTES_PER_DAY

    def __str__(self) -> str:
        end = self.end_min - MINUTES_PER_DAY if self.overnight else self.end_min
        return f"{_hhmm(self.start_min)}-{_hhmm(end)}"


DaySpec: TypeAlias = tuple[TimeRange, ...]

_FULL_DAY: Final[DaySpec] = (TimeRange(0, MINUTES_PER_DAY),)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def load_timezone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ValueError naming it (a typo must stop start-up, not become UTC)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"timezone must be an IANA zone name such as 'Asia/Shanghai', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as 'Asia/Shanghai')") from None


def parse_day_name(name: str) -> int:
    """Weekday index (Monday 0) of "mon".."sun", any letter case; ValueError otherwise."""
    key = name.strip().lower() if isinstance(name, str) else ""
    if key not in DAY_NAMES:
        raise ValueError(f"unknown day {name!r} (use one of {', '.join(DAY_NAMES)})")
    return DAY_NAMES.index(key)


def parse_holiday_date(text: str) -> dt.date:
    """The date of a holiday key; only the plain "YYYY-MM-DD" form is accepted."""
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text.strip()):
        raise ValueError(f"holiday {text!r} is not a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"holiday {text!r} is not a real calendar date") from None


def parse_range(text: str, *, where: str) -> TimeRange:
    """Parse one "HH:MM-HH:MM" range; the ValueError names `where` (e.g. "weekly.mon")."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: {text!r} is not a time range written 'HH:MM-HH:MM'")
    found = _RANGE_RE.fullmatch(text)
    if found is None:
        raise ValueError(f"{where}: {text!r} is not a time range written 'HH:MM-HH:MM' (e.g. '08:00-20:00')")
    sh, sm, eh, em = (int(part) for part in found.groups())
    if sh > 23 or sm > 59:
        raise ValueError(f"{where}: {text!r} starts at {sh:02d}:{sm:02d}, not a time of day (00:00-23:59)")
    if (eh > 23 or em > 59) and (eh, em) != (24, 0):
        raise ValueError(f"{where}: {text!r} ends at {eh:02d}:{em:02d}, not a time of day (00:00-24:00)")
    start = sh * 60 + sm
    end = eh * 60 + em
    if end <= start:
        end += MINUTES_PER_DAY
    return TimeRange(start, end)


def parse_day_value(value: DayValue, *, where: str) -> DaySpec:
    """Parse a day's value ("24h", "closed", one range or a list of ranges); errors name `where`."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word == ALL_DAY:
            return _FULL_DAY
        if word == CLOSED:
            return ()
        return (parse_range(value, where=where),)
    if not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected '24h', 'closed' or a list of 'HH:MM-HH:MM', got {value!r}")
    if len(value) > MAX_RANGES_PER_DAY:
        raise ValueError(f"{where}: {len(value)} ranges given, at most {MAX_RANGES_PER_DAY} are allowed")
    ranges: list[TimeRange] = []
    for item in value:
        if isinstance(item, str) and item.strip().lower() in (ALL_DAY, CLOSED):
            raise ValueError(f"{where}: {item!r} must be the whole value, not an item of a list of ranges")
        ranges.append(parse_range(item, where=where))
    return tuple(sorted(set(ranges), key=lambda r: (r.start_min, r.end_min)))


def parse_weekly(weekly: Mapping[str, DayValue]) -> tuple[DaySpec, ...]:
    """Seven DaySpecs, Monday first; missing days are closed. Errors name the day."""
    days: list[DaySpec | None] = [None] * 7
    for name, value in weekly.items():
        try:
            index = parse_day_name(name)
        except ValueError as exc:
            raise ValueError(f"weekly: {exc}") from None
        if days[index] is not None:
            raise ValueError(f"weekly: day {DAY_NAMES[index]!r} is given twice (as {name!r})")
        days[index] = parse_day_value(value, where=f"weekly.{name}")
    return tuple(day if day is not None else () for day in days)


def parse_holidays(holidays: Mapping[str, DayValue]) -> dict[dt.date, DaySpec]:
    """Date -> DaySpec for the exceptions. Errors name the date key."""
    parsed: dict[dt.date, DaySpec] = {}
    for key, value in holidays.items():
        try:
            day = parse_holiday_date(key)
        except ValueError as exc:
            raise ValueError(f"holidays: {exc}") from None
        if day in parsed:
            raise ValueError(f"holidays: date {day.isoformat()} is given twice")
        parsed[day] = parse_day_value(value, where=f"holidays.{key}")
    return parsed


def require_aware(at: dt.datetime, what: str = "time") -> dt.datetime:
    """`at` itself if it carries a UTC offset; a naive time is ambiguous at a door, so ValueError."""
    if not isinstance(at, dt.datetime):
        raise TypeError(f"{what} must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {at.isoformat()})")
    return at


class OpeningHours:
    """The station's opening hours; immutable once built, safe to share between threads.

    Build it with keyword arguments (same names and defaults as `ScheduleConfig`) or
    `OpeningHours.from_config`. Every parsing problem is a ValueError naming the day or date.
    """

    def __init__(
        self,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        always_open: bool = True,
        weekly: Mapping[str, DayValue] | None = None,
        holidays: Mapping[str, DayValue] | None = None,
    ) -> None:
        self._tz = load_timezone(timezone)
        self._timezone_name = timezone
        self._always_open = bool(always_open)
        self._weekly = parse_weekly(weekly or {})
        self._holidays = parse_holidays(holidays or {})
        if self._always_open and (weekly or holidays):
            raise ValueError(
                "weekly/holidays are given but always_open is true, so they would be ignored: "
                "set always_open = false to use the timetable"
            )
        if not self._always_open and not any(self._weekly) and not any(self._holidays.values()):
            raise ValueError(
                "always_open is false but no weekly or holiday entry opens the station: it would never open"
            )
        # Per-date intervals are the only work is_open does; a small cache keeps a decision cheap.
        self._cache: dict[dt.date, tuple[tuple[dt.datetime, dt.datetime], ...]] = {}

    @classmethod
    def from_config(cls, config: ScheduleConfig) -> OpeningHours:
        """Opening hours from the `[schedule]` configuration section."""
        return cls(
            timezone=config.timezone,
            always_open=config.always_open,
            weekly=config.weekly,
            holidays=config.holidays,
        )

    @property
    def timezone(self) -> ZoneInfo:
        return self._tz

    @property
    def always_open(self) -> bool:
        return self._always_open

    def ranges_on(self, day: dt.date) -> DaySpec:
        """The ranges that start on local date `day` (its holiday entry if any, else its weekday's)."""
        if self._always_open:
            return _FULL_DAY
        holiday = self._holidays.get(day)
        return holiday if holiday is not None else self._weekly[day.weekday()]

    def is_open(self, at: dt.datetime) -> bool:
        """Whether the station is open at the aware instant `at` (naive: ValueError)."""
        instant = require_aware(at, "at").astimezone(_UTC)
        if self._always_open:
            return True
        local_day = instant.astimezone(self._tz).date()
        # Yesterday's overnight ranges reach into today; the extra day each side covers zones whose
        # clocks move across midnight, where an instant's local date can step back.
        for offset in (-2, -1, 0, 1):
            for start, end in self._intervals(local_day + dt.timedelta(days=offset)):
                if start <= instant < end:
                    return True
        return False

    def next_change(self, at: dt.datetime) -> dt.datetime | None:
        """The first instant after `at` at which `is_open` flips, within 8 days; else None.

        Returned in the station's time zone (for display; adding a timedelta to an aware datetime
        is wall-clock arithmetic, so do sums in UTC). None means the state holds for at least 8 days
        (always open, or back-to-back "24h" days). Between `at` and the returned instant `is_open`
        is constant, and at the instant it is the opposite.
        """
        instant = require_aware(at, "at").astimezone(_UTC)
        if self._always_open:
            return None
        local_day = instant.astimezone(self._tz).date()
        intervals: list[tuple[dt.datetime, dt.datetime]] = []
        # Ranges starting before local_day-1 end before `at`; ranges starting after local_day+9 start
        # after the horizon. Two extra days guard against clocks moving across midnight.
        for offset in range(-2, 11):
            intervals.extend(self._intervals(local_day + dt.timedelta(days=offset)))
        horizon = instant + NEXT_CHANGE_HORIZON
        for start, end in _merge(intervals):
            if end <= instant:
                continue
            change = end if start <= instant else start
            return change.astimezone(self._tz) if change <= horizon else None
        return None

    def _intervals(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The UTC [start, end) intervals of the ranges that start on local date `day`."""
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        midnight = dt.datetime.combine(day, dt.time())
        result: list[tuple[dt.datetime, dt.datetime]] = []
        for span in self.ranges_on(day):
            start = _wall_to_utc(midnight + dt.timedelta(minutes=span.start_min), self._tz)
            end = _wall_to_utc(midnight + dt.timedelta(minutes=span.end_min), self._tz)
            if start < end:  # a range wholly inside a skipped DST hour is empty that night
                result.append((start, end))
        value = tuple(result)
        if len(self._cache) >= _CACHE_DAYS:
            self._cache.clear()
        self._cache[day] = value
        return value

    def __repr__(self) -> str:
        if self._always_open:
            return f"OpeningHours(timezone={self._timezone_name!r}, always_open=True)"
        weekly = {DAY_NAMES[i]: [str(r) for r in spec] for i, spec in enumerate(self._weekly)}
        holidays = {d.isoformat(): [str(r) for r in spec] for d, spec in sorted(self._holidays.items())}
        return f"OpeningHours(timezone={self._timezone_name!r}, weekly={weekly!r}, holidays={holidays!r})"


def _merge(intervals: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sorted union of half-open intervals; touching intervals join (no change at the seam)."""
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _local_wall(seconds: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz).replace(tzinfo=None)


def _wall_to_utc(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The first instant at which the clock in `tz` shows `wall` or later on that stretch of time.

    For an existing wall time this is its (first, if repeated) occurrence. For a wall time skipped
    by a forward jump it is the jump itself, found by bisection between the two readings of the
    skipped time (zone offsets are whole seconds, so bisection on whole seconds is exact).
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(_UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(_UTC)
    low = math.floor(min(first, other).timestamp())
    high = math.ceil(max(first, other).timestamp())
    # Invariant: the clock shows less than `wall` at `low` and at least `wall` at `high`.
    while high - low > 1:
        middle = (low + high) // 2
        if _local_wall(middle, tz) >= wall:
            high = middle
        else:
            low = middle
    return dt.datetime.fromtimestamp(high, _UTC)


# -- the [schedule] section / set_schedule payload -------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ScheduleConfig(_Section):
    """When members may enter. The exit button and remote opening work at any hour."""

    timezone: str = Field(
        DEFAULT_TIMEZONE,
        min_length=1,
        max_length=64,
        description="IANA time zone the opening hours are written in (e.g. Asia/Shanghai).",
    )
    always_open: bool = Field(
        True,
        description="24-hour station: ignore the timetable. Set false to use weekly/holidays "
        "(giving them while this is true is refused).",
    )
    weekly: dict[str, list[str] | str] = Field(
        default_factory=dict,
        max_length=7,
        description='Day (mon..sun) -> "24h", "closed" or ["HH:MM-HH:MM", ...]; an end not after its '
        "start runs overnight into the next day; a missing day is closed.",
    )
    holidays: dict[str, list[str] | str] = Field(
        default_factory=dict,
        max_length=2000,
        description='Date "YYYY-MM-DD" -> same syntax as weekly; replaces that date\'s weekly entry '
        "(the previous evening's overnight range still runs into its morning).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        load_timezone(value)
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_weekly(cls, value: dict[str, list[str] | str]) -> dict[str, list[str] | str]:
        parse_weekly(value)
        return value

    @field_validator("holidays")
    @classmethod
    def _valid_holidays(cls, value: dict[str, list[str] | str]) -> dict[str, list[str] | str]:
        parse_holidays(value)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleConfig:
        # The cross-field rules (timetable given while always open, never open) live in one place.
        OpeningHours.from_config(self)
        return self

    def opening_hours(self) -> OpeningHours:
        """The `OpeningHours` this section describes."""
        return OpeningHours.from_config(self)
