"""Signed messages from the centre, against a real mosquitto (docs/mqtt.md, "Signatures").

The station side is the production `SyncService` behind the `StationPort` test double (a real
station store, a pretend door that records openings). Whoever can publish on the station's
`down/` topics (a leaked broker password, the broker itself) must not be able to open the door:
forged, re-signed, tampered, replayed, misdirected, expired and future-dated commands are refused
with their codes and open nothing; only the centre's signature does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.signing import CentreSigner
from sync.service import SyncService
from tests.mqtt_broker import Broker, Centre, broker, station_config, wait
from tests.station_double import StationDouble

__all__ = ["broker"]

SID = "st-sig"
DOWN = f"yz/v1/station/{SID}/down"


def running(double: StationDouble) -> SyncService:
    service = SyncService(double)
    service.start()
    assert service.error is None, service.error
    assert wait(lambda: service.status()["connected"], 10)
    return service


@pytest.fixture
def signed_station(
    broker: Broker, tmp_path: Path
) -> Iterator[tuple[StationDouble, SyncService, CentreSigner]]:
    signer = CentreSigner.generate("centre 2026")
    key_file = tmp_path / "centre.pub"
    key_file.write_text(f"# pinned at install\n{signer.public_key.b64} centre 2026\n")
    config = station_config(tmp_path / "data", broker.port, station_id=SID, centre_key_file=str(key_file))
    double = StationDouble(config)
    service = running(double)
    try:
        yield double, service, signer
    finally:
        service.stop()
        double.close()


def command(name: str = "open", **fields: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "v": 1,
        "type": "command",
        "id": f"c-{uuid.uuid4().hex[:12]}",
        "station_id": SID,
        "name": name,
        "issued_at": now,
        "expires_at": now + 30,
        **fields,
    }


def test_only_the_centres_signature_opens_the_door(
    broker: Broker, signed_station: tuple[StationDouble, SyncService, CentreSigner]
) -> None:
    double, service, signer = signed_station
    intruder = CentreSigner.generate()
    with Centre(broker.port) as centre:  # the broker's own client: may publish anything, anywhere

        def send(message: dict[str, Any] | bytes) -> str:
            raw = message if isinstance(message, bytes) else json.dumps(message).encode()
            centre.publish(f"{DOWN}/command", raw)
            return str(json.loads(raw)["id"])

        answered: dict[str, int] = {}

        def error_of(ref: str) -> str | None:
            """The newest answer to `ref` (a replay is answered again under the same ref)."""
            seen = answered.get(ref, 0)
            results = centre.wait_for(
                lambda: [r for r in centre.json_messages("result") if r["ref"] == ref][seen:], 10
            )
            assert results, f"no result for {ref}"
            answered[ref] = seen + 1
            return None if results[0]["ok"] else str(results[0]["error"])

        good = signer.sign(command(seconds=2))
        assert error_of(send(json.dumps(good).encode())) is None
        assert len(double.opens) == 1 and double.opens[0]["command_id"] == good["id"]

        # Replayed: the very same signed bytes again.
        assert error_of(send(json.dumps(good).encode())) == "replayed"
        # Unsigned, though well-formed and fresh.
        assert error_of(send(command())) == "signature_required"
        # Signed by a key the station does not trust.
        assert error_of(send(intruder.sign(command()))) == "unknown_key"
        # Re-signed by another key that claims the centre's kid.
        resigned = intruder.sign(command())
        resigned["sig"]["kid"] = signer.kid
        assert error_of(send(resigned)) == "bad_signature"
        # Tampered after signing: a longer opening.
        tampered = signer.sign(command(seconds=1))
        tampered["seconds"] = 600
        assert error_of(send(tampered)) == "bad_signature"
        # Signed by the centre for another station, published on this one's topic.
        elsewhere = signer.sign({**command(), "station_id": "st-other"})
        assert error_of(send(elsewhere)) == "wrong_station"
        # Expired, and issued in the future (beyond the clock skew), both properly signed.
        now = time.time()
        assert error_of(send(signer.sign(command(issued_at=now - 90, expires_at=now - 60)))) == "expired"
        assert (
            error_of(send(signer.sign(command(issued_at=now + 600, expires_at=now + 620))))
            == "issued_in_future"
        )
        # Lives longer than command_max_ttl_s, even if it expires soon by a skewed clock's reading.
        assert (
            error_of(send(signer.sign(command(issued_at=now - 5, expires_at=now + 3600)))) == "expiry_too_far"
        )
        # v 1.0 is not 1 (issue 10 item 14), signed or not.
        assert error_of(send(signer.sign({**command(), "v": 1.0}))) == "unsupported_version"
        assert len(double.opens) == 1  # nothing but the one signed command opened the door

        # Roster and acks need the signature too: a forged member never reaches the store.
        change = {
            "v": 1,
            "type": "roster_change",
            "id": "r-forged",
            "station_id": SID,
            "version": 1,
            "issued_at": time.time(),
            "ops": [{"op": "add_member", "member": {"member_id": "m-evil", "name": "Evil"}}],
        }
        centre.publish(f"{DOWN}/roster", change)
        forged = centre.result_for("r-forged", 10)
        assert forged is not None and forged["error"] == "signature_required"
        assert double.station.get_member("m-evil") is None
        signed_change = signer.sign({**change, "id": "r-signed"})
        centre.publish(f"{DOWN}/roster", json.dumps(signed_change).encode())
        applied = centre.result_for("r-signed", 10)
        assert applied is not None and applied["ok"], applied
        assert double.station.get_member("m-evil") is not None  # the centre may, of course
        before = service.status()["centre_ack_seq"]
        forged_ack = {"v": 1, "type": "ack", "id": "a-forged", "station_id": SID, "stored": [[1, 10**9]]}
        centre.publish(f"{DOWN}/ack", forged_ack)
        refused = centre.result_for("a-forged", 10)
        assert refused is not None and refused["error"] == "signature_required"
        assert service.status()["centre_ack_seq"] == before
        assert service.status()["signatures"] == "on"


def test_a_station_without_a_centre_key_refuses_remote_opening(broker: Broker, tmp_path: Path) -> None:
    config = station_config(tmp_path / "data", broker.port, station_id=SID)
    double = StationDouble(config)
    service = running(double)
    try:
        with Centre(broker.port) as centre:
            opened = centre.send_command(SID, "open", seconds=2)
            result = centre.result_for(opened, 10)
            assert result is not None and result["error"] == "no_centre_key"
            assert "centre_key_file" in result["message"]
            assert double.opens == []
            ping = centre.send_command(SID, "ping")  # the rest still works (a lab station)
            assert centre.result_for(ping, 10)["ok"]  # type: ignore[index]
            assert service.health()["signatures"] == "off"
            # ... and nobody can plant a key over the unsigned channel.
            planted = CentreSigner.generate()
            change = centre.send_roster(
                SID,
                1,
                [{"op": "add_centre_key", "key": {"kid": planted.kid, "public_key": planted.public_key.b64}}],
            )
            refused = centre.result_for(change, 10)
            assert refused is not None and refused["error"] == "apply_failed"
            assert service.keys is not None and not service.keys.required
    finally:
        service.stop()
        double.close()


def test_rotation_with_overlap_over_mqtt(
    broker: Broker, signed_station: tuple[StationDouble, SyncService, CentreSigner]
) -> None:
    double, service, old = signed_station
    new = CentreSigner.generate("centre 2027")
    with Centre(broker.port, signer=old) as centre:
        add = {
            "op": "add_centre_key",
            "key": {"kid": new.kid, "public_key": new.public_key.b64, "label": "2027"},
        }
        assert centre.result_for(centre.send_roster(SID, 1, [add]), 10)["ok"]  # type: ignore[index]
        centre.signer = new  # the centre signs with the new key from now on; both are trusted
        assert centre.result_for(centre.send_command(SID, "ping"), 10)["ok"]  # type: ignore[index]
        revoke = {"op": "revoke_centre_key", "kid": old.kid}
        assert centre.result_for(centre.send_roster(SID, 2, [revoke]), 10)["ok"]  # type: ignore[index]
        centre.signer = old  # the retired key no longer opens anything
        stale = centre.send_command(SID, "open")
        assert centre.result_for(stale, 10)["error"] == "unknown_key"  # type: ignore[index]
        assert double.opens == []
