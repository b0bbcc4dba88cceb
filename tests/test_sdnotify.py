"""sd_notify against a real unix datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edge.sdnotify import SystemdNotifier


def test_noop_outside_systemd() -> None:
    notifier = SystemdNotifier(env={})
    assert not notifier.enabled and notifier.ping_interval_s is None
    assert notifier.ready() is False and notifier.watchdog() is False


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        notifier = SystemdNotifier(
            env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert notifier.ping_interval_s == 10.0
        assert notifier.ready("frames flowing")
        assert server.recv(1024) == b"READY=1\nSTATUS=frames flowing"
        assert notifier.watchdog()
        assert server.recv(1024) == b"WATCHDOG=1"


def test_abstract_socket_and_foreign_watchdog_pid() -> None:
    name = f"yizhan-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        notifier = SystemdNotifier(
            env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
        )
        assert notifier.watchdog_s is None  # the watchdog belongs to another process
        assert notifier.stopping() and server.recv(64) == b"STOPPING=1"


def test_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled and notifier.watchdog() is False


def test_a_reader_that_stops_reading_never_blocks_the_sender(tmp_path: Path) -> None:
    """The main thread sends these and also handles SIGTERM: a full socket must not freeze it."""
    import time

    path = tmp_path / "full.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))  # never reads
        notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        started = time.monotonic()
        results = [notifier.watchdog() for _ in range(500)]
        assert time.monotonic() - started < 30.0  # bound far above the ~10 ms it takes: never blocks
        assert results[0] and not results[-1]  # the queue filled; later pings fail instead of hanging


def test_no_watchdog_pings_without_a_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(0.2)
        notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(path)})
        assert notifier.watchdog() is False
        assert notifier.ready()
        assert server.recv(64) == b"READY=1"
