"""Issue 10 item 8: a station's login must not take over another client's MQTT session.

docs/mosquitto/ as shipped (paths and ports swapped) on a real mosquitto: the stations' TLS
listener binds client ids to user names, the centre has its own listeners and users. A station's
credentials asking for the centre's client id or another station's id must disconnect nobody and
lose nothing; the same attack against the old single-listener set-up (no binding) does both,
which shows the test can fail.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.mqtt_broker import Centre, Certs, shipped_broker, wait

CENTRE_ID = "centre-ingest-1"


class Client:
    """A paho client that counts its disconnections (a takeover shows up as one)."""

    def __init__(self, port: int, certs: Certs | None, client_id: str, user: str, password: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if certs is not None:
            self.client.tls_set(ca_certs=str(certs.ca))
        self.client.username_pw_set(user, password)
        self.connected = threading.Event()
        self.refused: str | None = None
        self.disconnects = 0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(1, 2)
        self.port = port

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.refused = str(rc)
        else:
            self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected.is_set():
            self.disconnects += 1
        self.connected.clear()

    def start(self, clean_start: bool = False) -> Client:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect_async("localhost", self.port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def attack(tmp: Path, *, bind_ids: bool) -> dict[str, Any]:
    broker, certs, tls_port, local_port = shipped_broker(tmp, bind_ids=bind_ids)
    centre = Centre(
        local_port,
        client_id=CENTRE_ID,
        subscribe="$share/centre/yz/v1/station/+/up/#",
        username="centre",
        password="centre-secret",
    )
    disconnects = {"centre": 0}
    plain_disconnect = centre._on_disconnect

    def counted(*args: Any) -> None:
        disconnects["centre"] += 1
        plain_disconnect(*args)

    centre.client.on_disconnect = counted
    victim = Client(tls_port, certs, "yz-st-a", "st-a", "secret-a")
    attackers: list[Client] = []
    try:
        centre.start()
        victim.start()
        assert victim.connected.wait(10), victim.refused
        sent: list[str] = []
        # The attacker holds st-b's password and asks for the centre's and st-a's client ids.
        for target in (CENTRE_ID, "yz-st-a", CENTRE_ID, "yz-st-a"):
            attackers.append(Client(tls_port, certs, target, "st-b", "secret-b").start())
            for _ in range(8):  # st-a keeps sending events meanwhile
                event_id = str(uuid.uuid4())
                info = victim.client.publish(
                    "yz/v1/station/st-a/up/event", json.dumps({"id": event_id, "seq": len(sent) + 1}), qos=1
                )
                sent.append(event_id)
                try:
                    info.wait_for_publish(5)
                except (RuntimeError, ValueError):
                    pass  # knocked off the broker (the control case): counted as a disconnect
                time.sleep(0.05)
            time.sleep(0.3)
        # st-b's password on the centre's own listener: not even a connection.
        outsider = Client(local_port, None, CENTRE_ID, "st-b", "secret-b").start()
        wait(lambda: outsider.refused is not None or outsider.connected.is_set(), 10)
        attackers.append(outsider)
        wait(lambda: {m.json()["id"] for m in centre.messages("/up/event")} >= set(sent), 5)
        got = {m.json()["id"] for m in centre.messages("/up/event")}
        return {
            "lost": len(set(sent) - got),
            "sent": len(sent),
            "centre_disconnects": disconnects["centre"],
            "victim_disconnects": victim.disconnects,
            "outsider_refused": outsider.refused,
            "outsider_connected": outsider.connected.is_set(),
        }
    finally:
        for client in attackers:
            client.stop()
        victim.stop()
        centre.stop()
        broker.stop()


def test_a_station_login_cannot_take_over_the_centre_or_another_station(tmp_path: Path) -> None:
    result = attack(tmp_path / "shipped", bind_ids=True)
    assert result["centre_disconnects"] == 0 and result["victim_disconnects"] == 0, result
    assert result["lost"] == 0, result
    assert result["outsider_refused"] is not None and not result["outsider_connected"], result


def test_without_the_binding_the_same_attack_succeeds(tmp_path: Path) -> None:
    """The control: the shipped files minus `use_username_as_clientid` fall to the attack."""
    result = attack(tmp_path / "unbound", bind_ids=False)
    assert result["victim_disconnects"] > 0, result
