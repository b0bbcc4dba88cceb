"""`yizhan sync pull` and the centre's acks as the delivery rule, against a real mosquitto.

The centre here is a stand-in speaking the contract (docs/mqtt.md): it answers each roster request
with the changes after `have_version` and then a roster status; the station side is the
production code behind the `StationPort` double (pull) or the CLI's store port (flush).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contract.signing import CentreSigner
from models import events as event_store
from models.tables import OutboxItem
from sync.pull import pull_command
from tests.mqtt_broker import Broker, Centre, broker, bulk_events, flush, free_port, station_config
from tests.station_double import StationDouble

__all__ = ["broker"]

SID = "st-pull"


class RosterCentre:
    """Answers roster requests: the changes after `have_version`, then a roster status."""

    def __init__(
        self, centre: Centre, changes: dict[int, list[dict[str, Any]]], claim: int | None = None
    ) -> None:
        self.centre = centre
        self.changes = changes
        self.claim = claim  # the version the status names (default: the last change)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.answered = 0

    def __enter__(self) -> RosterCentre:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        done = 0
        while not self._stop.wait(0.02):
            requests = self.centre.json_messages("roster_request")
            for request in requests[done:]:
                assert request["face_model"] == {"name": "dlib_resnet_v1", "dim": 128}
                for version in sorted(v for v in self.changes if v > request["have_version"]):
                    self.centre.send_roster(request["station_id"], version, self.changes[version])
                latest = self.claim if self.claim is not None else max(self.changes, default=0)
                self.centre.send_status(request["station_id"], latest, request["id"])
                self.answered += 1
            done = len(requests)


def add(member_id: str) -> list[dict[str, Any]]:
    return [{"op": "add_member", "member": {"member_id": member_id, "name": member_id}}]


@pytest.fixture
def double(broker: Broker, tmp_path: Path) -> Iterator[StationDouble]:
    signer = CentreSigner.generate()
    key_file = tmp_path / "centre.pub"
    key_file.write_text(signer.public_key.b64 + "\n")
    config = station_config(tmp_path / "data", broker.port, station_id=SID, centre_key_file=str(key_file))
    station = StationDouble(config)
    station.signer = signer  # type: ignore[attr-defined]
    yield station
    station.close()


def pull(double: StationDouble, timeout: float) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = pull_command(double, timeout, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_pull_brings_the_roster_to_the_centres_version(broker: Broker, double: StationDouble) -> None:
    changes = {1: add("m-1"), 2: add("m-2"), 3: [{"op": "suspend_member", "member_id": "m-1"}]}
    with Centre(broker.port, signer=double.signer) as centre, RosterCentre(centre, changes):  # type: ignore[attr-defined]
        code, out, err = pull(double, 20)
        assert (code, err) == (0, ""), err
        assert out == "roster current at version 3 (2 members)\n"
        assert double.station.get_member("m-1")["status"] == "suspended"  # type: ignore[index]
        request = centre.json_messages("roster_request")[-1]
        assert request["reason"] == "pull" and request["have_version"] == 0
        # Already current: the centre answers with a status only, and pull exits 0 again.
        changes[4] = add("m-3")
        code, out, _ = pull(double, 20)
        assert code == 0 and out == "roster current at version 4 (3 members)\n"
        # A command arriving while pull holds the station's session runs nothing.
        ping = centre.send_command(SID, "open", ttl_s=60)
        pulled = threading.Thread(target=pull, args=(double, 5))
        pulled.start()
        result = centre.result_for(ping, 10)
        pulled.join(10)
        assert result is not None and result["error"] == "not_running" and double.opens == []


def test_pull_fails_when_the_centre_does_not_answer_or_leaves_it_behind(
    broker: Broker, double: StationDouble
) -> None:
    with Centre(broker.port, signer=double.signer) as centre:  # type: ignore[attr-defined]
        code, out, err = pull(double, 2)
        assert code == 1 and out == "" and "the centre did not answer" in err
        with RosterCentre(centre, {1: add("m-1")}, claim=5):  # says 5, sends only 1
            code, _, err = pull(double, 3)
        assert code == 1 and "the centre is at version 5" in err and "version 1" in err
    # Unsigned answers are refused by a station that pinned a key: still not current.
    with Centre(broker.port) as unsigned, RosterCentre(unsigned, {2: add("m-2")}):
        code, _, err = pull(double, 3)
    assert code == 1 and double.station.get_member("m-2") is None


def test_pull_without_a_broker_says_so(tmp_path: Path) -> None:
    port = free_port()
    station = StationDouble(station_config(tmp_path / "data", port, station_id=SID))
    try:
        code, out, err = pull(station, 2)
    finally:
        station.close()
    assert code == 1 and out == ""
    assert f"cannot reach the broker 127.0.0.1:{port}" in err and "version 0" in err


def test_the_centres_ack_is_the_delivery_rule(broker: Broker, tmp_path: Path) -> None:
    """Issue 10 item 8: the broker PUBACKed events it then dropped. Under `delivery = centre_ack`
    a PUBACK does not empty the outbox: only the centre's ack does, for exactly the seqs it names;
    what it never acknowledges is published again after `ack_timeout_s`."""
    config = station_config(tmp_path / "data", broker.port, delivery="centre_ack", ack_timeout_s=1.0)
    station = StationDouble(config)
    ids = bulk_events(station.sessions, 40)
    with station.sessions() as session:
        seqs = sorted(session.scalars(select(OutboxItem.seq)))
    station.close()
    with Centre(broker.port) as centre:  # subscribed (PUBACKs are successes) but never acks
        assert flush(config, 3) == 1
        assert {e["id"] for e in centre.json_messages("event")} >= set(ids)  # the broker took them all
        results: list[int] = []
        flusher = threading.Thread(target=lambda: results.append(flush(config, 4)))
        flusher.start()
        time.sleep(1.0)  # connected and subscribed to its acks by now (generously)
        centre.ack("st-1", seqs[:25])  # the centre stored only these
        flusher.join(10)
        assert results == [1]  # the 15 others stay until acknowledged
        station = StationDouble(config)
        with station.sessions() as session:
            assert event_store.outbox_depth(session) == 15
        station.close()
    republished: list[Any] = []
    with Centre(broker.port, ack_every=0.2) as acking:
        assert flush(config, 15) == 0  # published again, acknowledged, delivered
        republished = acking.json_messages("event")
    assert {e["id"] for e in republished} == set(ids[25:])
