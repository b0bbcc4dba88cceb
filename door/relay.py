"""The door relay: de-energised at start, on close, on a crash; energised only for a timed window.

Fire safety: the relay is fail-secure here (de-energised = locked from outside; people inside leave
through mechanical egress or the exit button). Relays that fired at boot have unlocked doors in
other products (esp-rfid issues #609, #162), so the output is created with `initial_value=False`,
driven to its inactive level before close, and driven inactive again by an atexit hook if the
process ends without closing it (a crash in the daemon). Devices built on an injected pin factory
are not covered by gpiozero's own atexit clean-up (that only handles `Device.pin_factory`), hence
our own hook.

One timed window per output: a second unlock while unlocked moves the re-lock time later instead of
pulsing the relay again, so a face seen on five consecutive frames never makes the strike chatter.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Self

from gpiozero import DigitalOutputDevice
from gpiozero.pins import Factory

from door.config import AuxRelayConfig, RelayConfig
from door.pins import DoorClosedError

logger = logging.getLogger(__name__)

MAX_ON_S = 600.0  # longest single window anyone may ask for (a delivery, a long alarm)

Clock = Callable[[], float]
TimeCallback = Callable[[float], None]

_live_outputs: weakref.WeakSet[TimedOutput] = weakref.WeakSet()


class TimedOutput:
    """A digital output that is off unless switched on for a bounded time.

    The building block of DoorRelay and of the alarm buzzer/light. Thread-safe: gpiozero callback
    threads, timer threads and the daemon may all call it. Callbacks run outside the lock and their
    exceptions are logged, never raised into the caller.
    """

    def __init__(
        self,
        pin: int | str,
        *,
        active_high: bool,
        default_s: float,
        pin_factory: Factory,
        clock: Clock = time.monotonic,
        name: str = "output",
        on_energised: TimeCallback | None = None,
        on_released: TimeCallback | None = None,
    ) -> None:
        self.name = name
        self._default_s = _check_seconds(default_s)
        self._clock = clock
        self._on_energised = on_energised
        self._on_released = on_released
        self._lock = threading.Lock()
        self._on = False
        self._closed = False
        self._generation = 0  # bumped whenever the scheduled switch-off changes; stale timers see it
        self._deadline: float | None = None
        self._timer: threading.Timer | None = None
        self._energised_at: float | None = None
        self._released_at: float | None = None
        self._device: DigitalOutputDevice | None = None
        # initial_value=False: the pin is claimed at its inactive level, never pulsed at start.
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        try:
            _live_outputs.add(self)
        except BaseException:
            self.close()
            raise

    # -- state -----------------------------------------------------------------------------
    @property
    def is_on(self) -> bool:
        """True while energised: what we last drove, read without waiting for the lock."""
        return self._on

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def energised_at(self) -> float | None:
        """Clock time the current window switched the output on; None while off."""
        return self._energised_at

    @property
    def released_at(self) -> float | None:
        """Clock time of the last switch-off after being on, or None."""
        return self._released_at

    @property
    def off_at(self) -> float | None:
        """Clock time at which the current window ends, or None when off."""
        return self._deadline

    # -- switching -------------------------------------------------------------------------
    def turn_on_for(self, seconds: float | None = None) -> float:
        """Switch on now (non-blocking) and off `seconds` later (default: the configured time).

        Already on: the window is extended if this one ends later, never shortened, and the pin
        is not touched again. Returns the clock time the output was confirmed on (after the pin
        write), which is also passed to `on_energised` (called on every switch-on request, so the
        caller can measure its own latency even when the output was already on).
        """
        duration = self._default_s if seconds is None else _check_seconds(seconds)
        with self._lock:
            device = self._require_open()
            if not self._on:
                device.on()
                self._on = True
                now = self._clock()
                self._energised_at = now
            else:
                now = self._clock()
            deadline = now + duration
            if self._deadline is None or deadline > self._deadline:
                try:
                    self._schedule_off(deadline - now, deadline)
                except BaseException:
                    # No timer (e.g. no thread could start): never leave it on with nothing to end it.
                    self._off_locked()
                    raise
        self._notify(self._on_energised, now, "on_energised")
        return now

    def end_window(self, deadline: float) -> None:
        """Switch off now if the pending window ends no later than `deadline` (the one a pattern
        step opened); a longer window someone else asked for (an emergency alarm) is left alone.
        Lets a beep end on time even when its timer thread runs late."""
        with self._lock:
            if self._closed or not self._on or self._deadline is None or self._deadline > deadline:
                return
            released = self._off_locked()
        if released is not None:
            self._notify(self._on_released, released, "on_released")

    def turn_off(self) -> None:
        """Switch off immediately and forget any pending window. Safe on a closed output."""
        released = self._switch_off(generation=None)
        if released is not None:
            self._notify(self._on_released, released, "on_released")

    def close(self) -> None:
        """Switch off first, then release the pin. Idempotent; never raises.

        Done under the lock in one go, so no other thread can switch on between the two steps.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                released = self._off_locked()
            except Exception:
                logger.exception("could not switch %s off before closing it", self.name)
                released = None
            device, self._device = self._device, None
            if device is not None:
                try:
                    device.close()
                except Exception:
                    logger.exception("closing %s failed", self.name)
        _live_outputs.discard(self)
        if released is not None:
            self._notify(self._on_released, released, "on_released")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("on" if self._on else "off")
        return f"<{type(self).__name__} {self.name} {state}>"

    # -- internals -------------------------------------------------------------------------
    def _require_open(self) -> DigitalOutputDevice:
        if self._closed or self._device is None:
            raise DoorClosedError(f"{self.name} is closed")
        return self._device

    def _schedule_off(self, delay: float, deadline: float) -> None:
        """Replace the pending switch-off (caller holds the lock)."""
        if self._timer is not None:
            self._timer.cancel()
        self._generation += 1
        self._deadline = deadline
        timer = threading.Timer(max(delay, 0.0), self._expire, args=(self._generation,))
        timer.daemon = True  # never keeps the process alive; close()/atexit switch off instead
        timer.name = f"{self.name}-off"
        self._timer = timer
        timer.start()

    def _expire(self, generation: int) -> None:
        try:
            released = self._switch_off(generation=generation)
        except Exception:
            logger.exception("could not switch %s off at the end of its window", self.name)
            return
        if released is not None:
            self._notify(self._on_released, released, "on_released")

    def _switch_off(self, generation: int | None) -> float | None:
        """Switch off unless `generation` is stale: a timer passes the generation it was started
        for, so a window extended after it started cannot be cut short by it."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return None
            return self._off_locked()

    def _off_locked(self) -> float | None:
        """Drive the pin inactive (caller holds the lock); the release time if it was on."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._generation += 1
        self._deadline = None
        if self._device is not None:
            self._device.off()  # unconditionally: the pin, not our flag, is what matters
        if not self._on:
            return None
        # released_at before _on: a lock-free reader that sees "off" also sees when it went off.
        released_at = self._clock()
        self._released_at = released_at
        self._energised_at = None
        self._on = False
        return released_at

    def _force_off_at_exit(self) -> None:
        """Last resort at interpreter exit: do not wait long for a lock a dying thread may hold."""
        acquired = self._lock.acquire(timeout=0.5)
        try:
            if self._device is not None:
                self._device.off()
            self._on = False
        finally:
            if acquired:
                self._lock.release()

    def _notify(self, callback: TimeCallback | None, at: float, label: str) -> None:
        if callback is None:
            return
        try:
            callback(at)
        except Exception:
            logger.exception("%s callback of %s raised; ignored", label, self.name)


class DoorRelay(TimedOutput):
    """The door (or cabinet) relay: `unlock()` energises for a window, `lock()` ends it.

    Also used for the aux relay (AuxRelayConfig is a RelayConfig); group checks belong to the
    controller, not here.
    """

    def __init__(
        self,
        config: RelayConfig | AuxRelayConfig,
        *,
        pin_factory: Factory,
        clock: Clock = time.monotonic,
        on_energised: TimeCallback | None = None,
        on_released: TimeCallback | None = None,
        name: str = "door relay",
    ) -> None:
        self.config = config
        super().__init__(
            config.pin,
            active_high=config.active_high,
            default_s=config.unlock_s,
            pin_factory=pin_factory,
            clock=clock,
            name=name,
            on_energised=on_energised,
            on_released=on_released,
        )

    @property
    def is_unlocked(self) -> bool:
        return self.is_on

    def unlock(self, seconds: float | None = None) -> float:
        """Energise now, re-lock after `seconds` (default `unlock_s`); returns the energise time."""
        return self.turn_on_for(seconds)

    def lock(self) -> None:
        """De-energise now."""
        self.turn_off()


def _check_seconds(seconds: float) -> float:
    value = float(seconds)
    if not math.isfinite(value) or not 0.0 < value <= MAX_ON_S:
        raise ValueError(f"a switch-on time must be in (0, {MAX_ON_S:g}] seconds (got {seconds!r})")
    return value


def _switch_everything_off() -> None:
    for output in list(_live_outputs):
        try:
            output._force_off_at_exit()
        except Exception:
            logger.exception("could not switch %s off at exit", output.name)


# Registered after gpiozero's own hook (imported above), so it runs first: pins are driven to their
# inactive level while their devices are still open.
atexit.register(_switch_everything_off)
