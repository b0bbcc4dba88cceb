"""Configuration section for the door's access decisions: `[access]`.

Same rules as `edge.config`: unknown keys are refused and every value is bounded. The `[schedule]`
section (`ScheduleConfig`) lives in `contract.schedule`, because the centre sends it to stations in
`set_schedule` commands and judges "open now" with the same parser.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

_Name = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class AccessConfig(_Section):
    """Who may enter and how the door reacts to repeats and to probing.

    Lockout covers what was tried, for entry only (`edge.lockouts`): one face track, face entry as
    one member (refused faces that came close to that member count toward it), or one pass. Never
    the door: a station-wide lockout let passing strangers lock every member out. The exit button,
    remote opening and the exit reader are never locked out.
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
        5,
        ge=1,
        le=100,
        description="Counted refusals of one credential within lockout_window_s that lock it.",
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
        description="How long (seconds) the locked credential is refused once the lockout trips.",
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
