"""mosquitto for the demo, configured from docs/mosquitto/ as shipped: the stations' TLS listener
(one login per station, client ids bound to user names, each confined to its own topics by the
ACL) and the centre's loopback listener with its own users; only ports and paths are changed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from demo.pki import ServerCerts
from demo.processes import Child

DOCS = Path(__file__).resolve().parent.parent / "docs" / "mosquitto"
CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto(explicit: str | None = None) -> str | None:
    for candidate in (explicit,) if explicit else CANDIDATES:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def password_file(path: Path, users: dict[str, str], mosquitto: str) -> Path:
    """A mosquitto password file (hashed with mosquitto_passwd, as an operator would)."""
    tool = shutil.which("mosquitto_passwd") or str(Path(mosquitto).parent.parent / "bin" / "mosquitto_passwd")
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()), encoding="utf-8")
    path.chmod(0o600)
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=60)
    return path


@dataclass
class Broker:
    child: Child
    station_port: int
    centre_port: int


def start_broker(
    folder: Path,
    mosquitto: str,
    certs: ServerCerts,
    stations: dict[str, str],
    centre_password: str,
) -> Broker:
    folder.mkdir(parents=True, exist_ok=True)
    password_file(folder / "passwd", stations, mosquitto)
    password_file(folder / "passwd-centre", {"centre": centre_password}, mosquitto)
    for name in ("acl", "acl-centre"):
        (folder / name).write_text((DOCS / name).read_text(encoding="utf-8"), encoding="utf-8")
    station_port, centre_tls_port, centre_port = free_port(), free_port(), free_port()
    conf = (
        (DOCS / "mosquitto.conf")
        .read_text(encoding="utf-8")
        .replace("/etc/mosquitto/yizhan/ca.crt", str(certs.ca))
        .replace("/etc/mosquitto/yizhan/broker.crt", str(certs.cert))
        .replace("/etc/mosquitto/yizhan/broker.key", str(certs.key))
        .replace("/etc/mosquitto/yizhan/", f"{folder}/")
        .replace("/var/lib/mosquitto/", f"{folder}/")
        .replace("listener 8883", f"listener {station_port} 127.0.0.1")
        .replace("listener 8884", f"listener {centre_tls_port} 127.0.0.1")
        .replace("listener 1883 127.0.0.1", f"listener {centre_port} 127.0.0.1")
    )
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, mosquitto would switch to its own user, who cannot read this folder.
        conf += "\nuser root\n"
    conf += "log_dest stdout\n"
    config = folder / "mosquitto.conf"
    config.write_text(conf, encoding="utf-8")
    child = Child("broker", [mosquitto, "-c", str(config)], folder / "mosquitto.log").start()
    if not wait_port(centre_port, 15) or not wait_port(station_port, 5):
        child.stop()
        raise RuntimeError(f"mosquitto did not start:\n{child.log_tail()}")
    return Broker(child, station_port, centre_port)
