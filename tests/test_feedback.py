"""Feedback for the worker at the door: buzzer / light patterns on real (mock) pins and a text line."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from door.config import DoorConfig, FeedbackConfig
from door.feedback import CommandLine, DeviceLine, DoorFeedback
from door.inputs import AlarmOutput
from door.relay import TimedOutput
from edge.config import ConfigError, parse_config
from edge.feedback import signal_for

BUZZER, LIGHT = 24, 25
FAST = {
    "granted": (0.05,),
    "refused": (0.05, 0.15, 0.05, 0.15, 0.05),
    "show_pass": (0.2, 0.15, 0.05),
    "locked": (1.0, 0.2, 1.0, 0.2, 1.0),
}


def pulses(pin: Any) -> list[float]:
    """How long each on-period of a mock pin lasted. MockPin records every change of state with the
    time since the previous change, so an on->off entry holds the length of that on-period."""
    states = list(pin.states)
    return [
        after.timestamp
        for before, after in zip(states, states[1:], strict=False)
        if before.state and not after.state
    ]


@pytest.fixture
def factory() -> Any:
    pins = MockFactory()
    yield pins
    pins.close()


def player(factory: Any, **config: Any) -> tuple[DoorFeedback, TimedOutput]:
    buzzer = TimedOutput(BUZZER, active_high=True, default_s=1.0, pin_factory=factory, name="buzzer")
    feedback = DoorFeedback(FeedbackConfig(**{**FAST, **config}), [buzzer])
    return feedback, buzzer


def test_each_signal_plays_its_pattern_on_the_pin(factory: Any) -> None:
    feedback, buzzer = player(factory)
    try:
        for signal, beeps in (("refused", 3), ("granted", 1), ("show_pass", 2)):
            before = len(pulses(factory.pin(BUZZER)))
            feedback.signal(signal)
            assert feedback.wait_idle(30)
            durations = pulses(factory.pin(BUZZER))[before:]
            assert len(durations) == beeps, (signal, durations)
            on_steps = FAST[signal][::2]
            # Each beep lasts at least its step (never cut short); the pin ends low.
            assert all(d >= s * 0.9 for d, s in zip(durations, on_steps, strict=True)), durations
            assert factory.pin(BUZZER).state is False
        assert list(feedback.played) == ["refused", "granted", "show_pass"]
    finally:
        feedback.close()
        buzzer.close()


def test_the_latest_signal_wins(factory: Any) -> None:
    feedback, buzzer = player(factory)
    try:
        feedback.signal("locked")  # 3 s of long beeps
        feedback.signal("granted")
        assert feedback.wait_idle(30)
        assert feedback.played[-1] == "granted"
        assert len(pulses(factory.pin(BUZZER))) <= 2  # locked was cut off after at most one beep
        assert factory.pin(BUZZER).state is False
    finally:
        feedback.close()
        buzzer.close()


def test_a_pattern_never_cuts_an_emergency_alarm_short(factory: Any) -> None:
    config = DoorConfig().emergency
    alarm = AlarmOutput(config, pin_factory=factory)
    assert alarm.buzzer is not None
    feedback = DoorFeedback(FeedbackConfig(**FAST), [alarm.buzzer])
    try:
        alarm.sound(30.0)
        feedback.signal("refused")
        assert feedback.wait_idle(30)
        assert factory.pin(BUZZER).state is True and alarm.is_sounding
        # A beep alone is not an alarm.
        alarm.silence()
        feedback.signal("granted")
        assert not alarm.is_sounding
        assert feedback.wait_idle(30)
    finally:
        feedback.close()
        alarm.close()


class StuckLine:
    """A text line whose `show` blocks until released: the player thread is busy meanwhile."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def show(self, name: str, message: str) -> None:
        self.entered.set()
        self.release.wait(10)

    def close(self) -> None:
        pass


def test_close_stops_the_thread_even_when_the_queue_is_full(factory: Any) -> None:
    """A busy player with a full queue of signals still stops on close (its stop sentinel used to
    be dropped when the queue was full, and the thread then waited for signals forever)."""
    buzzer = TimedOutput(BUZZER, active_high=True, default_s=1.0, pin_factory=factory, name="buzzer")
    line = StuckLine()
    feedback = DoorFeedback(FeedbackConfig(**FAST), [buzzer], [line])
    feedback.signal("granted")
    assert line.entered.wait(5)
    for _ in range(20):  # more than the queue holds: the oldest are dropped, the queue stays full
        feedback.signal("refused")
    closer = threading.Thread(target=feedback.close)
    closer.start()
    time.sleep(0.1)  # close() is waiting for the thread, which is still inside show()
    line.release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert not feedback._thread.is_alive(), "the player thread did not stop"
    assert factory.pin(BUZZER).state is False
    buzzer.close()


def test_unknown_signals_are_refused(factory: Any) -> None:
    feedback, buzzer = player(factory)
    with pytest.raises(ValueError, match="unknown feedback signal"):
        feedback.signal("party")
    feedback.close()
    buzzer.close()


# -- text lines -----------------------------------------------------------------------------------


def test_a_text_line_goes_to_a_fifo_reader_and_never_blocks_without_one(tmp_path: Path) -> None:
    fifo = tmp_path / "display"
    os.mkfifo(fifo)
    line = DeviceLine(fifo)
    line.show("granted", "请进")  # nobody reads: dropped at once (ENXIO), no hang
    assert line.dropped == 1 and line.written == 0
    got: list[bytes] = []
    reader_ready = threading.Event()

    def read() -> None:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        reader_ready.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not got:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                chunk = b""
            if chunk:
                got.append(chunk)
            time.sleep(0.01)
        os.close(fd)

    thread = threading.Thread(target=read)
    thread.start()
    reader_ready.wait(10)
    line.show("show_pass", "未识别，请出示通行码")
    thread.join(30)
    assert got == ["show_pass\t未识别，请出示通行码\n".encode()]


def test_a_text_command_gets_the_signal_and_message(tmp_path: Path) -> None:
    out = tmp_path / "said.txt"
    script = (
        "import sys; open(sys.argv[1], 'a', encoding='utf-8').write(sys.argv[2] + '|' + sys.argv[3] + '\\n')"
    )
    line = CommandLine([sys.executable, "-c", script, str(out)])
    line.show("locked", "请联系工会")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and out.read_text(encoding="utf-8")):
        time.sleep(0.05)
    line.close()
    assert out.read_text(encoding="utf-8") == "locked|请联系工会\n"


# -- rules and config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "signal"),
    [
        ({"kind": "entry", "method": "face"}, "granted"),
        ({"kind": "entry", "method": "qr"}, "granted"),
        ({"kind": "entry", "method": "remote"}, "granted"),
        ({"kind": "exit", "method": "face"}, "granted"),
        ({"kind": "exit", "method": "exit_button"}, None),
        ({"kind": "refused", "method": "face", "reason": "unknown_face"}, "show_pass"),
        # The grey zone (and members who require the pass): the door asks, it does not refuse.
        ({"kind": "refused", "method": "face", "reason": "show_pass"}, "show_pass"),
        ({"kind": "refused", "method": "face", "reason": "face_mismatch"}, "refused"),
        ({"kind": "refused", "method": "qr", "reason": "expired"}, "refused"),
        ({"kind": "refused", "method": "face", "reason": "lockout"}, "locked"),
        ({"kind": "lockout", "method": "qr", "reason": "lockout_started"}, "locked"),
        ({"kind": "emergency", "method": "emergency_button"}, None),
        ({"kind": "station_started"}, None),
    ],
)
def test_which_event_gets_which_signal(event: dict[str, Any], signal: str | None) -> None:
    assert signal_for(event) == signal


def test_feedback_config_is_checked() -> None:
    for bad in (
        {"feedback": {"buzzer_pin": 17}},  # the relay's pin
        {"feedback": {"granted": [0.0]}},
        {"feedback": {"locked": [5.0, 5.0, 5.0]}},  # longer than 10 s
        {"feedback": {"messages": {"welcome": "hi"}}},
        {"feedback": {"refused": []}},
    ):
        with pytest.raises(ConfigError):
            parse_config({"door": bad})
    config = parse_config({"door": {"feedback": {"messages": {"granted": "欢迎"}}}})
    assert config.door.feedback.messages["granted"] == "欢迎"
    assert config.door.feedback.messages["locked"].startswith("多次失败")


# -- in the daemon ------------------------------------------------------------------------------------


def test_the_daemon_signals_decisions_on_the_buzzer_and_the_text_line(
    tmp_path: Path, face_model: Any
) -> None:
    from edge.app import RunOptions, StationDaemon
    from edge.station import Station

    display = tmp_path / "display.txt"
    display.touch()  # stands for the display's serial device (a line is never written to a new file)
    config = parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "d")},
            "api": {"enabled": False},
            "door": {"emergency": {"led_pin": LIGHT}, "feedback": {**FAST, "text_device": str(display)}},
        }
    )
    station = Station(config, env={})
    station.face_model = face_model
    factory = MockFactory()
    daemon = StationDaemon(
        config, RunOptions(camera_source=str(tmp_path / "none.avi")), pin_factory=factory, station=station
    )
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while daemon.decider is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert daemon.door is not None and daemon.door.feedback is not None and daemon.recorder is not None
        daemon.remote_open(seconds=0.5, by="test")
        assert daemon.door.feedback.wait_idle(30)
        daemon.recorder.record(kind="refused", method="face", reason="unknown_face")  # as the loop does
        assert daemon.door.feedback.wait_idle(30)
    finally:
        daemon.stop_event.set()
        thread.join(30)
    assert daemon.door is not None and daemon.door.feedback is not None
    assert list(daemon.door.feedback.played) == ["granted", "show_pass"]
    assert len(pulses(factory.pin(BUZZER))) == 3 and len(pulses(factory.pin(LIGHT))) == 3  # 1 + 2 beeps
    assert display.read_text(encoding="utf-8").splitlines() == [
        "granted\t请进 Welcome",
        "show_pass\t未识别，请出示通行码 Not recognised: show your pass",
    ]
    station.close()
