"""Telling the worker at the door what happened: buzzer / light patterns and a text line.

Without it the only signal was the relay's click, so a refused worker could not tell a stranger's
refusal from a locked pass from a camera that had not seen them yet. Four signals (`SIGNALS`):
granted, refused, show_pass (the face was not recognised: a pass always works), locked.

`DoorFeedback.signal` never blocks: it hands the signal to its own thread, which plays the pattern
on the outputs (`TimedOutput.turn_on_for` per "on" step, so an emergency alarm sounding on the same
buzzer is never cut short) and writes the text line to each configured `TextLine`. The latest
signal wins: a new one interrupts a pattern still playing.

Text lines are pluggable: `DeviceLine` writes "<signal>\\t<message>\\n" to a FIFO, a serial port or
a tty without ever blocking (a small display's driver reads it); `CommandLine` runs a command with
the signal and the message as arguments (a text-to-speech script on a speaker).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from door.config import SIGNALS, FeedbackConfig
from door.relay import TimedOutput

logger = logging.getLogger(__name__)


class TextLine(Protocol):
    """Somewhere a one-line message goes (a display, a speaker); `show` must not block for long."""

    def show(self, signal: str, message: str) -> None: ...

    def close(self) -> None: ...


class DeviceLine:
    """Writes one line per signal to a FIFO, serial port or tty, non-blocking.

    Opened per line (a display driver may restart; a serial adapter may be replugged). A FIFO with
    no reader (ENXIO) or a full buffer (EAGAIN) drops the line: a display is never worth a wait.
    The serial port's speed is the system's (set it with `stty` in the unit or a udev rule).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.written = 0
        self.dropped = 0

    def show(self, signal: str, message: str) -> None:
        line = f"{signal}\t{message}\n".encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_APPEND)
        except OSError as exc:
            self.dropped += 1
            level = logging.DEBUG if exc.errno == errno.ENXIO else logging.WARNING
            logger.log(level, "feedback line not written to %s: %s", self.path, exc.strerror or exc)
            return
        try:
            os.write(fd, line)
            self.written += 1
        except OSError as exc:
            self.dropped += 1
            logger.warning("feedback line not written to %s: %s", self.path, exc.strerror or exc)
        finally:
            os.close(fd)

    def close(self) -> None:
        return None


class CommandLine:
    """Runs `argv + [signal, message]` (no shell); a new signal ends a run still going."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self._running: subprocess.Popen[bytes] | None = None
        self.started = 0

    def show(self, signal: str, message: str) -> None:
        self._end_previous()
        try:
            self._running = subprocess.Popen(
                [*self.argv, signal, message],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            self.started += 1
        except OSError as exc:
            logger.warning("feedback command %s failed to start: %s", self.argv[0], exc.strerror or exc)

    def _end_previous(self) -> None:
        running, self._running = self._running, None
        if running is None or running.poll() is not None:
            return
        running.terminate()
        try:
            running.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait(timeout=1.0)

    def close(self) -> None:
        self._end_previous()


class DoorFeedback:
    """Plays `FeedbackConfig` patterns on `outputs` and writes `lines`, on one thread of its own."""

    def __init__(
        self,
        config: FeedbackConfig,
        outputs: Sequence[TimedOutput],
        lines: Sequence[TextLine] = (),
    ) -> None:
        self.config = config
        self.outputs = list(outputs)
        self.lines = list(lines)
        #: The latest signals taken up by the thread, oldest first (for status and tests).
        self.played: deque[str] = deque(maxlen=50)
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=8)
        self._interrupt = threading.Event()
        self._pending = 0  # signals given and not yet played (or dropped)
        self._done = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="door-feedback", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(
        cls,
        config: FeedbackConfig,
        *,
        buzzer: TimedOutput | None,
        light: TimedOutput | None,
        make_line: Callable[[FeedbackConfig], list[TextLine]] | None = None,
    ) -> DoorFeedback:
        outputs = [
            output
            for output, wanted in ((buzzer, config.buzzer), (light, config.light))
            if output is not None and wanted
        ]
        return cls(config, outputs, (make_line or text_lines)(config))

    def signal(self, name: str) -> None:
        """Show `name` (one of SIGNALS) now; returns at once. Unknown names are a programming error."""
        if name not in SIGNALS:
            raise ValueError(f"unknown feedback signal {name!r}; one of {', '.join(SIGNALS)}")
        if self._closed or not self.config.enabled:
            return
        with self._done:
            self._pending += 1
        self._interrupt.set()  # the latest signal wins
        while True:
            try:
                self._queue.put_nowait(name)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest waiting signal is dropped
                except queue.Empty:
                    continue
                self._finished()

    def wait_idle(self, timeout: float) -> bool:
        """True once every signal given so far has been played (tests, shutdown)."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout)

    def _finished(self) -> None:
        with self._done:
            self._pending -= 1
            self._done.notify_all()

    def close(self) -> None:
        """Stop the thread (a pattern in progress stops; its last step ends by its own timer)."""
        if self._closed:
            return
        self._closed = True
        self._interrupt.set()
        # The stop sentinel must get in: signals still waiting are dropped to make room (a full
        # queue used to drop the sentinel instead, and the thread then waited for signals forever).
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    continue
                self._finished()
        self._thread.join(timeout=5.0)
        for line in self.lines:
            try:
                line.close()
            except Exception:
                logger.exception("closing a feedback line failed")

    def _run(self) -> None:
        while True:
            name = self._queue.get()
            if self._closed:  # closing: whatever woke us (the sentinel, or a signal racing close)
                return
            self._interrupt.clear()
            while name is not None and not self._queue.empty():  # signals given since: only the newest
                try:
                    newer = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._finished()
                name = newer
            if name is None:
                return
            self.played.append(name)
            message = self.config.messages.get(name, name)
            for line in self.lines:
                try:
                    line.show(name, message)
                except Exception:
                    logger.exception("feedback line failed")
            try:
                self._play(self.config.pattern(name))
            finally:
                self._finished()

    def _play(self, pattern: Sequence[float]) -> None:
        for index, seconds in enumerate(pattern):
            if self._interrupt.is_set():
                return
            if index % 2 == 1:  # an "off" step
                if self._interrupt.wait(seconds):
                    return
                continue
            # An "on" step: each output gets its own timed window (so a dying thread never leaves a
            # buzzer on), ended on time here unless someone asked for longer (an alarm).
            windows: list[tuple[TimedOutput, float]] = []
            for output in self.outputs:
                try:
                    windows.append((output, output.turn_on_for(seconds) + seconds))
                except Exception:
                    logger.exception("feedback could not drive %s", output.name)
            interrupted = self._interrupt.wait(seconds)
            for output, deadline in windows:
                output.end_window(deadline)
            if interrupted:
                return


def text_lines(config: FeedbackConfig) -> list[TextLine]:
    """The text outputs `config` asks for (none by default)."""
    lines: list[TextLine] = []
    if config.text_device is not None:
        lines.append(DeviceLine(config.text_device))
    if config.text_command:
        lines.append(CommandLine(config.text_command))
    return lines
