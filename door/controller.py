"""The door controller: relays, inputs and local alarm composed from one DoorConfig.

What it guarantees, whatever the rest of the daemon does:
- leaving needs no credential: the exit button unlocks by itself, before any event is written;
- an emergency press sounds the local alarm and reaches the sink straight from the GPIO callback
  thread, waiting on nothing (no network, no lock held by someone else);
- the relays are de-energised at start, first thing on close(), and if construction fails halfway;
- a sink that raises (a bug in the event writer) is logged and never stops the door.

The sink runs on gpiozero's callback thread, which every input shares, and on timer threads: it
must only record or enqueue the event and return (milliseconds), or it delays the next input.
Controller state is guarded by one lock that is never held while calling the sink or a relay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from gpiozero.pins import Factory

from door.config import DoorConfig
from door.feedback import DoorFeedback
from door.inputs import AlarmOutput, DoorContact, EmergencyButton, ExitButton, TamperSwitch
from door.pins import DoorClosedError
from door.relay import Clock, DoorRelay, TimedOutput

logger = logging.getLogger(__name__)

EXIT = "exit"
EMERGENCY = "emergency"
DOOR_FORCED = "door_forced"
DOOR_HELD_OPEN = "door_held_open"
DOOR_CLOSED_AFTER_HELD = "door_closed_after_held"
TAMPER = "tamper"
EVENT_KINDS = (EXIT, EMERGENCY, DOOR_FORCED, DOOR_HELD_OPEN, DOOR_CLOSED_AFTER_HELD, TAMPER)


@dataclass(frozen=True)
class DoorEvent:
    """Something the door saw. `at_mono` is on the controller's clock (time.monotonic by default);
    the sink adds wall-clock time when it records the event."""

    kind: str
    method: str | None
    at_mono: float
    details: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[DoorEvent], None]


class DoorController:
    """Everything on the door's GPIO, built from `config` on the injected `pin_factory`.

    Construction order: relays first (claimed de-energised as early as possible), then the alarm
    outputs, then inputs, and callbacks are attached only once everything exists.
    """

    def __init__(
        self, config: DoorConfig, *, pin_factory: Factory, sink: Sink, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._relay: DoorRelay | None = None
        self._aux: DoorRelay | None = None
        self._alarm: AlarmOutput | None = None
        self._contact: DoorContact | None = None
        self._exit: ExitButton | None = None
        self._emergency: EmergencyButton | None = None
        self._tamper: TamperSwitch | None = None
        self._feedback: DoorFeedback | None = None
        self._feedback_outputs: list[TimedOutput] = []  # outputs of the feedback's own pins
        self._door_open = False
        self._opened_at: float | None = None
        self._opening = 0  # counts openings; a held-open timer only acts on its own opening
        self._held_timer: threading.Timer | None = None
        self._held_reported = False
        self._last_grant: tuple[str, float] | None = None
        try:
            self._relay = DoorRelay(config.relay, pin_factory=pin_factory, clock=clock, name="door relay")
            if config.aux_relay.enabled:
                self._aux = DoorRelay(
                    config.aux_relay, pin_factory=pin_factory, clock=clock, name="aux relay"
                )
            if config.emergency.enabled:
                self._alarm = AlarmOutput(config.emergency, pin_factory=pin_factory, clock=clock)
            if config.contact.enabled:
                self._contact = DoorContact(config.contact, pin_factory=pin_factory)
            if config.exit_button.enabled:
                self._exit = ExitButton(config.exit_button, pin_factory=pin_factory)
            if config.emergency.enabled:
                self._emergency = EmergencyButton(config.emergency, pin_factory=pin_factory)
            if config.tamper.enabled:
                self._tamper = TamperSwitch(config.tamper, pin_factory=pin_factory)
            if config.feedback.enabled:
                self._feedback = self._build_feedback(pin_factory, clock)
            self._attach()
        except BaseException:
            self.close()
            raise
        self._check_initial_state()

    def _build_feedback(self, pin_factory: Factory, clock: Clock) -> DoorFeedback:
        """Patterns on the feedback's own pins when given, else on the emergency buzzer / light."""
        feedback = self.config.feedback
        alarm = self._alarm
        outputs: dict[str, TimedOutput | None] = {
            "buzzer": alarm.buzzer if alarm is not None else None,
            "light": alarm.light if alarm is not None else None,
        }
        for label, pin in (("buzzer", feedback.buzzer_pin), ("light", feedback.led_pin)):
            if pin is not None:
                own = TimedOutput(
                    pin,
                    active_high=feedback.active_high,
                    default_s=1.0,
                    pin_factory=pin_factory,
                    clock=clock,
                    name=f"feedback {label}",
                )
                self._feedback_outputs.append(own)
                outputs[label] = own
        return DoorFeedback.from_config(feedback, buzzer=outputs["buzzer"], light=outputs["light"])

    # -- public API ------------------------------------------------------------------------
    def signal(self, name: str) -> None:
        """Tell the person at the door: "granted", "refused", "show_pass" or "locked" (returns at
        once; the pattern plays on the feedback thread). Nothing happens when feedback is off."""
        feedback = self._feedback
        if feedback is not None and not self._closed:
            feedback.signal(name)

    @property
    def feedback(self) -> DoorFeedback | None:
        return self._feedback

    def grant(self, seconds: float | None = None, *, reason: str) -> float:
        """Unlock the door for `seconds` (default relay.unlock_s); returns the energise time.

        `reason` (e.g. "face:member-42") is only logged and shown in state(): the caller records
        the access decision itself.
        """
        relay = self._require(self._relay)
        energised_at = relay.unlock(seconds)
        with self._lock:
            self._last_grant = (reason, energised_at)
        logger.info("door unlocked (%s)", reason)
        return energised_at

    def grant_aux(self, member_groups: Iterable[str], seconds: float | None = None) -> bool:
        """Unlock the second relay if it is enabled and the member is in one of its groups."""
        if self._aux is None:
            return False
        aux = self._require(self._aux)
        matching = set(member_groups).intersection(self.config.aux_relay.allowed_groups)
        if not matching:
            return False
        aux.unlock(seconds)
        logger.info("aux relay unlocked (groups %s)", ", ".join(sorted(matching)))
        return True

    def lock(self) -> None:
        """De-energise both relays now (a lockdown); pending windows are forgotten."""
        for relay in (self._relay, self._aux):
            if relay is not None:
                relay.lock()

    def state(self) -> dict[str, Any]:
        """A snapshot for status pages and health checks."""
        relay, aux, contact, alarm, tamper = self._relay, self._aux, self._contact, self._alarm, self._tamper
        now = self._clock()
        with self._lock:
            opened_at, last_grant, closed = self._opened_at, self._last_grant, self._closed
        door_open = contact.is_open if contact is not None and not closed else None
        return {
            "relay": "unlocked" if relay is not None and relay.is_unlocked else "locked",
            "relay_until": relay.off_at if relay is not None else None,
            "door_open": door_open,
            "door_open_s": now - opened_at if door_open and opened_at is not None else None,
            "aux": None if aux is None else ("unlocked" if aux.is_unlocked else "locked"),
            "alarm": alarm is not None and alarm.is_sounding,
            "tampered": None if tamper is None or closed else tamper.is_tampered,
            "last_grant_reason": last_grant[0] if last_grant else None,
            "last_signal": self._feedback.played[-1] if self._feedback and self._feedback.played else None,
            "closed": closed,
        }

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Relays de-energised and released first, then the alarm, then the inputs. Idempotent."""
        with self._lock:
            already = self._closed
            self._closed = True
            timer, self._held_timer = self._held_timer, None
        if timer is not None:
            timer.cancel()
        if already:
            return
        if self._feedback is not None:
            try:
                self._feedback.close()  # before the outputs it plays on
            except Exception:
                logger.exception("closing the door feedback failed")
        for part in (
            self._relay,
            self._aux,
            self._alarm,
            self._contact,
            self._exit,
            self._emergency,
            self._tamper,
            *self._feedback_outputs,
        ):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    logger.exception("closing %r failed", part)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- wiring ----------------------------------------------------------------------------
    def _attach(self) -> None:
        if self._exit is not None:
            self._exit.when_pressed = self._exit_pressed
        if self._emergency is not None:
            self._emergency.when_pressed = self._emergency_pressed
        if self._contact is not None:
            self._contact.when_opened = self._door_opened
            self._contact.when_closed = self._door_closed
        if self._tamper is not None:
            self._tamper.when_tampered = self._tampered
            self._tamper.when_restored = self._tamper_restored

    def _check_initial_state(self) -> None:
        """A door already open at start is timed for held-open (not called forced: we did not see
        it open); an enclosure already open at start is reported as tampering."""
        if self._contact is not None and self._contact.is_open:
            logger.warning("door contact reads open at start")
            with self._lock:
                self._mark_open_locked(self._clock())
        if self._tamper is not None and self._tamper.is_tampered:
            self._emit(DoorEvent(TAMPER, None, self._clock(), {"at_start": True}))

    # -- input handlers (gpiozero callback thread) ------------------------------------------
    def _exit_pressed(self) -> None:
        at = self._clock()
        if self._closed or self._relay is None:
            return
        details: dict[str, Any] = {}
        try:
            details["unlocked_at"] = self._relay.unlock()
        except DoorClosedError:
            return
        except Exception as exc:  # still report the press: someone may be stuck inside
            logger.exception("exit button: the relay could not be energised")
            details["error"] = f"{type(exc).__name__}: {exc}"
        self._emit(DoorEvent(EXIT, "exit_button", at, details))

    def _emergency_pressed(self) -> None:
        at = self._clock()
        if self._closed:
            return
        alarm = self._alarm
        if alarm is not None:
            alarm.sound()  # local first: it needs nothing but a pin write
        self._emit(
            DoorEvent(EMERGENCY, "emergency_button", at, {"alarm": alarm is not None and alarm.configured})
        )

    def _door_opened(self) -> None:
        now = self._clock()
        relay = self._relay
        with self._lock:
            if self._closed or self._door_open:
                return
            self._mark_open_locked(now)
        if relay is None:
            return
        # Read after the edge: a grant energises before the strike can release, so a granted
        # opening always finds the relay on or, if it has just re-locked, released within grace_s.
        # is_unlocked first: the relay records released_at before it reports itself locked.
        granted = relay.is_unlocked
        if not granted:
            released_at = relay.released_at
            granted = released_at is not None and now - released_at <= self.config.contact.grace_s
        if not granted:
            logger.warning("door forced: opened with no grant window")
            self._emit(DoorEvent(DOOR_FORCED, None, now, {}))

    def _door_closed(self) -> None:
        now = self._clock()
        with self._lock:
            if not self._door_open:
                return
            self._door_open = False
            self._opening += 1
            timer, self._held_timer = self._held_timer, None
            was_held, opened_at = self._held_reported, self._opened_at
            self._held_reported = False
            self._opened_at = None
        if timer is not None:
            timer.cancel()
        if was_held and opened_at is not None and not self._closed:
            self._emit(DoorEvent(DOOR_CLOSED_AFTER_HELD, None, now, {"open_s": round(now - opened_at, 3)}))

    def _mark_open_locked(self, now: float) -> None:
        self._door_open = True
        self._opened_at = now
        self._held_reported = False
        self._opening += 1
        if self._held_timer is not None:
            self._held_timer.cancel()
        timer = threading.Timer(self.config.contact.held_open_s, self._held_expired, args=(self._opening,))
        timer.daemon = True
        timer.name = "door-held-open"
        self._held_timer = timer
        timer.start()

    def _held_expired(self, opening: int) -> None:
        now = self._clock()
        with self._lock:
            if self._closed or opening != self._opening or not self._door_open or self._held_reported:
                return
            self._held_reported = True
            self._held_timer = None
            opened_at = self._opened_at
        open_s = round(now - opened_at, 3) if opened_at is not None else None
        logger.warning("door held open for %s s", open_s)
        self._emit(
            DoorEvent(
                DOOR_HELD_OPEN, None, now, {"open_s": open_s, "held_open_s": self.config.contact.held_open_s}
            )
        )

    def _tampered(self) -> None:
        at = self._clock()
        if self._closed:
            return
        logger.warning("tamper switch: enclosure opened")
        self._emit(DoorEvent(TAMPER, None, at, {"at_start": False}))

    def _tamper_restored(self) -> None:
        logger.info("tamper switch: enclosure closed again")

    # -- helpers ---------------------------------------------------------------------------
    def _emit(self, event: DoorEvent) -> None:
        """Hand an event to the sink; a raising sink is logged, never propagated."""
        try:
            self._sink(event)
        except Exception:
            logger.exception("door event sink raised on %s; the door carries on", event.kind)

    def _require(self, relay: DoorRelay | None) -> DoorRelay:
        if self._closed or relay is None:
            raise DoorClosedError("door controller is closed")
        return relay
