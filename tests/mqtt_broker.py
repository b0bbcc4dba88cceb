"""A real mosquitto for the sync tests, and a stand-in for the centre that talks to it.

`start_broker` runs Debian's mosquitto in the foreground on a free 127.0.0.1 port with a short
config written into a temporary folder, and `Broker.stop()` / `kill()` end it by PID. When
mosquitto is not installed the tests are skipped with the reason, except under CI (`CI` set),
where `.ci/run` installs it, so a missing broker fails instead of turning the suite green.

`Centre` is the other end of the contract: a paho client (MQTT v5, persistent session) that
subscribes to the stations' upward topics, keeps every message, and publishes roster changes and
commands the way the real centre would.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO_DOCS = Path(__file__).resolve().parent.parent / "docs" / "mosquitto"
MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_path() -> str:
    """The broker binary; skip (locally) or fail (under CI) when it is not installed."""
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    message = "mosquitto is not installed (apt-get install -y mosquitto); the MQTT sync tests need it"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI installs it: .ci/run)")
    pytest.skip(message)


def measured(text: str) -> None:
    """Report a measurement (shown with `pytest -s`, and in the junit properties)."""
    sys.stdout.write(f"\nMEASURED {text}\n")


# Loaded here, in the parent: the child between fork and exec may only call into C.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the broker's child process: have Linux SIGTERM it if the test process dies (an aborted
    pytest must not leave brokers behind). Elsewhere nothing; `stop()` still ends it by PID."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


@dataclass
class Broker:
    """One mosquitto process; `restart()` brings it back on the same port with the same config."""

    port: int
    folder: Path
    config_path: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    def start(self) -> None:
        binary = mosquitto_path()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.config_path)], stdout=log, stderr=log, preexec_fn=_die_with_parent
        )
        log.close()
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving or saying goodbye."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def start_broker(
    folder: Path, extra: Sequence[str] = (), listener: str | None = None, port: int | None = None
) -> Broker:
    """mosquitto on a free loopback port (or `port`). `extra` lines are appended; `listener`
    replaces the default plain listener line."""
    folder.mkdir(parents=True, exist_ok=True)
    mosquitto_path()
    wanted = port
    for _attempt in range(5):
        port = wanted or free_port()
        config = folder / "mosquitto.conf"
        lines = [
            listener.format(port=port) if listener else f"listener {port} 127.0.0.1",
            "allow_anonymous true" if not any(line.startswith("password_file") for line in extra) else "",
            "persistence false",
            "log_dest stderr",
            # Started as root, mosquitto switches to the `mosquitto` user, who cannot read the
            # private temporary folder holding its password file, ACL and certificates.
            "user root" if hasattr(os, "geteuid") and os.geteuid() == 0 else "",
            *extra,
        ]
        config.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
        broker = Broker(port=port, folder=folder, config_path=config)
        try:
            broker.start()
        except RuntimeError:
            if wanted:
                raise
            continue  # someone took the port between our probe and mosquitto's bind
        return broker
    raise RuntimeError("could not start mosquitto on a free port")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = start_broker(tmp_path / "broker")
    try:
        yield running
    finally:
        running.stop()


# -- the centre's side ------------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.payload)


class Centre:
    """The centre: subscribes to `yz/v1/station/+/up/#` with a persistent session and records all.

    Every call is thread-safe; `wait_for(predicate)` polls the received list.
    """

    def __init__(
        self,
        port: int,
        *,
        client_id: str | None = None,
        subscribe: str = "yz/v1/station/+/up/#",
        tls: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        ack_every: float | None = None,
        signer: Any = None,
    ) -> None:
        self.port = port
        self.subscribe_to = subscribe
        self.ack_every = ack_every
        self.signer = signer  # contract.signing.CentreSigner: sign everything sent down
        self.max_seq: dict[str, int] = {}  # station id -> highest outbox seq received
        self.stored: dict[str, set[int]] = {}  # station id -> outbox seqs received, not yet acked
        self._stopping = threading.Event()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"centre-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if tls:
            self.client.tls_set(**tls)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.max_inflight_messages_set(0)

    def start(self, timeout: float = 5.0) -> Centre:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        if self.ack_every:
            threading.Thread(target=self._ack_loop, name="centre-acks", daemon=True).start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("the centre could not connect and subscribe")
        return self

    def _ack_loop(self) -> None:
        """What a real centre does after storing messages: acknowledge the seqs it stored, as ranges."""
        while not self._stopping.wait(self.ack_every):
            if not self._connected.is_set():
                continue
            with self._lock:
                batch = {sid: sorted(seqs) for sid, seqs in self.stored.items() if seqs}
                self.stored = {}
            for station_id, seqs in batch.items():
                self.ack(station_id, seqs)

    def ack(self, station_id: str, seqs: list[int]) -> None:
        """Publish `down/ack` for `seqs` (consecutive ones merged into ranges)."""
        ranges: list[list[int]] = []
        for seq in seqs:
            if ranges and seq == ranges[-1][1] + 1:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq])
        for start in range(0, len(ranges), 1000):
            message = {
                "v": 1,
                "type": "ack",
                "id": f"a-{uuid.uuid4().hex[:10]}",
                "station_id": station_id,
                "stored": ranges[start : start + 1000],
            }
            self.publish(f"yz/v1/station/{station_id}/down/ack", message, wait=False)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Centre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self._connected.set()
            client.subscribe(self.subscribe_to, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connected.clear()
        self._subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props: dict[str, Any] = {}
        if message.properties is not None:
            props = {
                "content_type": getattr(message.properties, "ContentType", None),
                "user": dict(getattr(message.properties, "UserProperty", []) or []),
            }
        seq: Any = None
        parts = message.topic.split("/")
        if len(parts) >= 5 and parts[4] == "up":
            if parts[5:6] == ["snapshot"]:
                seq = props.get("user", {}).get("seq")
            else:
                with contextlib.suppress(ValueError, AttributeError):
                    seq = json.loads(message.payload).get("seq")
        with self._lock:
            self.received.append(Received(message.topic, bytes(message.payload), message.retain, props))
            if seq is not None and str(seq).isdigit():
                self.max_seq[parts[3]] = max(self.max_seq.get(parts[3], 0), int(seq))
                self.stored.setdefault(parts[3], set()).add(int(seq))

    # -- reading ----------------------------------------------------------------------------

    def messages(self, suffix: str = "") -> list[Received]:
        with self._lock:
            return [m for m in self.received if m.topic.endswith(suffix) or (suffix and suffix in m.topic)]

    def json_messages(self, kind: str) -> list[Any]:
        """Payloads of `up/<kind>` messages (events, results, status, ...), in arrival order."""
        with self._lock:
            found = [m for m in self.received if m.topic.rsplit("/", 1)[-1] == kind]
        return [m.json() for m in found]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def result_for(self, ref: str, timeout: float = 10.0) -> dict[str, Any] | None:
        def find() -> dict[str, Any] | None:
            for result in self.json_messages("result"):
                if result.get("ref") == ref:
                    return dict(result)
            return None

        found: dict[str, Any] | None = self.wait_for(find, timeout)
        return found

    # -- sending ----------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1, *, wait: bool = True
    ) -> None:
        """Publish (a dict is signed first when the centre has a signer, as the real one does)."""
        if isinstance(payload, dict) and self.signer is not None:
            parts = topic.split("/")
            station = parts[3] if len(parts) > 3 else ""
            data = self.signer.sign_bytes({"station_id": station, **payload})
        elif isinstance(payload, dict):
            data = json.dumps(payload).encode()
        else:
            data = payload
        info = self.client.publish(topic, data, qos=qos)
        if qos and wait:
            info.wait_for_publish(5)

    def send_command(self, station_id: str, name: str, ttl_s: float = 30.0, **fields: Any) -> str:
        command_id = fields.pop("id", None) or f"c-{uuid.uuid4().hex[:12]}"
        now = time.time()
        message = {
            "v": 1,
            "type": "command",
            "id": command_id,
            "station_id": station_id,
            "name": name,
            "issued_at": now,
            "expires_at": now + ttl_s,
            **fields,
        }
        self.publish(f"yz/v1/station/{station_id}/down/command", message)
        return str(command_id)

    def send_roster(self, station_id: str, version: int, ops: list[dict[str, Any]]) -> str:
        change_id = f"r-{uuid.uuid4().hex[:12]}"
        message = {
            "v": 1,
            "type": "roster_change",
            "id": change_id,
            "station_id": station_id,
            "version": version,
            "issued_at": time.time(),
            "ops": ops,
        }
        self.publish(f"yz/v1/station/{station_id}/down/roster", message)
        return change_id

    def send_status(self, station_id: str, version: int, request_id: str | None) -> str:
        status_id = f"rs-{uuid.uuid4().hex[:12]}"
        message = {
            "v": 1,
            "type": "roster_status",
            "id": status_id,
            "station_id": station_id,
            "request_id": request_id,
            "version": version,
            "issued_at": time.time(),
        }
        self.publish(f"yz/v1/station/{station_id}/down/roster", message)
        return status_id


# -- certificates for the TLS tests ---------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(folder: Path, client_cn: str = "st-tls") -> Certs:
    """A throw-away CA, a broker certificate for 127.0.0.1 / localhost, and a client certificate
    (the demo's certificate maker, demo.pki)."""
    from demo.pki import Authority

    folder.mkdir(parents=True, exist_ok=True)
    authority = Authority.create("yizhan test CA")
    server_cert, server_key = authority.issue("localhost", folder, "broker", hosts=("localhost",))
    client_cert, client_key = authority.issue(client_cn, folder, "client")
    return Certs(authority.write(folder / "ca.crt"), server_cert, server_key, client_cert, client_key)


def mosquitto_passwd(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file, made with Debian's mosquitto_passwd (as an operator would)."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=30)
    path.chmod(0o600)
    return path


def shipped_broker(
    folder: Path, *, bind_ids: bool = True, stations: dict[str, str] | None = None, client_cn: str = "st-a"
) -> tuple[Broker, Certs, int, int]:
    """docs/mosquitto/ as shipped, paths and ports swapped: (broker, certs, stations' TLS port,
    the centre's loopback port). Station users `stations` (default st-a, st-b); the centre's user
    is `centre` / `centre-secret`. `bind_ids=False` drops use_username_as_clientid (a control)."""
    certs = make_certs(folder, client_cn=client_cn)
    mosquitto_passwd(folder / "passwd", stations or {"st-a": "secret-a", "st-b": "secret-b"})
    mosquitto_passwd(folder / "passwd-centre", {"centre": "centre-secret"})
    for name in ("acl", "acl-centre"):
        (folder / name).write_text((MOSQUITTO_DOCS / name).read_text())
    tls_port, centre_tls_port, local_port = free_port(), free_port(), free_port()
    conf = (
        (MOSQUITTO_DOCS / "mosquitto.conf")
        .read_text()
        .replace("/etc/mosquitto/yizhan/", f"{folder}/")
        .replace("/var/lib/mosquitto/", f"{folder}/")
        .replace("listener 8883", f"listener {tls_port} 127.0.0.1")
        .replace("listener 8884", f"listener {centre_tls_port} 127.0.0.1")
        .replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1")
        .replace("persistence true", "persistence false")
    )
    if not bind_ids:
        conf = conf.replace("use_username_as_clientid true", "")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        conf += "\nuser root\n"  # see tests/mqtt_broker.py
    conf += "log_dest stderr\n"
    (folder / "mosquitto.conf").write_text(conf)
    broker = Broker(port=tls_port, folder=folder, config_path=folder / "mosquitto.conf")
    broker.start()
    return broker, certs, tls_port, local_port


# -- station-side helpers -----------------------------------------------------------------------------


def station_config(
    data_dir: Path,
    port: int,
    station_id: str = "st-1",
    sections: dict[str, Any] | None = None,
    **mqtt_settings: Any,
) -> Any:
    """A parsed yizhan Config whose [mqtt] section points at the test broker."""
    from edge.config import parse_config

    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "station": {"station_id": station_id},
            "api": {"enabled": False},
            **(sections or {}),
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port, **mqtt_settings},
        }
    )


def bulk_events(sessions: Any, count: int, *, age_s: float = 5.0, kind: str = "entry") -> list[str]:
    """`count` events with their outbox rows, stored exactly as `record_event` stores them (same
    columns, same JSON), in one transaction: the sync tests need thousands quickly."""
    from sqlalchemy import insert

    from models.events import event_to_json
    from models.tables import Event, OutboxItem

    now = time.time() - age_s
    events: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for i in range(count):
        event = Event(
            id=str(uuid.uuid4()),
            ts_wall=now + i * 1e-4,
            ts_mono=1000.0 + i * 1e-4,
            kind=kind,
            method="face",
            member_id=f"m-{i % 500:05d}",
            reason=None,
            details={
                "distance": 0.3812,
                "margin": 0.2214,
                "matcher_reason": "match",
                "runner_up_id": "m-00042",
                "encodings": 1,
                "timings_ms": {"detect": 31.2, "landmarks": 0.8, "encode": 101.4, "match": 0.2},
            },
            snapshot=None,
            latency_ms=412.7,
        )
        payload = event_to_json(event)
        events.append({k: payload[k] for k in ("id", "ts_wall", "ts_mono", "kind", "method", "member_id")})
        events[-1].update(reason=None, details=event.details, snapshot=None, latency_ms=412.7)
        outbox.append(
            {
                "event_id": event.id,
                "topic_kind": "event",
                "payload": payload,
                "created_at": now,
                "attempts": 0,
            }
        )
    with sessions() as session, session.begin():
        session.execute(insert(Event), events)
        session.execute(insert(OutboxItem), outbox)
    return [e["id"] for e in events]


# -- daemon-level helpers -----------------------------------------------------------------------------

RELAY_PIN = 17

# The door as the sync tests need it: no cooldown between a looping video's repeated appearances,
# every refusal logged, no lockout from a repeated unknown face, QR codes decided on each showing.
DOOR_SECTIONS: dict[str, Any] = {
    "access": {"cooldown_s": 0, "refusal_repeat_s": 0, "lockout_attempts": 100},
    "daemon": {"qr_repeat_s": 0.5},
}


def rising_edges(pin: Any) -> int:
    """How many times a gpiozero mock pin went from low to high (relay pulses)."""
    states = [s.state for s in pin.states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)


def wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll `predicate` until it is truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def flush(config: Any, timeout_s: float) -> int:
    """`yizhan sync flush` as the CLI runs it: the station's store behind a `StorePort`."""
    from edge.station import Station
    from edge.sync_port import StorePort
    from sync.flush import flush_command

    station = Station(config, env={})
    try:
        return flush_command(StorePort(config, station), timeout_s)
    finally:
        station.close()
