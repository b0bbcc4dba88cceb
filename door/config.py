"""The door's configuration: one small frozen section per device, unknown keys refused.

Wired into the station config as `[door.gpio]`, `[door.relay]`, `[door.contact]`, ... Each door
class takes only its own section. Pins are BCM numbers (0..27) or gpiozero pin names ("GPIO17",
"BCM17", "BOARD11", "J8:11"); two enabled devices on one pin are refused at load time with both keys
named, because gpiozero would only say "pin in use" at start and a wiring typo must not reach a door.

This module imports no gpiozero, so the station config can load it anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

# BCM GPIO number of every GPIO on the 40-pin header, by physical (BOARD) pin number. Power and
# ground pins are absent, so "BOARD2" (5 V) is refused. Checked against gpiozero's board data in
# tests/test_door.py.
BOARD_TO_BCM: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9,
    22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26,
    38: 20, 40: 21,
}  # fmt: skip

MAX_BCM = 27
_BCM_NAME = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$", re.IGNORECASE)
_BOARD_NAME = re.compile(r"^(?:BOARD|J8:)(\d{1,2})$", re.IGNORECASE)


def bcm_number(pin: int | str) -> int:
    """The BCM GPIO number a pin value refers to; ValueError with a hint if it names no GPIO.

    Used to compare pins written in different styles (17, "GPIO17", "BOARD11" are one pin).
    """
    if isinstance(pin, bool):
        raise ValueError('a pin is a BCM number or a name such as "GPIO17", not a boolean')
    if isinstance(pin, int):
        if not 0 <= pin <= MAX_BCM:
            raise ValueError(f"BCM pin numbers are 0..{MAX_BCM} (got {pin})")
        return pin
    text = pin.strip()
    match = _BCM_NAME.match(text)
    if match:
        number = int(match.group(1))
        if number > MAX_BCM:
            raise ValueError(f"BCM pin numbers are 0..{MAX_BCM} (got {pin!r})")
        return number
    match = _BOARD_NAME.match(text)
    if match:
        board = int(match.group(1))
        if board not in BOARD_TO_BCM:
            raise ValueError(f"{pin!r} is not a GPIO on the 40-pin header (power, ground or out of range)")
        return BOARD_TO_BCM[board]
    raise ValueError(
        f'{pin!r} is not a pin: use a BCM number (17) or a name like "GPIO17", "BCM17", "BOARD11"'
    )


def _check_pin(pin: int | str) -> int | str:
    bcm_number(pin)
    return pin.strip().upper() if isinstance(pin, str) else pin


# Kept in the form written (gpiozero understands every accepted form), upper-cased because gpiozero
# does not find "gpio17".
Pin = Annotated[StrictInt | StrictStr, AfterValidator(_check_pin)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class GpioConfig(_Section):
    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "pigpio", "native"] = Field(
        "mock",
        description='gpiozero pin driver. "mock" (the default, so a laptop runs) drives no hardware: '
        'on a station set "lgpio" (Pi 5 / Bookworm) or "auto". A real driver that cannot load '
        "stops the daemon at start instead of falling back to mock pins.",
    )


class RelayConfig(_Section):
    pin: Pin = Field(17, description="Output driving the door strike/maglock relay.")
    active_high: bool = Field(
        True,
        description="True: the relay is energised (door unlocked) by a HIGH level. Pick the pin so "
        "its power-on pull holds the relay off before we start (BCM 0-8 pull up, 9-27 pull down).",
    )
    unlock_s: float = Field(3.0, ge=0.2, le=30.0, description="How long a grant keeps the door unlocked.")


class AuxRelayConfig(RelayConfig):
    enabled: bool = Field(False, description="A second relay (a cabinet or a fridge).")
    pin: Pin = Field(6, description="Output driving the second relay.")
    allowed_groups: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        (),
        max_length=64,
        description="Member groups allowed to open it; a member needs at least one of them.",
    )

    @model_validator(mode="after")
    def _groups_when_enabled(self) -> AuxRelayConfig:
        if self.enabled and not self.allowed_groups:
            raise ValueError("allowed_groups is empty while enabled = true: nobody could open it")
        return self


class ContactConfig(_Section):
    enabled: bool = Field(True, description="A door contact (reed switch) is wired.")
    pin: Pin = Field(27, description="Input of the door contact.")
    pull_up: bool = Field(True, description="Use the Pi's internal pull-up (switch wired to ground).")
    open_is_active: bool = Field(
        True,
        description="Whether the input reads active (switch closed, with pull_up: LOW) when the door "
        "is open. A contact that is closed while the door is closed (open_is_active = false) is safer: "
        "a cut wire then reads as an open door instead of hiding one.",
    )
    bounce_s: float = Field(0.05, ge=0.0, le=0.5, description="Debounce time of the contact.")
    held_open_s: float = Field(
        30.0, ge=1.0, le=600.0, description="An open door past this many seconds raises door_held_open."
    )
    grace_s: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        description="An opening this soon after the relay re-locked still counts as granted (someone "
        "pushing the door as the strike released), not as door_forced.",
    )


class ButtonConfig(_Section):
    enabled: bool = Field(
        True, description="A request-to-exit button is wired (it unlocks without a credential)."
    )
    pin: Pin = Field(22, description="Input of the exit button.")
    pull_up: bool = Field(True, description="Use the internal pull-up (button wired to ground).")
    bounce_s: float = Field(0.05, ge=0.0, le=0.5, description="Debounce time of the button.")


class EmergencyConfig(_Section):
    enabled: bool = Field(True, description="An emergency-call button is wired.")
    pin: Pin = Field(23, description="Input of the emergency-call button.")
    pull_up: bool = Field(True, description="Use the internal pull-up (button wired to ground).")
    bounce_s: float = Field(
        0.02,
        ge=0.0,
        le=0.05,
        description="Debounce time. Some drivers report an edge only after it: kept small so the "
        "emergency event stays within 100 ms of the press.",
    )
    buzzer_pin: Pin | None = Field(
        24, description="Local buzzer sounded on an emergency call; none if unset."
    )
    led_pin: Pin | None = Field(None, description="Local light lit on an emergency call; none if unset.")
    alarm_active_high: bool = Field(True, description="The buzzer and light are on at the HIGH level.")
    alarm_s: float = Field(
        10.0, ge=0.5, le=600.0, description="How long the local alarm lasts after a press."
    )


class TamperConfig(_Section):
    enabled: bool = Field(False, description="A tamper switch on the enclosure is wired.")
    pin: Pin = Field(5, description="Input of the tamper switch.")
    pull_up: bool = Field(True, description="Use the internal pull-up (switch wired to ground).")
    tampered_is_active: bool = Field(
        False,
        description="Whether the input reads active when the enclosure is open. The default suits a "
        "switch held closed by the lid, so a cut wire also reads as tampering.",
    )
    bounce_s: float = Field(0.05, ge=0.0, le=0.5, description="Debounce time of the tamper switch.")


#: What the person at the door is told, by pattern and (where configured) by a text line.
SIGNALS = ("granted", "refused", "show_pass", "locked")
DEFAULT_MESSAGES = {
    "granted": "请进 Welcome",
    "refused": "未通过 Not admitted",
    "show_pass": "未识别，请出示通行码 Not recognised: show your pass",
    "locked": "多次失败已暂停，请出示通行码或联系工会 Too many tries: show your pass or call the union",
}
Pattern = Annotated[
    tuple[Annotated[float, Field(ge=0.02, le=5.0, allow_inf_nan=False)], ...],
    Field(min_length=1, max_length=20),
]


class FeedbackConfig(_Section):
    """Signals for the worker at the door: a buzzer / light pattern per outcome, and optionally a
    text line for a small display or a speaker.

    Patterns are seconds on, off, on, ... and play on the emergency buzzer and light
    ([door.emergency] buzzer_pin / led_pin) unless pins of their own are given here. An emergency
    alarm always wins: a pattern never shortens it.
    """

    enabled: bool = Field(True, description="Play the patterns (and write the text lines).")
    buzzer: bool = Field(True, description="Play patterns on the buzzer.")
    light: bool = Field(True, description="Play patterns on the light.")
    buzzer_pin: Pin | None = Field(None, description="A buzzer of its own (default: the emergency buzzer).")
    led_pin: Pin | None = Field(
        None, description="A light of its own, e.g. a green LED (default: the emergency light)."
    )
    active_high: bool = Field(True, description="Own buzzer / light are on at the HIGH level.")
    granted: Pattern = Field((0.15,), description="Door opened: one short beep.")
    refused: Pattern = Field((0.1, 0.1, 0.1, 0.1, 0.1), description="Refused: three short beeps.")
    show_pass: Pattern = Field((0.4, 0.15, 0.1), description="Face not recognised: show your pass.")
    locked: Pattern = Field((0.8, 0.2, 0.8, 0.2, 0.8), description="Locked out after repeated failures.")
    text_device: Path | None = Field(
        None,
        description="A FIFO, serial port or tty that gets one line per signal ('<signal>\\t<message>'), "
        "written without blocking (a FIFO nobody reads drops the line).",
    )
    text_command: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        (),
        max_length=16,
        description="A command run with the signal and the message as its last two arguments (a "
        "speaker: e.g. a text-to-speech script); no shell. A signal arriving while it runs replaces it.",
    )
    messages: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: dict(DEFAULT_MESSAGES),
        description="The text per signal (granted, refused, show_pass, locked).",
    )

    @field_validator("messages")
    @classmethod
    def _known_signals(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signal(s) {unknown}: use {', '.join(SIGNALS)}")
        return {**DEFAULT_MESSAGES, **value}

    @field_validator("granted", "refused", "show_pass", "locked")
    @classmethod
    def _bounded(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if sum(value) > 10.0:
            raise ValueError(f"a pattern lasts at most 10 s, this one {sum(value):g} s")
        return value

    def pattern(self, signal: str) -> tuple[float, ...]:
        value: tuple[float, ...] = getattr(self, signal)
        return value


class DoorConfig(_Section):
    gpio: GpioConfig = Field(default_factory=GpioConfig, description="Pin driver.")
    relay: RelayConfig = Field(default_factory=RelayConfig, description="The door relay.")
    contact: ContactConfig = Field(default_factory=ContactConfig, description="The door contact.")
    exit_button: ButtonConfig = Field(default_factory=ButtonConfig, description="The exit button.")
    emergency: EmergencyConfig = Field(default_factory=EmergencyConfig, description="The emergency button.")
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="The tamper switch.")
    aux_relay: AuxRelayConfig = Field(default_factory=AuxRelayConfig, description="The second relay.")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="Signals at the door.")

    def pins_in_use(self) -> dict[str, int | str]:
        """Every pin an enabled device will open, by its config key (e.g. "relay.pin")."""
        pins: dict[str, int | str] = {"relay.pin": self.relay.pin}
        if self.contact.enabled:
            pins["contact.pin"] = self.contact.pin
        if self.exit_button.enabled:
            pins["exit_button.pin"] = self.exit_button.pin
        if self.emergency.enabled:
            pins["emergency.pin"] = self.emergency.pin
            if self.emergency.buzzer_pin is not None:
                pins["emergency.buzzer_pin"] = self.emergency.buzzer_pin
            if self.emergency.led_pin is not None:
                pins["emergency.led_pin"] = self.emergency.led_pin
        if self.tamper.enabled:
            pins["tamper.pin"] = self.tamper.pin
        if self.aux_relay.enabled:
            pins["aux_relay.pin"] = self.aux_relay.pin
        if self.feedback.enabled and self.feedback.buzzer_pin is not None:
            pins["feedback.buzzer_pin"] = self.feedback.buzzer_pin
        if self.feedback.enabled and self.feedback.led_pin is not None:
            pins["feedback.led_pin"] = self.feedback.led_pin
        return pins

    @model_validator(mode="after")
    def _distinct_pins(self) -> DoorConfig:
        seen: dict[int, str] = {}
        for key, pin in self.pins_in_use().items():
            number = bcm_number(pin)
            if number in seen:
                raise ValueError(
                    f"{seen[number]} and {key} both use GPIO{number}: each device needs its own pin"
                )
            seen[number] = key
        return self
