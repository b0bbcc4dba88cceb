"""Choosing gpiozero's pin driver, and the door package's errors.

The driver is chosen once, by the daemon, from `[door.gpio] pin_factory`, and handed to every door
device as `pin_factory=`: nothing here sets gpiozero's process-wide `Device.pin_factory`, so tests
and the daemon never share hidden state. A real driver that cannot load raises DoorHardwareError:
we never fall back to mock pins silently, because a station running on mock pins looks healthy
while its door never opens and its buttons are never read.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory

logger = logging.getLogger(__name__)

HARDWARE_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native")  # gpiozero's own "auto" order
FACTORY_NAMES = ("auto", "mock", *HARDWARE_FACTORIES)
_HINT = 'set [door.gpio] pin_factory = "mock" to run without hardware'
_PI_MODEL_FILE = Path("/proc/device-tree/model")


class DoorError(Exception):
    """Base of every error raised by the door package."""


class DoorHardwareError(DoorError, RuntimeError):
    """The GPIO hardware or its driver is unavailable; the daemon must not start."""


class DoorClosedError(DoorError, RuntimeError):
    """A door device or the controller was used after close()."""


def make_pin_factory(name: str) -> Factory:
    """A gpiozero pin factory for `[door.gpio] pin_factory`; DoorHardwareError if it cannot load.

    "auto" tries gpiozero's drivers in gpiozero's order (honouring $GPIOZERO_PIN_FACTORY like
    gpiozero does) but, unlike gpiozero, never ends on mock pins unless asked to.
    """
    if name not in FACTORY_NAMES:
        raise ValueError(f"unknown pin factory {name!r}; expected one of {', '.join(FACTORY_NAMES)}")
    if name == "mock":
        if _looks_like_a_pi():
            logger.warning(
                'GPIO pin factory is "mock" on a Raspberry Pi: the door relay and buttons are NOT '
                'connected; set [door.gpio] pin_factory = "lgpio" (or "auto") on a station'
            )
        return MockFactory()
    if name == "auto":
        forced = os.environ.get("GPIOZERO_PIN_FACTORY")
        if forced:
            return _load_named(forced.lower(), f"auto ($GPIOZERO_PIN_FACTORY={forced})")
        reasons: list[str] = []
        for candidate in HARDWARE_FACTORIES:
            try:
                return _load(candidate)
            except Exception as exc:  # each driver fails differently off a Pi; we report them all
                reasons.append(f"{candidate}: {_reason(exc)}")
        raise DoorHardwareError(f"no GPIO here ({'; '.join(reasons)}); {_HINT}")
    return _load_named(name, name)


def _load_named(name: str, label: str) -> Factory:
    if name == "mock":
        return make_pin_factory("mock")
    try:
        return _load(name)
    except Exception as exc:
        raise DoorHardwareError(f"no GPIO here (pin factory {label}: {_reason(exc)}); {_HINT}") from exc


def _load(name: str) -> Factory:
    """Construct gpiozero's factory registered under `name` (its entry point, as gpiozero does)."""
    for entry in entry_points(group="gpiozero_pin_factories"):
        if entry.name == name:
            factory_class: Any = entry.load()
            return factory_class()
    raise LookupError(f"gpiozero has no pin factory named {name!r}")


def _reason(exc: BaseException) -> str:
    text = str(exc) or "failed"
    return f"{type(exc).__name__}: {text}"


def _looks_like_a_pi() -> bool:
    try:
        return "raspberry pi" in _PI_MODEL_FILE.read_text(errors="replace").lower()
    except OSError:
        return False
