"""systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=...), a no-op outside systemd.

The protocol is one datagram to the unix socket named in $NOTIFY_SOCKET ('@' means the abstract
namespace); a dependency for that would be larger than the code. The watchdog interval comes from
$WATCHDOG_USEC; we ping at half of it, and only while the decision loop reports progress, so a hung
camera thread or a wedged loop gets the service restarted instead of a door that silently stopped
recognising anyone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def ping_interval_s(self) -> float | None:
        return None if self.watchdog_s is None else self.watchdog_s / 2

    def notify(self, *fields: str) -> bool:
        """Send 'KEY=value' lines; False (and a debug log) when not under systemd or on failure."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block: a reader that stopped reading (not systemd, which always reads) must
                # not freeze the main thread, which also handles SIGTERM.
                sock.setblocking(False)
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.warning("sd_notify failed", extra={"fields": {"error": str(exc)}})
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """Ping the watchdog; nothing is sent when systemd set no watchdog for us."""
        return self.watchdog_s is not None and self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
