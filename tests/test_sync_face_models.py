"""Templates of several face models over MQTT: parsed per model, stored apart, a third model refused.

A station stores dlib's templates (the fleet default; used again if it switches back) and those of
the model it runs, each checked against its length, and refuses a change that carries a template
of any other model rather than keep vectors it can neither check nor use.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from contract.messages import DLIB_MODEL, InboundError, parse_roster
from edge.config import parse_config
from edge.station import Station
from models import members as member_store
from models.database import make_session_factory
from models.tables import FaceTemplate
from recognizer.encoder import MODEL_DLIB, ModelIdentity
from sync.enrolment import build_enrolment, enqueue_enrolment
from sync.outcome import Outcome
from sync.roster_apply import RosterSync

ACTIVE = ModelIdentity("onnx-0123456789ab", 512)
DLIB_VECTOR = [round(0.01 * (i % 17) - 0.05, 4) for i in range(128)]


def _unit(dim: int, seed: int) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=dim)
    return [round(float(x), 6) for x in vector / np.linalg.norm(vector)]


def _change(version: int, ops: list[dict[str, Any]]) -> bytes:
    message = {
        "v": 1,
        "type": "roster_change",
        "id": f"r-{version}",
        "version": version,
        "issued_at": time.time(),
        "ops": ops,
    }
    return json.dumps(message).encode()


def _template(vector: list[float], model: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"template_id": uuid.uuid4().hex, "vector": vector}
    if model is not None:
        record["model"] = model
    return record


@pytest.fixture
def station(tmp_path: Path) -> Any:
    config = parse_config(
        {"storage": {"data_dir": str(tmp_path / "data")}, "station": {"station_id": "st-m"}}
    )
    station = Station(config, env={})
    station.model_identity = ACTIVE  # the station runs an ONNX model (identity injected)
    yield station
    station.close()


def _sync(station: Station) -> RosterSync:
    return RosterSync(
        sessions=station.sessions,
        write_sessions=make_session_factory(station.engine, immediate=True),
        cipher=lambda: station.cipher,
        bump_roster=station._bump_roster_version,
        after_commit=lambda: None,
        request_resync=lambda reason, have: None,
        face_model=lambda: station.model_identity,
    )


def _apply(sync: RosterSync, version: int, ops: list[dict[str, Any]]) -> Outcome:
    (result,) = sync.handle(parse_roster(_change(version, ops), 4 * 1024 * 1024))
    return result


def test_the_contract_checks_dlib_lengths_and_lets_other_models_name_their_own() -> None:
    def add(template: dict[str, Any]) -> bytes:
        return _change(1, [{"op": "add_template", "member_id": "m-1", "template": template}])

    parsed = parse_roster(add(_template(DLIB_VECTOR)), 1 << 20)
    assert parsed.ops[0].template.model == DLIB_MODEL == MODEL_DLIB  # type: ignore[union-attr]
    parsed = parse_roster(add(_template(_unit(512, 1), ACTIVE.name)), 1 << 20)
    assert len(parsed.ops[0].template.vector) == 512  # type: ignore[union-attr]
    for bad in (
        _template(_unit(512, 1)),  # no model named: dlib's, so 128 values
        _template(_unit(512, 1), DLIB_MODEL),
        _template(_unit(16, 1), ACTIVE.name),  # too short for any face model
        _template(DLIB_VECTOR, "../etc"),  # not a model name
    ):
        with pytest.raises(InboundError) as caught:
            parse_roster(add(bad), 1 << 20)
        assert caught.value.code == "invalid_payload"


def test_station_stores_dlib_and_active_model_templates_apart(station: Station) -> None:
    sync = _sync(station)
    active = _template(_unit(512, 2), ACTIVE.name)
    result = _apply(
        sync,
        1,
        [
            {
                "op": "add_member",
                "member": {
                    "member_id": "m-1",
                    "name": "One",
                    "consent_face": True,
                    "templates": [_template(DLIB_VECTOR), active],
                },
            }
        ],
    )
    assert result.ok, result
    with station.sessions() as session:
        stored = {t.template_id: t.model for t in session.scalars(select(FaceTemplate))}
        assert sorted(stored.values()) == sorted([MODEL_DLIB, ACTIVE.name])
        assert member_store.template_models(session) == {"m-1": {MODEL_DLIB: 1, ACTIVE.name: 1}}
    roster = station.load_roster()  # only the active model's template is matched
    assert (roster.size, roster.dim, roster.model) == (1, 512, ACTIVE.name)
    assert np.allclose(roster.templates[0], active["vector"], atol=1e-6)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (_template(_unit(256, 3), ACTIVE.name), "must be 512 floats"),
        (_template(_unit(512, 3), "onnx-ffffffffffff"), "this station runs"),
    ],
)
def test_a_template_of_a_third_model_or_a_wrong_length_refuses_the_change(
    station: Station, template: dict[str, Any], message: str
) -> None:
    sync = _sync(station)
    assert _apply(
        sync, 1, [{"op": "add_member", "member": {"member_id": "m-1", "name": "One", "consent_face": True}}]
    ).ok
    result = _apply(sync, 2, [{"op": "add_template", "member_id": "m-1", "template": template}])
    assert not result.ok and result.error == "apply_failed" and message in (result.message or "")
    assert sync.applied_version() == 1
    with station.sessions() as session:
        assert member_store.template_models(session) == {}


def test_an_enrolment_upload_names_each_templates_model(station: Station) -> None:
    vector = np.asarray(_unit(512, 4), dtype=np.float32)
    with station.write_sessions() as session, session.begin():
        member_store.add_member(
            session, member_id="m-1", name="One", consent_face=True, consent_cross_station=True
        )
        ids = member_store.add_templates(
            session,
            station.cipher,
            member_id="m-1",
            encodings=[vector],
            qualities=[{}],
            sources=["a.jpg"],
            model=ACTIVE.name,
            dim=ACTIVE.dim,
        )
        item = enqueue_enrolment(session, member_id="m-1", template_ids=ids)
        payload = dict(item.payload)
    with station.sessions() as session:
        message = build_enrolment(
            session, lambda: station.cipher, station_id="st-m", seq=1, created_at=time.time(), payload=payload
        )
    (template,) = message.templates
    assert template.model == ACTIVE.name and np.allclose(template.vector, vector, atol=1e-6)
    assert json.loads(message.model_dump_json())["templates"][0]["model"] == ACTIVE.name
