"""Configuration sections for the door's access decisions: `[schedule]` and `[access]`.

Same rules as `edge.config`: unknown keys are refused, every value is bounded, and a timetable that
does not parse stops start-up with the offending day or date named. The timetable is validated by
the very parser `edge.schedule.OpeningHours` uses, so what the config accepts is what the door runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from edge.schedule import (
    DEFAULT_TIMEZONE,
    OpeningHours,
    load_timezone,
    parse_holidays,
    parse_weekly,
)

_Name = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


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


class AccessConfig(_Section):
    """Who may enter and how the door reacts to repeats and to probing.

    Lockout is station-wide and covers face and QR credentials presented for entry only: refusals of
    unidentified credentials (an unknown face, a QR code whose signature did not verify) carry no
    trustworthy member id, so a per-member counter could be dodged by simply not being recognised.
    The exit button, remote opening and the exit reader are never locked out.
    """

    cooldown_s: float = Field(
        10.0,
        ge=0.0,
        le=600.0,
        allow_inf_nan=False,
        description="A member granted again within this many seconds (same direction) is ignored: "
        "the door is already open for them, so no second pulse and no second event. 0 disables.",
    )
    refusal_repeat_s: float = Field(
        10.0,
        ge=0.0,
        le=600.0,
        allow_inf_nan=False,
        description="The same refusal (method, direction, member, reason) again within this many "
        "seconds is ignored: not logged again, not counted toward lockout. 0 disables (then a "
        "stranger in front of the camera is one counted refusal per frame).",
    )
    lockout_attempts: int = Field(
        5, ge=1, le=100, description="Counted refusals within lockout_window_s that start a lockout."
    )
    lockout_window_s: float = Field(
        60.0,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="Sliding window (seconds) in which lockout_attempts refusals trip the lockout.",
    )
    lockout_s: float = Field(
        120.0,
        gt=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="How long (seconds) face and QR entry are refused once the lockout trips.",
    )
    anti_passback: bool = Field(
        False,
        description="Refuse an entry by a member recorded inside (needs an exit reader; leaving by "
        "the exit button is not recorded, so such a member waits for anti_passback_reset_s).",
    )
    anti_passback_reset_s: float = Field(
        12 * 3600.0,
        gt=0.0,
        le=7 * 24 * 3600.0,
        allow_inf_nan=False,
        description="After this many seconds a member recorded inside may enter again anyway.",
    )
    require_frames: int = Field(
        1, ge=1, le=10, description="Agreeing camera frames the daemon needs before a face decision."
    )
    allowed_kinds: tuple[_Name, ...] = Field(
        (),
        max_length=32,
        description="Member kinds admitted here (e.g. sanitation); empty admits every kind.",
    )
    allowed_groups: tuple[_Name, ...] = Field(
        (),
        max_length=64,
        description="Admit members in at least one of these groups; empty admits every group. "
        "With both lists set a member must satisfy both.",
    )

    @field_validator("allowed_kinds", "allowed_groups", mode="before")
    @classmethod
    def _list_not_text(cls, value: Any) -> Any:
        # A bare string would otherwise be read as a sequence of one-letter kinds.
        if isinstance(value, str):
            raise ValueError('expected a list of names, e.g. ["sanitation"], not a single string')
        return value
