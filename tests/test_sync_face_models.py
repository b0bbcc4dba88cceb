"""A station running an ONNX model, fed by the centre: its templates are stored as that model's.

The contract and the skip rule (templates of another model than the station's are not stored) are
sync's (tests/test_sync_roster.py). What is checked here is the store underneath: templates that
arrive by a change or a snapshot carry the station's model in their row and in their encryption,
load into the model's own roster, and an enrolment upload names the model of each template.
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

from contract.messages import FaceModelInfo, parse_roster
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
        face_model=lambda: FaceModelInfo(name=ACTIVE.name, dim=ACTIVE.dim),
    )


def _message(body: dict[str, Any]) -> Any:
    return parse_roster(json.dumps({"v": 1, "issued_at": time.time(), **body}).encode(), 8 * 1024 * 1024)


def _member(templates: list[dict[str, Any]]) -> dict[str, Any]:
    return {"member_id": "m-1", "name": "One", "consent_face": True, "templates": templates}


def _stored(station: Station) -> dict[str, str]:
    with station.sessions() as session:
        return {t.template_id: t.model for t in session.scalars(select(FaceTemplate))}


def test_a_change_stores_the_stations_model_templates_as_that_models(station: Station) -> None:
    active = {"template_id": uuid.uuid4().hex, "model": ACTIVE.name, "vector": _unit(512, 2)}
    dlib = {"template_id": uuid.uuid4().hex, "model": MODEL_DLIB, "vector": DLIB_VECTOR}
    change = {"type": "roster_change", "id": "r-1", "version": 1}
    (result,) = _sync(station).handle(
        _message({**change, "ops": [{"op": "add_member", "member": _member([dlib, active])}]})
    )
    assert isinstance(result, Outcome) and result.ok, result
    assert _stored(station) == {active["template_id"]: ACTIVE.name}  # dlib's is not kept here
    roster = station.load_roster()
    assert (roster.size, roster.dim, roster.model) == (1, 512, ACTIVE.name)
    assert np.allclose(roster.templates[0], active["vector"], atol=1e-6)


def test_a_snapshot_stores_the_stations_model_templates_as_that_models(station: Station) -> None:
    active = {"template_id": uuid.uuid4().hex, "model": ACTIVE.name, "vector": _unit(512, 3)}
    snapshot = {
        "type": "roster_snapshot",
        "id": "s-1-1",
        "snapshot_id": "s-1",
        "version": 1,
        "part": 1,
        "parts": 1,
        "members": [_member([active])],
    }
    results = _sync(station).handle(_message(snapshot))
    assert results and all(r.ok for r in results), results
    assert _stored(station) == {active["template_id"]: ACTIVE.name}
    roster = station.load_roster()  # decrypts: the model is bound into each row's encryption
    assert (roster.size, roster.model) == (1, ACTIVE.name)
    assert np.allclose(roster.templates[0], active["vector"], atol=1e-6)


def test_an_enrolment_upload_names_each_templates_model(station: Station) -> None:
    """After a switch a station holds templates of two models; each goes up with its own name."""
    onnx_vector = np.asarray(_unit(512, 4), dtype=np.float32)
    with station.write_sessions() as session, session.begin():
        member_store.add_member(
            session, member_id="m-1", name="One", consent_face=True, consent_cross_station=True
        )
        ids = member_store.add_templates(
            session,
            station.cipher,
            member_id="m-1",
            encodings=[np.asarray(DLIB_VECTOR, np.float32)],
            qualities=[{}],
            sources=["old.jpg"],
        )
        ids += member_store.add_templates(
            session,
            station.cipher,
            member_id="m-1",
            encodings=[onnx_vector],
            qualities=[{}],
            sources=["new.jpg"],
            model=ACTIVE.name,
            dim=ACTIVE.dim,
        )
        item = enqueue_enrolment(session, member_id="m-1", template_ids=ids)
        payload = dict(item.payload)
    with station.sessions() as session:
        message = build_enrolment(
            session,
            lambda: station.cipher,
            model=ACTIVE.name,
            station_id="st-m",
            seq=1,
            created_at=time.time(),
            payload=payload,
        )
    by_model = {t.model: t.vector for t in message.templates}
    assert set(by_model) == {MODEL_DLIB, ACTIVE.name}
    assert np.allclose(by_model[ACTIVE.name], onnx_vector, atol=1e-6)
    assert np.allclose(by_model[MODEL_DLIB], DLIB_VECTOR, atol=1e-6)
