"""The door on gpiozero mock pins: the relay never fires at start or shutdown, events, config.

Every test gets its own MockFactory passed as `pin_factory=` (gpiozero's global `Device.pin_factory`
is never touched) and closes what it built in `finally`, so a failing test cannot leave a pin
reserved for the next one. Pin states are asserted on the mock pins' recorded history, i.e. the
electrical level, not on what our objects believe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import DigitalOutputDevice, GPIOPinInUse
from gpiozero.pins.mock import MockFactory, MockPin
from pydantic import ValidationError

import door.relay as relay_module
from door.config import (
    BOARD_TO_BCM,
    AuxRelayConfig,
    ButtonConfig,
    ContactConfig,
    DoorConfig,
    EmergencyConfig,
    RelayConfig,
    TamperConfig,
    bcm_number,
)
from door.controller import DoorController, DoorEvent
from door.inputs import AlarmOutput, DoorContact, ExitButton
from door.pins import DoorClosedError, DoorError, DoorHardwareError, _looks_like_a_pi, make_pin_factory
from door.relay import DoorRelay

RELAY, CONTACT, EXIT, EMERGENCY, BUZZER, TAMPER, AUX = 17, 27, 22, 23, 24, 5, 6


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pin_factory = MockFactory()
    try:
        yield pin_factory
    finally:
        pin_factory.reset()
        pin_factory.close()


class Events:
    """A sink that records events with the time it was called."""

    def __init__(self) -> None:
        self.items: list[tuple[float, DoorEvent]] = []
        self.before: Callable[[DoorEvent], None] | None = None

    def __call__(self, event: DoorEvent) -> None:
        if self.before is not None:
            self.before(event)
        self.items.append((time.monotonic(), event))

    def kinds(self) -> list[str]:
        return [event.kind for _, event in self.items]

    def of(self, kind: str) -> list[DoorEvent]:
        return [event for _, event in self.items if event.kind == kind]


def mock_pin(factory: MockFactory, number: int) -> MockPin:
    pin: MockPin = factory.pin(number)
    return pin


def levels(pin: MockPin) -> list[bool]:
    return [bool(state.state) for state in pin.states]


#: How long a test waits for something that should happen at once: far above the expected time, so
#: a busy machine never fails a test that only checks that something happens.
LONG_WAIT_S = 30.0


def wait_for(condition: Callable[[], bool], timeout: float = LONG_WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def door_config(**sections: dict[str, Any]) -> DoorConfig:
    return DoorConfig.model_validate(sections)


def assert_released(factory: MockFactory, *pins: int) -> None:
    """Nothing holds these pins any more: a new device can claim each one."""
    for number in pins:
        DigitalOutputDevice(number, pin_factory=factory).close()


# -- relay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("active_high", [True, False])
def test_relay_is_never_energised_during_start_up_or_shutdown(
    factory: MockFactory, active_high: bool
) -> None:
    pin = mock_pin(factory, RELAY)
    locked_level = not active_high  # the electrical level that keeps the door locked
    # Before we start the pin sits at the locked level (the board's power-on pull, chosen to match).
    pin.drive_high() if locked_level else pin.drive_low()
    pin.clear_states()
    relay = DoorRelay(RelayConfig(pin=RELAY, active_high=active_high), pin_factory=factory)
    try:
        assert pin.state == locked_level and not relay.is_unlocked
    finally:
        relay.close()
        relay.close()  # idempotent
    assert levels(pin) == [locked_level]
    assert_released(factory, RELAY)


def test_active_low_relay_history_after_a_floating_low_pin(factory: MockFactory) -> None:
    """Even from a floating (LOW, i.e. 'energised' for active-low) pin, our first write is 'locked'."""
    pin = mock_pin(factory, RELAY)
    assert pin.state is False
    with DoorRelay(RelayConfig(pin=RELAY, active_high=False), pin_factory=factory) as relay:
        assert levels(pin) == [False, True]  # the pre-existing level, then locked at construction
        relay.unlock(0.2)
        assert pin.state is False  # energised = LOW
    assert levels(pin) == [False, True, False, True]


@pytest.mark.parametrize("active_high", [True, False])
def test_unlock_energises_and_relocks_after_unlock_s(factory: MockFactory, active_high: bool) -> None:
    pin = mock_pin(factory, RELAY)
    released: list[float] = []
    energised: list[float] = []
    relay = DoorRelay(
        RelayConfig(pin=RELAY, active_high=active_high, unlock_s=0.2),
        pin_factory=factory,
        on_energised=energised.append,
        on_released=released.append,
    )
    try:
        pin.clear_states()
        before = time.monotonic()
        at = relay.unlock()
        assert before <= at <= time.monotonic()
        assert energised == [at]
        assert relay.is_unlocked and pin.state == active_high
        assert relay.off_at == pytest.approx(at + 0.2)
        assert wait_for(lambda: not relay.is_unlocked)
        assert pin.state == (not active_high)
        # Released after unlock_s, never before (how soon after depends on the machine's load).
        assert released and released[0] - at >= 0.15
        assert levels(pin) == [not active_high, active_high, not active_high]
        assert pin.states[2].timestamp >= 0.15  # seconds spent energised
    finally:
        relay.close()


def test_second_unlock_extends_the_window_without_chatter(factory: MockFactory) -> None:
    pin = mock_pin(factory, RELAY)
    # A 1 s window, extended after 0.2 s: a second pulse would need the sleep to overshoot by 0.8 s.
    relay = DoorRelay(RelayConfig(pin=RELAY, unlock_s=1.0), pin_factory=factory)
    try:
        relay.unlock()
        time.sleep(0.2)
        relay.unlock()  # ends ~1.2 s after the first
        relay.unlock(0.2)  # shorter: must not cut the window short
        assert relay.is_unlocked and pin.state is True
        assert wait_for(lambda: not relay.is_unlocked)
        assert levels(pin) == [False, True, False]  # one pulse, no blink
        assert pin.states[2].timestamp >= 1.15  # energised past the first window's end
    finally:
        relay.close()


def test_a_timer_that_fired_just_before_an_extension_does_not_cut_it_short(factory: MockFactory) -> None:
    """The race the generation counter closes: the old timer is already running (so cancel() is too
    late) and reaches the lock only after a second unlock extended the window."""
    pin = mock_pin(factory, RELAY)
    with DoorRelay(RelayConfig(pin=RELAY, unlock_s=5), pin_factory=factory) as relay:
        relay.unlock()
        stale = relay._generation
        relay.unlock(10)
        relay._expire(stale)  # what the first window's timer thread does when it finally runs
        assert relay.is_unlocked and pin.state is True
        relay._expire(relay._generation)  # the current window's timer does switch off
        assert not relay.is_unlocked and pin.state is False


def test_lock_and_close_de_energise_at_once_and_stale_timers_do_nothing(factory: MockFactory) -> None:
    pin = mock_pin(factory, RELAY)
    relay = DoorRelay(RelayConfig(pin=RELAY, unlock_s=0.2), pin_factory=factory)
    try:
        relay.unlock()
        relay.lock()
        assert pin.state is False and not relay.is_unlocked and relay.off_at is None
        relay.unlock(0.2)
        assert pin.state is True
    finally:
        relay.close()
    assert pin.state is False and relay.closed
    time.sleep(0.3)  # past the window: the cancelled timer must not touch the pin
    assert levels(pin) == [False, True, False, True, False]
    with pytest.raises(DoorClosedError):
        relay.unlock()
    relay.lock()  # harmless after close
    assert_released(factory, RELAY)


def test_relay_is_switched_back_off_if_its_timer_cannot_start(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = mock_pin(factory, RELAY)
    with DoorRelay(RelayConfig(pin=RELAY), pin_factory=factory) as relay:

        def no_threads(self: threading.Timer) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Timer, "start", no_threads)
        with pytest.raises(RuntimeError):
            relay.unlock()
        assert not relay.is_unlocked and pin.state is False


def test_unlock_refuses_nonsense_durations(factory: MockFactory) -> None:
    with DoorRelay(RelayConfig(pin=RELAY), pin_factory=factory) as relay:
        for bad in (0.0, -1.0, float("nan"), float("inf"), 10_000.0):
            with pytest.raises(ValueError):
                relay.unlock(bad)
        assert not relay.is_unlocked


def test_exit_hook_de_energises_a_relay_nobody_closed(factory: MockFactory) -> None:
    """What a crash leaves: the daemon died without close(); the atexit hook locks the door."""
    pin = mock_pin(factory, RELAY)
    relay = DoorRelay(RelayConfig(pin=RELAY, unlock_s=30), pin_factory=factory)
    try:
        relay.unlock()
        assert pin.state is True
        relay_module._switch_everything_off()
        assert pin.state is False
    finally:
        relay.close()


def test_a_raising_relay_callback_does_not_stop_the_relay(factory: MockFactory) -> None:
    def boom(_: float) -> None:
        raise RuntimeError("callback bug")

    pin = mock_pin(factory, RELAY)
    with DoorRelay(
        RelayConfig(pin=RELAY, unlock_s=0.2), pin_factory=factory, on_energised=boom, on_released=boom
    ) as relay:
        relay.unlock()
        assert pin.state is True
        assert wait_for(lambda: pin.state is False)


# -- inputs and alarm -----------------------------------------------------------------------


def test_door_contact_polarity(factory: MockFactory) -> None:
    pin = mock_pin(factory, CONTACT)
    seen: list[str] = []
    for open_is_active in (True, False):
        contact = DoorContact(ContactConfig(pin=CONTACT, open_is_active=open_is_active), pin_factory=factory)
        try:
            contact.when_opened = lambda: seen.append("opened")
            contact.when_closed = lambda: seen.append("closed")
            open_level = not open_is_active  # pull-up: active is LOW
            pin.drive_high() if not open_level else pin.drive_low()  # closed
            seen.clear()
            pin.drive_high() if open_level else pin.drive_low()
            assert contact.is_open and seen == ["opened"]
            pin.drive_high() if not open_level else pin.drive_low()
            assert not contact.is_open and seen == ["opened", "closed"]
        finally:
            contact.close()


def test_alarm_output_sounds_extends_and_silences(factory: MockFactory) -> None:
    buzzer, led = mock_pin(factory, BUZZER), mock_pin(factory, 25)
    alarm = AlarmOutput(EmergencyConfig(buzzer_pin=BUZZER, led_pin=25, alarm_s=0.5), pin_factory=factory)
    try:
        alarm.sound(0.2)
        assert alarm.is_sounding and buzzer.state is True and led.state is True
        assert wait_for(lambda: not alarm.is_sounding)
        alarm.sound()
        alarm.silence()
        assert buzzer.state is False and led.state is False
    finally:
        alarm.close()
    assert levels(buzzer) == [False, True, False, True, False]
    assert_released(factory, BUZZER, 25)


def test_alarm_output_failing_halfway_releases_the_first_pin(factory: MockFactory) -> None:
    taken = DigitalOutputDevice(25, pin_factory=factory)
    try:
        with pytest.raises(GPIOPinInUse):
            AlarmOutput(EmergencyConfig(buzzer_pin=BUZZER, led_pin=25), pin_factory=factory)
        assert_released(factory, BUZZER)
        assert levels(mock_pin(factory, BUZZER)) == [False]
    finally:
        taken.close()


def test_a_raising_input_callback_is_contained(factory: MockFactory) -> None:
    pin = mock_pin(factory, EXIT)
    with ExitButton(ButtonConfig(pin=EXIT), pin_factory=factory) as button:

        def boom() -> None:
            raise RuntimeError("handler bug")

        button.when_pressed = boom
        pin.drive_low()  # would raise into the driver's thread without the guard
        assert button.is_pressed
    assert button.closed


# -- controller -----------------------------------------------------------------------------


@pytest.fixture
def events() -> Events:
    return Events()


def make_controller(
    factory: MockFactory, sink: Callable[[DoorEvent], None], **sections: dict[str, Any]
) -> DoorController:
    return DoorController(door_config(**sections), pin_factory=factory, sink=sink)


def test_controller_start_and_close_never_energise_and_release_everything(
    factory: MockFactory, events: Events
) -> None:
    relay_pin, buzzer_pin = mock_pin(factory, RELAY), mock_pin(factory, BUZZER)
    controller = make_controller(factory, events, aux_relay={"enabled": True, "allowed_groups": ["drivers"]})
    aux_pin = mock_pin(factory, AUX)
    try:
        assert controller.state()["relay"] == "locked" and controller.state()["aux"] == "locked"
        controller.grant(reason="test")
        assert relay_pin.state is True
    finally:
        controller.close()
        controller.close()
    assert relay_pin.state is False and levels(relay_pin) == [False, True, False]
    assert levels(aux_pin) == [False] and levels(buzzer_pin) == [False]
    assert events.items == []
    assert controller.state()["closed"] is True
    with pytest.raises(DoorClosedError):
        controller.grant(reason="after close")
    assert_released(factory, RELAY, CONTACT, EXIT, EMERGENCY, BUZZER, AUX)


def test_construction_failure_closes_what_was_opened(factory: MockFactory, events: Events) -> None:
    relay_pin = mock_pin(factory, RELAY)
    squatter = DigitalOutputDevice(EMERGENCY, pin_factory=factory)  # something else holds the button pin
    try:
        with pytest.raises(GPIOPinInUse):
            make_controller(factory, events)
    finally:
        squatter.close()
    assert levels(relay_pin) == [False]
    assert levels(mock_pin(factory, BUZZER)) == [False]
    assert_released(factory, RELAY, CONTACT, EXIT, EMERGENCY, BUZZER)
    assert events.items == []


def test_exit_button_unlocks_then_reports(factory: MockFactory, events: Events) -> None:
    relay_pin, exit_pin = mock_pin(factory, RELAY), mock_pin(factory, EXIT)
    relay_at_sink: list[bool] = []
    events.before = lambda event: relay_at_sink.append(relay_pin.state)
    controller = make_controller(factory, events, relay={"unlock_s": 0.2})
    try:
        exit_pin.drive_low()
        assert events.kinds() == ["exit"]
        event = events.of("exit")[0]
        assert event.method == "exit_button" and "unlocked_at" in event.details
        assert relay_at_sink == [True]  # energised before the event was written: no waiting to leave
        assert controller.state()["relay"] == "unlocked"
        exit_pin.drive_high()
        assert wait_for(lambda: relay_pin.state is False)
    finally:
        controller.close()


def test_emergency_reaches_the_sink_within_100_ms_and_sounds_the_buzzer(
    factory: MockFactory, events: Events
) -> None:
    emergency_pin, buzzer_pin = mock_pin(factory, EMERGENCY), mock_pin(factory, BUZZER)
    controller = make_controller(factory, events, emergency={"alarm_s": 0.5})
    try:
        emergency_pin.drive_low()
        # Delivered inside the press's own callback, before drive_low() returns: nothing queues it
        # (so it is on its way to disk at once, whatever else the station is doing).
        assert events.of("emergency")
        _, event = next(item for item in events.items if item[1].kind == "emergency")
        assert event.method == "emergency_button" and event.details == {"alarm": True}
        assert buzzer_pin.state is True and controller.state()["alarm"] is True
        assert controller.state()["relay"] == "locked"  # a call for help opens nothing
        assert wait_for(lambda: buzzer_pin.state is False)
    finally:
        controller.close()
    assert buzzer_pin.state is False


def test_door_forced_without_a_grant(factory: MockFactory, events: Events) -> None:
    contact_pin = mock_pin(factory, CONTACT)
    controller = make_controller(factory, events)
    try:
        assert controller.state()["door_open"] is False
        contact_pin.drive_low()  # open (active, pull-up)
        assert events.kinds() == ["door_forced"]
        assert controller.state()["door_open"] is True
        contact_pin.drive_low()  # no edge, no second event
        contact_pin.drive_high()
        assert events.kinds() == ["door_forced"]
    finally:
        controller.close()


def test_opening_during_or_just_after_a_grant_is_not_forced(factory: MockFactory, events: Events) -> None:
    contact_pin = mock_pin(factory, CONTACT)
    # grace_s far above the few milliseconds between the re-lock and the push below, busy or not.
    controller = make_controller(factory, events, relay={"unlock_s": 0.2}, contact={"grace_s": 5.0})
    try:
        controller.grant(reason="face:m1")
        assert controller.state()["last_grant_reason"] == "face:m1"
        contact_pin.drive_low()
        contact_pin.drive_high()
        assert wait_for(lambda: controller.state()["relay"] == "locked")
        contact_pin.drive_low()  # pushed just as the strike re-locked: within grace_s
        contact_pin.drive_high()
        assert events.kinds() == []
    finally:
        controller.close()


def test_held_open_once_per_opening_then_closed_after_held(factory: MockFactory, events: Events) -> None:
    contact_pin = mock_pin(factory, CONTACT)
    controller = make_controller(factory, events, contact={"held_open_s": 1.0})
    try:
        controller.grant(reason="test")
        contact_pin.drive_low()
        time.sleep(0.3)
        contact_pin.drive_high()  # closed before held_open_s: its timer must not report later
        controller.grant(reason="test")
        contact_pin.drive_low()
        opened = time.monotonic()
        assert wait_for(lambda: bool(events.of("door_held_open")))
        assert time.monotonic() - opened >= 0.95
        time.sleep(0.2)
        assert events.kinds() == ["door_held_open"]
        assert events.of("door_held_open")[0].details["held_open_s"] == 1.0
        contact_pin.drive_high()
        assert events.kinds() == ["door_held_open", "door_closed_after_held"]
        assert events.of("door_closed_after_held")[0].details["open_s"] >= 1.0
    finally:
        controller.close()


def test_tamper_at_start_and_on_opening(factory: MockFactory, events: Events) -> None:
    tamper_pin = mock_pin(factory, TAMPER)
    # Default wiring: a switch held closed by the lid; the mock pin floats up to HIGH = lid open.
    controller = make_controller(factory, events, tamper={"enabled": True})
    try:
        assert events.kinds() == ["tamper"] and events.of("tamper")[0].details == {"at_start": True}
        tamper_pin.drive_low()  # lid closed
        assert controller.state()["tampered"] is False
        tamper_pin.drive_high()
        assert events.kinds() == ["tamper", "tamper"]
        assert events.of("tamper")[1].details == {"at_start": False}
    finally:
        controller.close()


def test_door_open_at_start_is_timed_not_forced(factory: MockFactory, events: Events) -> None:
    contact_pin = mock_pin(factory, CONTACT)
    # With open_is_active = false and a pull-up, a floating (HIGH) input reads open.
    controller = make_controller(factory, events, contact={"open_is_active": False, "held_open_s": 1.0})
    try:
        assert controller.state()["door_open"] is True
        assert events.kinds() == []
        assert wait_for(lambda: bool(events.of("door_held_open")))
        contact_pin.drive_low()
    finally:
        controller.close()


def test_aux_relay_opens_only_for_its_groups(factory: MockFactory, events: Events) -> None:
    controller = make_controller(
        factory,
        events,
        aux_relay={"enabled": True, "allowed_groups": ["drivers", "cleaners"], "unlock_s": 0.2},
    )
    aux_pin, relay_pin = mock_pin(factory, AUX), mock_pin(factory, RELAY)
    try:
        assert controller.grant_aux(["couriers"]) is False and aux_pin.state is False
        assert controller.grant_aux([]) is False
        assert controller.grant_aux(["couriers", "drivers"]) is True
        assert aux_pin.state is True and relay_pin.state is False
        assert controller.state()["aux"] == "unlocked"
        controller.lock()
        assert aux_pin.state is False
    finally:
        controller.close()
    without = make_controller(factory, events)
    try:
        assert without.grant_aux(["drivers"]) is False and without.state()["aux"] is None
    finally:
        without.close()


def test_a_raising_sink_does_not_stop_the_door(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_sink(event: DoorEvent) -> None:
        raise RuntimeError("event writer bug")

    relay_pin, exit_pin = mock_pin(factory, RELAY), mock_pin(factory, EXIT)
    emergency_pin, buzzer_pin = mock_pin(factory, EMERGENCY), mock_pin(factory, BUZZER)
    contact_pin = mock_pin(factory, CONTACT)
    controller = make_controller(factory, broken_sink, relay={"unlock_s": 0.2})
    try:
        with caplog.at_level(logging.ERROR, logger="door.controller"):
            exit_pin.drive_low()
            emergency_pin.drive_low()
            contact_pin.drive_low()
        assert relay_pin.state is True and buzzer_pin.state is True
        assert sum("sink raised" in record.getMessage() for record in caplog.records) == 2  # exit, emergency
        exit_pin.drive_high()
        assert wait_for(lambda: relay_pin.state is False)
        controller.grant(reason="still works")
        assert relay_pin.state is True
    finally:
        controller.close()


def test_callbacks_from_many_threads_leave_a_consistent_door(factory: MockFactory, events: Events) -> None:
    relay_pin = mock_pin(factory, RELAY)
    controller = make_controller(factory, events, relay={"unlock_s": 0.2})
    try:
        workers = [
            threading.Thread(target=lambda: [controller.grant(0.2, reason="t") for _ in range(50)])
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert wait_for(lambda: relay_pin.state is False)
        assert levels(relay_pin) == [False, True, False]
    finally:
        controller.close()


# -- pin factory ------------------------------------------------------------------------------


def test_mock_pin_factory() -> None:
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()


@pytest.mark.skipif(_looks_like_a_pi(), reason="this is a Raspberry Pi: real drivers may load")
@pytest.mark.parametrize("name", ["rpigpio", "lgpio", "native", "auto"])
def test_real_pin_factory_off_a_pi_refuses_with_the_hint(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(DoorHardwareError) as caught:
        make_pin_factory(name)
    message = str(caught.value)
    assert message.startswith("no GPIO here (")
    assert 'set [door.gpio] pin_factory = "mock" to run without hardware' in message
    assert isinstance(caught.value, DoorError) and isinstance(caught.value, RuntimeError)


def test_unknown_pin_factory_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pin factory"):
        make_pin_factory("gpiod")


# -- config -----------------------------------------------------------------------------------


def test_defaults_work_on_a_laptop() -> None:
    config = DoorConfig()
    assert config.gpio.pin_factory == "mock"
    assert config.relay.active_high is True and config.relay.unlock_s == 3.0
    assert not config.tamper.enabled and not config.aux_relay.enabled
    assert set(config.pins_in_use()) == {
        "relay.pin",
        "contact.pin",
        "exit_button.pin",
        "emergency.pin",
        "emergency.buzzer_pin",
    }


@pytest.mark.parametrize(
    ("sections", "first", "second"),
    [
        ({"exit_button": {"pin": 17}}, "relay.pin", "exit_button.pin"),
        ({"exit_button": {"pin": "BOARD11"}}, "relay.pin", "exit_button.pin"),
        ({"emergency": {"led_pin": "GPIO24"}}, "emergency.buzzer_pin", "emergency.led_pin"),
        ({"tamper": {"enabled": True, "pin": "J8:13"}}, "contact.pin", "tamper.pin"),
        (
            {"aux_relay": {"enabled": True, "pin": 23, "allowed_groups": ["g"]}},
            "emergency.pin",
            "aux_relay.pin",
        ),
    ],
)
def test_duplicate_pins_are_refused_naming_both_keys(
    sections: dict[str, Any], first: str, second: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        door_config(**sections)
    message = str(caught.value)
    assert first in message and second in message


def test_disabled_devices_do_not_claim_pins() -> None:
    config = door_config(
        tamper={"pin": 17}, exit_button={"enabled": False, "pin": 17}, emergency={"enabled": False}
    )
    assert "tamper.pin" not in config.pins_in_use()


@pytest.mark.parametrize(
    "sections",
    [
        {"relay": {"pinn": 17}},
        {"relays": {}},
        {"gpio": {"pin_factory": "wiringpi"}},
        {"relay": {"unlock_s": 0.1}},
        {"relay": {"unlock_s": 31}},
        {"relay": {"pin": 28}},
        {"relay": {"pin": -1}},
        {"relay": {"pin": "GPIO99"}},
        {"relay": {"pin": "BOARD2"}},
        {"relay": {"pin": "17"}},
        {"relay": {"pin": True}},
        {"relay": {"pin": 17.0}},
        {"contact": {"held_open_s": 0.5}},
        {"contact": {"held_open_s": 601}},
        {"contact": {"grace_s": -1}},
        {"emergency": {"bounce_s": 0.1}},
        {"emergency": {"alarm_s": 0}},
        {"exit_button": {"bounce_s": -0.01}},
        {"aux_relay": {"enabled": True}},
        {"aux_relay": {"allowed_groups": [""]}},
    ],
)
def test_bad_values_and_unknown_keys_are_refused(sections: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        door_config(**sections)


def test_pin_names_are_accepted_and_normalised() -> None:
    config = door_config(relay={"pin": "gpio17"}, contact={"pin": "BCM27"}, exit_button={"pin": "board15"})
    assert config.relay.pin == "GPIO17" and config.exit_button.pin == "BOARD15"
    assert [bcm_number(pin) for pin in config.pins_in_use().values()][:3] == [17, 27, 22]


def test_sections_are_frozen() -> None:
    config = DoorConfig()
    with pytest.raises(ValidationError):
        config.relay.unlock_s = 10  # type: ignore[misc]
    assert AuxRelayConfig(enabled=True, allowed_groups=("a",)).allowed_groups == ("a",)
    assert TamperConfig().tampered_is_active is False


def test_board_numbers_match_gpiozero(factory: MockFactory) -> None:
    info = factory.board_info
    for board, bcm in BOARD_TO_BCM.items():
        [(_, pin_info)] = list(info.find_pin(f"BOARD{board}"))
        assert pin_info.name == f"GPIO{bcm}"
    assert sorted(BOARD_TO_BCM.values()) == list(range(28))
