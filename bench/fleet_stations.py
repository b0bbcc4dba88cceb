"""Simulated stations for `bench.fleet`: many lightweight publishers speaking the real contract.

One process drives hundreds of stations: one paho MQTT v5 client each (its own client id, a
persistent session, its last will, its subscription to `down/#`), all on one selector loop (paho's
external-loop API), so 1,000 stations cost one thread, not 1,000. Each station does what the real
one does on the wire (docs/mqtt.md), without a camera or a database:

- on connect: a retained `up/status` "online" with health, and an `up/roster_request` (reason `new`
  until it has a roster): the centre answers with a snapshot and a roster status;
- events on `up/event` at the rate asked, with increasing `seq`s, the publish time in `details`;
  every event stays in memory until the centre's `down/ack` names its seq, and is published again
  when no ack came within `ack_timeout_s` (the delivery rule, `delivery = centre_ack`);
- roster changes on `down/roster` are answered on `up/result` (ok, the applied version), and the
  arrival time of the one the benchmark watches is recorded (fan-out time);
- a sample of the acks is checked against the centre's public key (signature, station id).

The simulation is the load generator, not what is measured, and it shares the centre's cores, so
the per-event path is kept cheap (docs/SCALING.md): an event's JSON is one `%`-format of a template
made once per station (no dict, no `json.dumps`, no model); its id is UUID-shaped from a random
per-process prefix and a counter (unique, no `os.urandom` per event); a client's writes are flushed
once per loop turn instead of registering each socket for writing per publish (two `epoll_ctl`
calls per message); and the events waiting for an ack sit in one deque in publish order, so the
re-send check looks only at the expired ones, not at every unacknowledged event every second.

The parent process drives it through a `multiprocessing` pipe: ("events", rate) starts or changes
the event rate (0 stops it), ("watch", member_id) starts timing a member's arrival, ("report",)
answers counts, ("ids",) the published event ids, ("stop",) disconnects and ends.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import json
import selectors
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.ingest import paho_speed
from contract.signing import PublicKey, SignatureError, verify_message

ACK_TIMEOUT_S = 60.0  # as the real station's default ack_timeout_s
VERIFY_EVERY = 25  # check one ack in this many against the centre's key

#: An event as `contract.messages.EventMessage` serialises it (docs/mqtt.md), as one format string:
#: station id, seq, id, ts, ts_wall, ts_mono, member number, bench_sent (the publish time).
EVENT_TEMPLATE = (
    '{"v":1,"type":"event","station_id":"%s","seq":%d,"id":"%s","ts":"%s","ts_wall":%r,"ts_mono":%r,'
    '"kind":"entry","method":"face","member_id":"m-%05d","reason":null,'
    '"details":{"distance":0.3812,"margin":0.2214,"matcher_reason":"match","encodings":1,'
    '"timings_ms":{"detect":31.2,"landmarks":0.8,"encode":101.4,"match":0.2},"bench_sent":%r},'
    '"snapshot":null,"latency_ms":412.7}'
)


class EventIds:
    """UUID-shaped event ids (the contract's `EventId` pattern): 76 random bits per process, then a
    counter. Unique across the processes of a run without a random draw per event."""

    def __init__(self) -> None:
        h = uuid.uuid4().hex
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{h[15:19]}-"
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:012x}"


class IsoClock:
    """`2026-12-08T02:03:04.567+00:00` for a wall time, formatting the date part once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self, at: float) -> str:
        second = int(at)
        if second != self._second:
            self._second = second
            self._text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._text}.{int((at - second) * 1000):03d}+00:00"


@dataclass
class SimStation:
    station_id: str
    client: mqtt.Client
    seq: int = 0
    applied: int = 0
    connected: bool = False
    built: bool = False
    unacked: dict[int, bytes] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    base: str = ""
    event_topic: str = ""

    def __post_init__(self) -> None:
        self.base = f"yz/v1/station/{self.station_id}"
        self.event_topic = f"{self.base}/up/event"


class Fleet:
    def __init__(
        self,
        host: str,
        port: int,
        station_ids: list[str],
        centre_key_b64: str,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        paho_speed.install()  # paho's v5 PUBACK and PUBLISH decoding without per-packet tables
        self.host, self.port = host, port
        self.ack_timeout_s = ack_timeout_s
        self.selector = selectors.DefaultSelector()
        self.key = PublicKey.from_b64(centre_key_b64)
        self.stations = [self._make(sid) for sid in station_ids]
        self.by_client = {id(s.client): s for s in self.stations}
        self.rate = 0.0
        self.schedule: list[tuple[float, int]] = []
        # (published at, station, seq) in publish order: the re-send check pops only expired ones.
        self.waiting: collections.deque[tuple[float, SimStation, int]] = collections.deque()
        self.flush: set[mqtt.Client] = set()  # clients with packets queued since the last loop turn
        self.writing: set[mqtt.Client] = set()  # clients whose socket is watched for writability
        self.event_id = EventIds()
        self.iso = IsoClock()
        self.watch: str | None = None
        self.watch_arrivals: dict[str, float] = {}
        self.counts = {"published": 0, "republished": 0, "acked": 0, "acks": 0, "ack_bad_signature": 0,
                       "roster_messages": 0, "results_sent": 0, "roster_gaps": 0}  # fmt: skip

    # -- clients ------------------------------------------------------------------------------------

    def _make(self, station_id: str) -> SimStation:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=station_id, protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(100)
        sim = SimStation(station_id, client)
        offline = {
            "v": 1,
            "type": "status",
            "station_id": station_id,
            "state": "offline",
            "ts": _iso(),
            "health": None,
        }
        client.will_set(f"{sim.base}/up/status", json.dumps(offline), qos=1, retain=True)
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return sim

    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # paho has packets to send: flushed at the end of this loop turn (`_flush_writes`), and the
        # socket watched for writability only if the kernel did not take them all then.
        self.flush.add(client)

    def _no_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client in self.writing:
            self.writing.discard(client)
            try:
                self.selector.modify(sock, selectors.EVENT_READ, client)
            except (KeyError, ValueError):
                pass

    def _flush_writes(self) -> None:
        pending, self.flush = self.flush, set()
        for client in pending:
            client.loop_write()
            if client.want_write() and client not in self.writing:
                sock = client.socket()
                if sock is None:
                    continue
                self.writing.add(client)
                try:
                    self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
                except KeyError:
                    self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def connect_all(self, per_second: float = 400.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        for index, sim in enumerate(self.stations):
            sim.client.connect(self.host, self.port, keepalive=120, clean_start=False, properties=props)
            if index % 50 == 49:
                self.step(0.0)
                time.sleep(50 / per_second)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        sim = self.by_client[id(client)]
        if reason.is_failure:
            return
        sim.connected = True
        client.subscribe(f"{sim.base}/down/#", qos=1)
        status = {
            "v": 1, "type": "status", "station_id": sim.station_id, "state": "online", "ts": _iso(),
            "health": {"camera": {"state": "up", "fps": 15.0}, "disk": {"check": "disk", "status": "ok"},
                       "clock": {"station_time": _iso()}, "outbox_depth": len(sim.unacked),
                       "centre_roster_version": sim.applied,
                       "face_model": {"name": "dlib_resnet_v1", "dim": 128},
                       "signatures": "on", "delivery": "centre_ack"},
        }  # fmt: skip
        client.publish(f"{sim.base}/up/status", json.dumps(status), qos=1, retain=True)
        request = {
            "v": 1, "type": "roster_request", "station_id": sim.station_id, "id": str(uuid.uuid4()),
            "have_version": sim.applied, "reason": "connect" if sim.applied else "new", "ts": _iso(),
            "face_model": {"name": "dlib_resnet_v1", "dim": 128},
        }  # fmt: skip
        client.publish(f"{sim.base}/up/roster_request", json.dumps(request), qos=1)
        for payload in sim.unacked.values():  # after a reconnect: what the centre has not acknowledged
            client.publish(sim.event_topic, payload, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        sim = self.by_client[id(client)]
        kind = message.topic.rsplit("/", 1)[-1]
        data = json.loads(message.payload)
        if kind == "ack":
            self.counts["acks"] += 1
            if self.counts["acks"] % VERIFY_EVERY == 0:
                try:
                    verify_message(data, [self.key], sim.station_id)
                except SignatureError:
                    self.counts["ack_bad_signature"] += 1
                    return
            for first, last in data["stored"]:
                for seq in range(first, last + 1):
                    if sim.unacked.pop(seq, None) is not None:
                        self.counts["acked"] += 1
        elif kind == "roster":
            self.counts["roster_messages"] += 1
            now = time.time()
            if data["type"] == "roster_change" and data["version"] > sim.applied:
                if data["version"] != sim.applied + 1:
                    self.counts["roster_gaps"] += 1  # a real station would hold it and ask again
                sim.applied = data["version"]
                if self.watch is not None and sim.station_id not in self.watch_arrivals:
                    for op in data["ops"]:
                        if op.get("op") == "add_member" and op["member"]["member_id"] == self.watch:
                            self.watch_arrivals[sim.station_id] = now
            elif data["type"] == "roster_snapshot" and data["part"] == data["parts"]:
                sim.applied = max(sim.applied, data["version"])
            elif data["type"] == "roster_status":
                sim.built = sim.applied >= data["version"]
            if data["type"] != "roster_status":
                result = {
                    "v": 1, "type": "result", "station_id": sim.station_id, "ref": data["id"],
                    "ref_type": data["type"], "ok": True, "error": None, "message": None,
                    "data": {"version": data["version"], "applied_version": sim.applied}, "ts": _iso(),
                }  # fmt: skip
                client.publish(f"{sim.base}/up/result", json.dumps(result), qos=1)
                self.counts["results_sent"] += 1

    # -- events ---------------------------------------------------------------------------------------

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        now = time.monotonic()
        self.schedule = []
        if rate > 0:
            spread = 1.0 / rate
            self.schedule = [(now + spread * i / len(self.stations), i) for i in range(len(self.stations))]
            heapq.heapify(self.schedule)

    def _publish_event(self, sim: SimStation) -> None:
        sim.seq = seq = sim.seq + 1
        event_id = self.event_id()
        sent = time.time()
        mono = time.monotonic()
        payload = (
            EVENT_TEMPLATE % (sim.station_id, seq, event_id, self.iso(sent), sent, mono, seq % 97, sent)
        ).encode()
        sim.unacked[seq] = payload
        self.waiting.append((mono, sim, seq))
        sim.ids.append(event_id)
        sim.client.publish(sim.event_topic, payload, qos=1)
        self.counts["published"] += 1

    def _due_events(self) -> None:
        now = time.monotonic()
        while self.schedule and self.schedule[0][0] <= now and self.rate > 0:
            due, index = heapq.heappop(self.schedule)
            sim = self.stations[index]
            if sim.connected:
                self._publish_event(sim)
            heapq.heappush(self.schedule, (max(due + 1.0 / self.rate, now - 1.0), index))

    def _republish(self) -> None:
        """Publish again what the centre has not acknowledged within `ack_timeout_s`."""
        now = time.monotonic()
        waiting = self.waiting
        again: list[tuple[float, SimStation, int]] = []
        while waiting and now - waiting[0][0] > self.ack_timeout_s:
            _, sim, seq = waiting.popleft()
            payload = sim.unacked.get(seq)
            if payload is None:
                continue  # acknowledged meanwhile
            if sim.connected:
                sim.client.publish(sim.event_topic, payload, qos=1)
                self.counts["republished"] += 1
            again.append((now, sim, seq))  # not connected: its reconnect publishes it again
        waiting.extend(again)

    # -- the loop -------------------------------------------------------------------------------------

    def step(self, timeout: float) -> None:
        self._flush_writes()
        for key, mask in self.selector.select(0.0 if self.flush else timeout):
            client = key.data
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE:
                client.loop_write()
        self._flush_writes()

    def report(self) -> dict[str, Any]:
        return {
            **self.counts,
            "stations": len(self.stations),
            "connected": sum(1 for s in self.stations if s.connected),
            "built": sum(1 for s in self.stations if s.built),
            "unacked": sum(len(s.unacked) for s in self.stations),
            "watch_arrivals": dict(self.watch_arrivals),
        }


def _iso(at: float | None = None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at if at is not None else time.time(), dt.UTC).isoformat(
        timespec="milliseconds"
    )


def run(
    conn: Any,
    host: str,
    port: int,
    station_ids: list[str],
    centre_key_b64: str,
    ack_timeout_s: float = ACK_TIMEOUT_S,
) -> None:
    """The child process: connect the stations, then serve the parent's commands until ("stop",)."""
    import os

    profile = os.environ.get("YZ_FLEET_STATIONS_PROFILE")  # a file prefix (bench work)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        try:
            profiler.runcall(_serve, conn, host, port, station_ids, centre_key_b64, ack_timeout_s)
        finally:
            profiler.dump_stats(f"{profile}.{os.getpid()}")
        return
    _serve(conn, host, port, station_ids, centre_key_b64, ack_timeout_s)


def _serve(
    conn: Any, host: str, port: int, station_ids: list[str], centre_key_b64: str, ack_timeout_s: float
) -> None:
    fleet = Fleet(host, port, station_ids, centre_key_b64, ack_timeout_s)
    fleet.connect_all()
    next_misc = next_republish = time.monotonic()
    while True:
        fleet._due_events()
        fleet.step(0.005)
        now = time.monotonic()
        if now >= next_misc:
            next_misc = now + 1.0
            for sim in fleet.stations:
                sim.client.loop_misc()
        if now >= next_republish:
            next_republish = now + 1.0
            fleet._republish()
        while conn.poll():
            command = conn.recv()
            if command[0] == "events":
                fleet.set_rate(float(command[1]))
            elif command[0] == "watch":
                fleet.watch, fleet.watch_arrivals = command[1], {}
            elif command[0] == "report":
                conn.send(fleet.report())
            elif command[0] == "ids":
                conn.send([i for s in fleet.stations for i in s.ids])
            elif command[0] == "stop":
                for sim in fleet.stations:
                    sim.client.disconnect()
                for _ in range(20):
                    fleet.step(0.01)
                conn.send("stopped")
                return
