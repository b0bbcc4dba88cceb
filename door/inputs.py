"""The door's inputs under domain names, and the local alarm output.

Thin wrappers over gpiozero's `DigitalInputDevice`: each takes its own config section and
an injected `pin_factory`, and exposes callbacks named for what happened (`when_pressed`,
`when_opened`, `when_tampered`). Callbacks run on gpiozero's callback thread, which every input
shares: a callback must return quickly. An exception in one is logged and swallowed here, because
an exception escaping into the driver's thread can stop all further GPIO events.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from door.config import ButtonConfig, ContactConfig, EmergencyConfig, TamperConfig
from door.relay import Clock, TimedOutput

logger = logging.getLogger(__name__)

Callback = Callable[[], None]


def _bounce(seconds: float) -> float | None:
    # gpiozero takes None for "no debounce"; 0 is not the same thing for every driver.
    return seconds if seconds > 0 else None


class _Input:
    """Owns one gpiozero input device; idempotent close, context manager, guarded callbacks."""

    name = "input"

    def __init__(self, device: Any) -> None:
        self._device: Any = device

    @property
    def closed(self) -> bool:
        return self._device is None

    def _active(self) -> bool:
        device = self._device
        return bool(device is not None and device.is_active)

    def _wire(self, **handlers: Callback) -> None:
        """Attach our handlers to the device; if that fails, release the pin before raising."""
        try:
            for attribute, handler in handlers.items():
                setattr(self._device, attribute, handler)
        except BaseException:
            self.close()
            raise

    def _call(self, callback: Callback | None, what: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            logger.exception("%s callback of %s raised; ignored", what, self.name)

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                device.close()
            except Exception:
                logger.exception("closing %s failed", self.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _PushButton(_Input):
    """A momentary button; `when_pressed` fires on the press edge (not on release).

    A plain DigitalInputDevice rather than gpiozero's Button: we need no hold detection, and
    Button's hold thread wakes ten times a second and delays close() by up to 100 ms.
    """

    def __init__(self, pin: int | str, *, pull_up: bool, bounce_s: float, pin_factory: Factory) -> None:
        self.when_pressed: Callback | None = None
        device = DigitalInputDevice(
            pin, pull_up=pull_up, bounce_time=_bounce(bounce_s), pin_factory=pin_factory
        )
        super().__init__(device)
        self._wire(when_activated=self._pressed)

    @property
    def is_pressed(self) -> bool:
        return self._active()

    def _pressed(self) -> None:
        self._call(self.when_pressed, "when_pressed")


class ExitButton(_PushButton):
    """Request-to-exit button inside the station: pressing it unlocks without any credential."""

    name = "exit button"

    def __init__(self, config: ButtonConfig, *, pin_factory: Factory) -> None:
        super().__init__(
            config.pin, pull_up=config.pull_up, bounce_s=config.bounce_s, pin_factory=pin_factory
        )


class EmergencyButton(_PushButton):
    """Emergency-call button: the controller turns a press into an event and a local alarm."""

    name = "emergency button"

    def __init__(self, config: EmergencyConfig, *, pin_factory: Factory) -> None:
        super().__init__(
            config.pin, pull_up=config.pull_up, bounce_s=config.bounce_s, pin_factory=pin_factory
        )


class DoorContact(_Input):
    """Door contact (reed switch): `when_opened` / `when_closed` whatever the wiring polarity."""

    name = "door contact"

    def __init__(self, config: ContactConfig, *, pin_factory: Factory) -> None:
        self.when_opened: Callback | None = None
        self.when_closed: Callback | None = None
        self._open_is_active = config.open_is_active
        device = DigitalInputDevice(
            config.pin, pull_up=config.pull_up, bounce_time=_bounce(config.bounce_s), pin_factory=pin_factory
        )
        super().__init__(device)
        self._wire(when_activated=self._activated, when_deactivated=self._deactivated)

    @property
    def is_open(self) -> bool:
        """Whether the door reads open now (False once closed)."""
        if self._device is None:
            return False
        return self._active() == self._open_is_active

    def _activated(self) -> None:
        if self._open_is_active:
            self._call(self.when_opened, "when_opened")
        else:
            self._call(self.when_closed, "when_closed")

    def _deactivated(self) -> None:
        if self._open_is_active:
            self._call(self.when_closed, "when_closed")
        else:
            self._call(self.when_opened, "when_opened")


class TamperSwitch(_Input):
    """Enclosure tamper switch: `when_tampered` when the case opens, `when_restored` when it shuts."""

    name = "tamper switch"

    def __init__(self, config: TamperConfig, *, pin_factory: Factory) -> None:
        self.when_tampered: Callback | None = None
        self.when_restored: Callback | None = None
        self._tampered_is_active = config.tampered_is_active
        device = DigitalInputDevice(
            config.pin, pull_up=config.pull_up, bounce_time=_bounce(config.bounce_s), pin_factory=pin_factory
        )
        super().__init__(device)
        self._wire(when_activated=self._activated, when_deactivated=self._deactivated)

    @property
    def is_tampered(self) -> bool:
        if self._device is None:
            return False
        return self._active() == self._tampered_is_active

    def _activated(self) -> None:
        self._call(self.when_tampered if self._tampered_is_active else self.when_restored, "tamper")

    def _deactivated(self) -> None:
        self._call(self.when_restored if self._tampered_is_active else self.when_tampered, "tamper")


class AlarmOutput:
    """Local buzzer and/or light for an emergency call; works with no network at all.

    Either output may be unconfigured (then nothing is driven). Both start off and are switched off
    before close. `sound()` while sounding extends the alarm rather than restarting it.
    """

    def __init__(
        self, config: EmergencyConfig, *, pin_factory: Factory, clock: Clock = time.monotonic
    ) -> None:
        self._outputs: list[TimedOutput] = []
        self._until = -math.inf  # end of the alarm window (a feedback beep on the buzzer is not one)
        try:
            for label, pin in (("buzzer", config.buzzer_pin), ("alarm light", config.led_pin)):
                if pin is not None:
                    self._outputs.append(
                        TimedOutput(
                            pin,
                            active_high=config.alarm_active_high,
                            default_s=config.alarm_s,
                            pin_factory=pin_factory,
                            clock=clock,
                            name=label,
                        )
                    )
        except BaseException:
            self.close()
            raise

    @property
    def buzzer(self) -> TimedOutput | None:
        """The buzzer output (shared with the door's feedback patterns), if configured."""
        return next((o for o in self._outputs if o.name == "buzzer"), None)

    @property
    def light(self) -> TimedOutput | None:
        """The alarm light output (shared with the door's feedback patterns), if configured."""
        return next((o for o in self._outputs if o.name == "alarm light"), None)

    @property
    def configured(self) -> bool:
        """Whether there is anything to drive."""
        return bool(self._outputs)

    @property
    def is_sounding(self) -> bool:
        """The emergency alarm is on: an output still in the window `sound()` opened (a door-feedback
        beep on the same buzzer has a window of its own and does not count)."""
        return any(output.is_on and output.off_at == self._until for output in self._outputs)

    def sound(self, seconds: float | None = None) -> None:
        """Switch the buzzer and light on for `seconds` (default `alarm_s`); returns at once."""
        for output in self._outputs:
            try:
                output.turn_on_for(seconds)
            except Exception:
                logger.exception("could not sound the %s", output.name)
        self._until = max((o.off_at for o in self._outputs if o.off_at is not None), default=-math.inf)

    def silence(self) -> None:
        self._until = -math.inf
        for output in self._outputs:
            try:
                output.turn_off()
            except Exception:
                logger.exception("could not silence the %s", output.name)

    def close(self) -> None:
        """Silence and release every output. Idempotent."""
        outputs, self._outputs = self._outputs, []
        for output in outputs:
            output.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
