"""Opening hours: weekly ranges, overnight spill-over, holidays, DST, and config validation."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.schedule import DAY_NAMES, OpeningHours, ScheduleConfig, TimeRange, parse_day_value

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC

MONDAY = dt.date(2026, 3, 2)  # a Monday; the whole week below is free of DST in Berlin
SUNDAY = MONDAY + dt.timedelta(days=6)


def at(day: dt.date, hh: int, mm: int = 0, tz: ZoneInfo = SHANGHAI, *, fold: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz, fold=fold)


def hours(tz: str = "Asia/Shanghai", **weekly: str | list[str]) -> OpeningHours:
    return OpeningHours(timezone=tz, always_open=False, weekly=weekly)


def test_dates_used_are_the_weekdays_the_tests_assume() -> None:
    assert MONDAY.weekday() == 0 and SUNDAY.weekday() == 6


# ------------------------------------------------------------------------------ defaults


def test_default_is_a_24_hour_station() -> None:
    config = ScheduleConfig()
    assert config.timezone == "Asia/Shanghai" and config.always_open is True
    assert config.weekly == {} and config.holidays == {}
    opening = config.opening_hours()
    assert opening.always_open
    for hour in range(24):
        assert opening.is_open(at(MONDAY, hour, 17))
    assert opening.next_change(at(MONDAY, 3)) is None
    assert opening.ranges_on(MONDAY) == (TimeRange(0, 1440),)


def test_always_open_with_a_timetable_is_refused_not_silently_ignored() -> None:
    with pytest.raises(ValueError, match="always_open"):
        OpeningHours(weekly={"mon": "08:00-20:00"})
    with pytest.raises(ValidationError, match="always_open"):
        ScheduleConfig(holidays={"2026-02-17": "closed"})


def test_a_timetable_that_never_opens_is_refused() -> None:
    with pytest.raises(ValueError, match="never open"):
        OpeningHours(always_open=False)
    with pytest.raises(ValueError, match="never open"):
        OpeningHours(always_open=False, weekly={day: "closed" for day in DAY_NAMES})
    # Open only on a holiday is odd but legitimate.
    OpeningHours(always_open=False, holidays={"2026-10-01": "24h"})


# ------------------------------------------------------------------------------ weekly ranges


def test_a_day_range_is_half_open() -> None:
    opening = hours(mon="08:00-20:00")
    assert not opening.is_open(at(MONDAY, 7, 59))
    assert opening.is_open(at(MONDAY, 8, 0))
    assert opening.is_open(at(MONDAY, 19, 59))
    assert not opening.is_open(at(MONDAY, 20, 0))
    assert opening.next_change(at(MONDAY, 7)) == at(MONDAY, 8)
    assert opening.next_change(at(MONDAY, 8)) == at(MONDAY, 20)
    assert opening.next_change(at(MONDAY, 12)) == at(MONDAY, 20)


def test_several_ranges_a_day_and_missing_days_are_closed() -> None:
    opening = hours(tue=["17:00-22:00", "06:00-09:00"])
    tuesday = MONDAY + dt.timedelta(days=1)
    assert [opening.is_open(at(tuesday, h)) for h in (5, 6, 8, 9, 12, 17, 21, 22)] == [
        False, True, True, False, False, True, True, False,
    ]  # fmt: skip
    assert not any(opening.is_open(at(MONDAY, h)) for h in range(24))
    assert opening.next_change(at(tuesday, 10)) == at(tuesday, 17)
    assert opening.next_change(at(tuesday, 23)) == at(tuesday + dt.timedelta(days=7), 6)


def test_day_names_and_keywords_are_case_insensitive() -> None:
    opening = OpeningHours(always_open=False, weekly={"MON": "24H", "Tue": "Closed", "wed": "08:00-09:00"})
    assert opening.is_open(at(MONDAY, 3))
    assert not opening.is_open(at(MONDAY + dt.timedelta(days=1), 3))


def test_24h_day_covers_midnight_to_midnight() -> None:
    opening = hours(tue="24h")
    tuesday = MONDAY + dt.timedelta(days=1)
    assert not opening.is_open(at(MONDAY, 23, 59))
    assert opening.is_open(at(tuesday, 0, 0))
    assert opening.is_open(at(tuesday, 23, 59))
    assert not opening.is_open(at(tuesday + dt.timedelta(days=1), 0, 0))
    assert opening.next_change(at(tuesday, 0)) == at(tuesday + dt.timedelta(days=1), 0)


def test_24_00_end_and_back_to_back_days_merge() -> None:
    opening = hours(mon="20:00-24:00", tue="00:00-02:00")
    tuesday = MONDAY + dt.timedelta(days=1)
    assert opening.is_open(at(MONDAY, 23, 59))
    assert opening.is_open(at(tuesday, 0, 0))
    assert not opening.is_open(at(tuesday, 2, 0))
    # No change reported at midnight: the seam between the two days is not a closing.
    assert opening.next_change(at(MONDAY, 21)) == at(tuesday, 2)


def test_every_day_24h_never_changes() -> None:
    opening = OpeningHours(always_open=False, weekly={day: "24h" for day in DAY_NAMES})
    assert opening.is_open(at(MONDAY, 12))
    assert opening.next_change(at(MONDAY, 12)) is None


def test_overnight_range_runs_into_a_closed_next_day() -> None:
    opening = hours(mon="22:00-06:00", tue="closed")
    tuesday = MONDAY + dt.timedelta(days=1)
    assert not opening.is_open(at(MONDAY, 21, 59))
    assert opening.is_open(at(MONDAY, 22))
    assert opening.is_open(at(tuesday, 5, 59))
    assert not opening.is_open(at(tuesday, 6))
    assert not opening.is_open(at(MONDAY, 3))  # Sunday night is not Monday's range
    assert opening.next_change(at(MONDAY, 23)) == at(tuesday, 6)
    assert opening.ranges_on(MONDAY) == (TimeRange(22 * 60, 30 * 60),)
    assert opening.ranges_on(MONDAY)[0].overnight
    assert str(opening.ranges_on(MONDAY)[0]) == "22:00-06:00"


def test_overnight_range_across_the_week_end() -> None:
    opening = hours(sun="22:00-06:00", mon="closed")
    next_monday = SUNDAY + dt.timedelta(days=1)
    assert opening.is_open(at(SUNDAY, 23))
    assert opening.is_open(at(next_monday, 5, 30))
    assert not opening.is_open(at(next_monday, 6))
    assert opening.is_open(at(MONDAY, 1))  # the previous Sunday's range, too
    assert opening.next_change(at(next_monday, 7)) == at(next_monday + dt.timedelta(days=6), 22)


def test_equal_start_and_end_is_a_full_24_hours_from_that_time() -> None:
    opening = hours(wed="07:00-07:00")
    wednesday = MONDAY + dt.timedelta(days=2)
    assert not opening.is_open(at(wednesday, 6, 59))
    assert opening.is_open(at(wednesday, 7))
    assert opening.is_open(at(wednesday + dt.timedelta(days=1), 6, 59))
    assert not opening.is_open(at(wednesday + dt.timedelta(days=1), 7))


def test_overlapping_ranges_add_up() -> None:
    opening = hours(mon=["08:00-12:00", "10:00-14:00", "08:00-12:00"])
    assert opening.is_open(at(MONDAY, 13))
    assert opening.next_change(at(MONDAY, 9)) == at(MONDAY, 14)
    assert len(opening.ranges_on(MONDAY)) == 2


def test_other_time_zone_instants_are_converted() -> None:
    opening = hours(mon="08:00-20:00")
    # 08:30 in Shanghai is 00:30 UTC.
    assert opening.is_open(dt.datetime(2026, 3, 2, 0, 30, tzinfo=UTC))
    assert not opening.is_open(dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    change = opening.next_change(dt.datetime(2026, 3, 2, 0, 30, tzinfo=UTC))
    assert change == at(MONDAY, 20) and change is not None and change.tzinfo == SHANGHAI


def test_naive_datetimes_are_refused() -> None:
    opening = hours(mon="08:00-20:00")
    naive = dt.datetime(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        opening.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        opening.next_change(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        OpeningHours().is_open(naive)  # even when the answer would not depend on it


# ------------------------------------------------------------------------------ holidays


def test_holiday_closed_overrides_a_24h_weekday() -> None:
    opening = OpeningHours(
        always_open=False,
        weekly={day: "24h" for day in DAY_NAMES},
        holidays={"2026-03-04": "closed"},
    )
    wednesday = MONDAY + dt.timedelta(days=2)
    assert opening.is_open(at(wednesday - dt.timedelta(days=1), 23, 59))
    assert not opening.is_open(at(wednesday, 0))
    assert not opening.is_open(at(wednesday, 12))
    assert opening.is_open(at(wednesday + dt.timedelta(days=1), 0))
    assert opening.next_change(at(MONDAY, 12)) == at(wednesday, 0)
    assert opening.next_change(at(wednesday, 12)) == at(wednesday + dt.timedelta(days=1), 0)


def test_holiday_opens_a_closed_day_24h_or_by_ranges() -> None:
    opening = OpeningHours(
        always_open=False,
        weekly={"mon": "08:00-09:00"},
        holidays={"2026-03-07": "24h", "2026-03-08": ["10:00-12:00"]},
    )
    saturday, sunday = MONDAY + dt.timedelta(days=5), SUNDAY
    assert opening.is_open(at(saturday, 0)) and opening.is_open(at(saturday, 23, 59))
    assert not opening.is_open(at(sunday, 0))
    assert opening.is_open(at(sunday, 11))
    assert not opening.is_open(at(saturday + dt.timedelta(days=7), 12))  # only that date
    assert opening.ranges_on(saturday) == (TimeRange(0, 1440),)


def test_previous_evenings_overnight_range_still_runs_into_a_closed_holiday() -> None:
    opening = OpeningHours(
        always_open=False,
        weekly={"mon": "22:00-06:00", "tue": "22:00-06:00"},
        holidays={"2026-03-03": "closed"},
    )
    tuesday = MONDAY + dt.timedelta(days=1)
    assert opening.is_open(at(tuesday, 5))  # Monday's range, untouched by Tuesday's holiday
    assert not opening.is_open(at(tuesday, 6))
    assert not opening.is_open(at(tuesday, 23))  # Tuesday's own range is what the holiday removed
    assert not opening.is_open(at(tuesday + dt.timedelta(days=1), 3))


def test_a_holidays_own_overnight_range_runs_into_the_next_day() -> None:
    opening = OpeningHours(
        always_open=False, weekly={"mon": "08:00-09:00"}, holidays={"2026-03-04": "20:00-02:00"}
    )
    thursday = MONDAY + dt.timedelta(days=3)
    assert opening.is_open(at(thursday, 1, 59))
    assert not opening.is_open(at(thursday, 2))


# ------------------------------------------------------------------------------ parsing errors


@pytest.mark.parametrize(
    ("weekly", "named"),
    [
        ({"mon": "25:00-26:00"}, "weekly.mon: '25:00-26:00' starts at 25:00"),
        ({"mon": "9-5"}, "weekly.mon: '9-5' is not a time range"),
        ({"mon": "10:00-"}, "weekly.mon: '10:00-' is not a time range"),
        ({"tue": ["08:00-12:00", "13:00"]}, "weekly.tue: '13:00'"),
        ({"mon": "08:60-09:00"}, "weekly.mon"),
        ({"mon": "08:00-24:01"}, "weekly.mon: '08:00-24:01' ends at 24:01"),
        ({"mon": "24:00-02:00"}, "weekly.mon: '24:00-02:00' starts at 24:00"),
        ({"mon": "open"}, "weekly.mon: 'open'"),
        ({"mon": ["24h"]}, "weekly.mon: '24h' must be the whole value"),
        ({"mon": 8}, "weekly.mon"),
        ({"mon": ["08:00-09:00"] * 25}, "weekly.mon: 25 ranges"),
        ({"funday": "24h"}, "unknown day 'funday'"),
        ({"monday": "24h"}, "unknown day 'monday'"),
        ({"mon": "24h", "MON": "closed"}, "day 'mon' is given twice"),
    ],
)
def test_bad_weekly_entries_name_the_day(weekly: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match="^weekly") as caught:
        OpeningHours(always_open=False, weekly=weekly)  # type: ignore[arg-type]
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("holidays", "named"),
    [
        ({"2026-13-01": "closed"}, "holiday '2026-13-01' is not a real calendar date"),
        ({"2026-02-30": "closed"}, "2026-02-30"),
        ({"20260101": "closed"}, "holiday '20260101' is not a date written YYYY-MM-DD"),
        ({"2026-W01-1": "closed"}, "YYYY-MM-DD"),
        ({"next friday": "closed"}, "YYYY-MM-DD"),
        ({"2026-05-01": "9-5"}, "holidays.2026-05-01: '9-5'"),
    ],
)
def test_bad_holiday_entries_name_the_date(holidays: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match="^holidays") as caught:
        OpeningHours(always_open=False, weekly={"mon": "24h"}, holidays=holidays)
    assert named in str(caught.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Asia/Shanghai "])
def test_unknown_timezones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        OpeningHours(timezone=name)
    with pytest.raises(ValidationError, match="timezone"):
        ScheduleConfig(timezone=name)


def test_config_errors_name_the_key_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleConfig(always_open=False, weekly={"mon": "25:00-26:00"})
    text = str(caught.value)
    assert "weekly" in text and "weekly.mon" in text and "25:00" in text
    with pytest.raises(ValidationError, match="extra"):
        ScheduleConfig.model_validate({"weeky": {"mon": "24h"}})
    with pytest.raises(ValidationError):
        ScheduleConfig.model_validate({"always_open": False, "weekly": {"mon": 8}})


def test_config_builds_the_same_hours_and_is_frozen() -> None:
    config = ScheduleConfig.model_validate(
        {
            "timezone": "Europe/Berlin",
            "always_open": False,
            "weekly": {"mon": ["06:00-22:00"], "sat": "24h", "sun": "closed"},
            "holidays": {"2026-03-02": "closed"},
        }
    )
    opening = config.opening_hours()
    assert opening.timezone == BERLIN
    assert not opening.is_open(at(MONDAY, 12, tz=BERLIN))
    assert opening.is_open(at(MONDAY + dt.timedelta(days=7), 12, tz=BERLIN))
    with pytest.raises(ValidationError):
        config.always_open = True  # type: ignore[misc]


@given(st.one_of(st.text(max_size=20), st.lists(st.text(max_size=15), max_size=4)))
def test_parser_fails_only_with_value_error(value: str | list[str]) -> None:
    try:
        spec = parse_day_value(value, where="weekly.mon")
    except ValueError as exc:
        assert str(exc).startswith("weekly.mon")
    else:
        assert all(0 <= r.start_min < 1440 and r.start_min < r.end_min <= r.start_min + 1440 for r in spec)


# ------------------------------------------------------------------------------ DST (Europe/Berlin)

SPRING = dt.date(2026, 3, 29)  # Sunday: 02:00 CET jumps to 03:00 CEST
AUTUMN = dt.date(2026, 10, 25)  # Sunday: 03:00 CEST falls back to 02:00 CET


def test_spring_forward_overnight_range_is_an_hour_shorter() -> None:
    opening = hours("Europe/Berlin", sat="22:00-06:00")
    start = at(SPRING - dt.timedelta(days=1), 22, tz=BERLIN)
    assert opening.is_open(start)
    assert opening.is_open(at(SPRING, 1, 59, tz=BERLIN))
    assert opening.is_open(at(SPRING, 3, 0, tz=BERLIN))
    assert opening.is_open(at(SPRING, 5, 59, tz=BERLIN))
    assert not opening.is_open(at(SPRING, 6, tz=BERLIN))
    end = opening.next_change(start)
    assert end == at(SPRING, 6, tz=BERLIN)
    assert end is not None and end.astimezone(UTC) - start.astimezone(UTC) == dt.timedelta(hours=7)


def test_spring_forward_boundary_in_the_skipped_hour_takes_effect_at_the_jump() -> None:
    opening = hours("Europe/Berlin", sun=["02:30-04:00"], mon="08:00-09:00")
    before = at(SPRING, 1, 59, tz=BERLIN)
    assert not opening.is_open(before)
    jump = opening.next_change(before)
    assert jump == at(SPRING, 3, 0, tz=BERLIN)
    assert jump is not None and jump.astimezone(UTC) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert opening.is_open(at(SPRING, 3, 0, tz=BERLIN))
    assert not opening.is_open(at(SPRING, 4, 0, tz=BERLIN))


def test_spring_forward_range_inside_the_skipped_hour_is_empty() -> None:
    opening = hours("Europe/Berlin", sun="02:00-02:30", mon="08:00-09:00")
    for minute in range(0, 24 * 60, 10):
        instant = dt.datetime(2026, 3, 29, tzinfo=UTC) + dt.timedelta(minutes=minute)
        assert not opening.is_open(instant)
    # A week later the same range is there.
    assert opening.is_open(at(SPRING + dt.timedelta(days=7), 2, 15, tz=BERLIN))


def test_fall_back_overnight_range_is_an_hour_longer_and_open_in_both_repeated_hours() -> None:
    opening = hours("Europe/Berlin", sat="22:00-06:00")
    start = at(AUTUMN - dt.timedelta(days=1), 22, tz=BERLIN)
    assert opening.is_open(at(AUTUMN, 2, 30, tz=BERLIN, fold=0))
    assert opening.is_open(at(AUTUMN, 2, 30, tz=BERLIN, fold=1))
    end = opening.next_change(start)
    assert end == at(AUTUMN, 6, tz=BERLIN)
    assert end is not None and end.astimezone(UTC) - start.astimezone(UTC) == dt.timedelta(hours=9)


def test_fall_back_range_ends_at_the_first_occurrence_and_does_not_reopen() -> None:
    opening = hours("Europe/Berlin", sun="00:00-02:30", mon="08:00-09:00")
    first = at(AUTUMN, 2, 15, tz=BERLIN, fold=0)  # 00:15 UTC, summer time
    second = at(AUTUMN, 2, 15, tz=BERLIN, fold=1)  # 01:15 UTC, winter time
    assert opening.is_open(first)
    assert not opening.is_open(second)
    end = opening.next_change(at(AUTUMN, 1, tz=BERLIN))
    assert end is not None and end.astimezone(UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    after_end = opening.next_change(end)
    assert after_end == at(AUTUMN + dt.timedelta(days=1), 8, tz=BERLIN)


# ------------------------------------------------------------------------------ property


_ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe"]
_quarter_hours = st.integers(min_value=0, max_value=95)


@st.composite
def _day_values(draw: st.DrawFn) -> str | list[str]:
    choice = draw(st.sampled_from(["24h", "closed", "ranges"]))
    if choice != "ranges":
        return choice
    ranges = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        start, end = draw(_quarter_hours), draw(st.integers(min_value=0, max_value=96))
        ranges.append(f"{start // 4:02d}:{start % 4 * 15:02d}-{end // 4:02d}:{end % 4 * 15:02d}")
    return ranges


@st.composite
def _schedules(draw: st.DrawFn) -> tuple[OpeningHours, dt.datetime]:
    zone = draw(st.sampled_from(_ZONES))
    weekly = {day: draw(_day_values()) for day in draw(st.sets(st.sampled_from(DAY_NAMES), min_size=1))}
    # Instants in 2026, biased toward the days around Europe's and America's DST changes.
    base = draw(
        st.sampled_from([dt.datetime(2026, 3, 8), dt.datetime(2026, 3, 29), dt.datetime(2026, 10, 25)])
        | st.just(dt.datetime(2026, 1, 1))
    )
    offset_min = draw(
        st.integers(min_value=-3 * 24 * 60, max_value=300 * 24 * 60 if base.month == 1 else 3 * 24 * 60)
    )
    instant = (base + dt.timedelta(minutes=offset_min, seconds=draw(st.integers(0, 59)))).replace(tzinfo=UTC)
    holidays: dict[str, str | list[str]] = {}
    for delta in draw(st.sets(st.integers(min_value=-2, max_value=9), max_size=3)):
        holidays[(instant.date() + dt.timedelta(days=delta)).isoformat()] = draw(_day_values())
    opens_somewhere = any(v != "closed" for v in [*weekly.values(), *holidays.values()])
    if not opens_somewhere:
        weekly["mon"] = "24h"
    return OpeningHours(timezone=zone, always_open=False, weekly=weekly, holidays=holidays), instant


@settings(max_examples=300, deadline=None)
@given(
    _schedules(), st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), min_size=3, max_size=6)
)
def test_state_is_constant_until_next_change_and_flips_there(
    case: tuple[OpeningHours, dt.datetime], fractions: list[float]
) -> None:
    opening, instant = case
    state = opening.is_open(instant)
    local_change = opening.next_change(instant)
    horizon = instant + dt.timedelta(days=8)
    # Arithmetic on an aware datetime is wall-clock arithmetic in its own zone; do it in UTC.
    change = local_change.astimezone(UTC) if local_change is not None else None
    end = change if change is not None else horizon
    if change is not None:
        assert instant < change <= horizon
        assert opening.is_open(change) is not state
        assert opening.is_open(change - dt.timedelta(microseconds=1)) is state
        following = opening.next_change(change)
        assert following is None or following > change
    span_us = (end - instant) // dt.timedelta(microseconds=1)
    for fraction in fractions:
        step = min(span_us - 1, int(span_us * fraction))
        assert opening.is_open(instant + dt.timedelta(microseconds=step)) is state
