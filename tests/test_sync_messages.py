"""The contract itself: docs/mqtt.md examples against the models, topics, config, hostile parsing.

The parser is the station's first line of defence, so besides fixed cases it is fuzzed with
hypothesis: whatever bytes or JSON arrive, it returns a model or raises `InboundError`, nothing
else (the broker-level flood is in test_sync_daemon.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contract import messages as m
from contract.signing import CentreSigner, SignatureError, parse_public_keys, verify_message
from contract.topics import StationTopics
from edge.config import ConfigError, parse_config
from sync.config import MqttConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"
LIMIT = 2 * 1024 * 1024
VECTOR = [0.001 * i for i in range(128)]

MODELS: dict[str, Any] = {
    "event": m.EventMessage,
    "snapshot_meta": m.SnapshotMeta,
    "enrolment": m.EnrolmentMessage,
    "result": m.ResultMessage,
    "status": m.StatusMessage,
    "roster_request": m.RosterRequest,
    "template_removal": m.TemplateRemovalMessage,
}


def doc_examples() -> list[tuple[str, dict[str, Any]]]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", text, flags=re.S)
    examples = []
    for name, body in found:
        data = json.loads(body)
        examples.append((name, _fill_vectors(data)))
    return examples


def _fill_vectors(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (VECTOR if v == "<128 floats>" else _fill_vectors(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_vectors(v) for v in value]
    return value


def test_every_message_in_the_contract_has_a_checked_example() -> None:
    names = [name for name, _ in doc_examples()]
    assert set(names) >= {*MODELS, "roster_change", "roster_snapshot", "roster_status", "command", "ack"}


# The example key of docs/mqtt.md ("Signatures"): the signed examples there must verify with it.
DOC_SEED = hashlib.sha256(b"yizhan docs/mqtt.md example key: never use it").digest()
DOC_SIGNER = CentreSigner(Ed25519PrivateKey.from_private_bytes(DOC_SEED))


def test_the_documented_example_key_and_signed_examples_verify() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"kid {DOC_SIGNER.kid}, public key (base64 of 32 raw bytes): {DOC_SIGNER.public_key.b64}" in text
    signed = [(name, data) for name, data in doc_examples() if "sig" in data]
    assert {name for name, _ in signed} >= {"command", "ack", "roster_status"}
    for name, data in signed:
        assert verify_message(data, [DOC_SIGNER.public_key], "haidian-012") == DOC_SIGNER.kid, name
        # and the centre's helper produces exactly the documented signature (Ed25519 is deterministic)
        assert DOC_SIGNER.sign(data)["sig"] == data["sig"], name


@pytest.mark.parametrize("name,data", doc_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_documented_examples_validate(name: str, data: dict[str, Any]) -> None:
    raw = json.dumps(data).encode()
    if name in ("roster_change", "roster_snapshot", "roster_status"):
        parsed = m.parse_roster(raw, LIMIT)
        assert parsed.type == name
    elif name == "command":
        m.parse_command(raw, LIMIT)
    elif name == "roster_status":
        assert m.parse_roster(raw, LIMIT).type == "roster_status"
    elif name == "ack":
        assert m.parse_ack(raw, LIMIT).highest >= 1
    else:
        MODELS[name].model_validate(data)


def test_event_contract_fields() -> None:
    fields = set(m.EventMessage.model_fields)
    assert {"id", "station_id", "ts", "kind", "method", "member_id"} <= fields


def test_topics_are_versioned_and_per_station() -> None:
    topics = StationTopics("haidian-012")
    assert topics.event == "yz/v1/station/haidian-012/up/event"
    assert topics.status == "yz/v1/station/haidian-012/up/status"
    assert topics.down_filter == "yz/v1/station/haidian-012/down/#"
    assert topics.command == "yz/v1/station/haidian-012/down/command"
    event_id = str(uuid.uuid4())
    assert topics.snapshot(event_id).endswith(f"/up/snapshot/{event_id}")
    assert topics.template_removal == "yz/v1/station/haidian-012/up/template_removal"
    for every in (topics.event, topics.enrolment, topics.result, topics.roster_request, topics.roster):
        assert every.startswith("yz/v1/station/haidian-012/")
    for bad in ("a/b", "+", "#", "", "..", "x" * 65):
        with pytest.raises(ValueError):
            StationTopics(bad)
    with pytest.raises(ValueError):
        topics.snapshot("../../etc")


def test_config_defaults_bounds_and_secrets_only_from_files(tmp_path: Path) -> None:
    config = MqttConfig()
    assert (config.enabled, config.host, config.port, config.station_id) == (False, "127.0.0.1", 1883, None)
    assert config.effective_station_id("st-9") == "st-9" and config.effective_client_id("st-9") == "yz-st-9"
    assert config.effective_username("st-9") is None
    assert MqttConfig(password_file=Path("/x")).effective_username("st-9") == "st-9"
    for bad in (
        {"password": "hunter2"},  # secrets never in the TOML
        {"port": 0},
        {"max_inflight": 0},
        {"max_messages_per_s": 0},
        {"keepalive_s": 1},
        {"cert_file": "/c.pem", "tls": True},  # a certificate without its key
        {"ca_file": "/ca.pem"},  # TLS files without tls = true
        {"reconnect_min_s": 30, "reconnect_max_s": 5},
        {"station_id": "a/b"},
    ):
        with pytest.raises(ConfigError):
            parse_config({"mqtt": bad})
    rebased = MqttConfig(tls=True, ca_file=Path("ca.pem"), password_file=Path("/etc/pw")).rebased(tmp_path)
    assert rebased.ca_file == tmp_path / "ca.pem" and rebased.password_file == Path("/etc/pw")


def command(**overrides: Any) -> bytes:
    now = time.time()
    data = {"v": 1, "type": "command", "id": "c-1", "name": "open", "issued_at": now, "expires_at": now + 30}
    data.update(overrides)
    return json.dumps(data).encode()


def change(ops: list[Any], **overrides: Any) -> bytes:
    data = {"v": 1, "type": "roster_change", "id": "r-1", "version": 1, "issued_at": 1.0, "ops": ops}
    data.update(overrides)
    return json.dumps(data).encode()


def template_op(vector: Any, model: str = "dlib_resnet_v1") -> dict[str, Any]:
    return {
        "op": "add_template",
        "member_id": "m-1",
        "template": {"template_id": "a" * 32, "model": model, "vector": vector},
    }


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"\xff\xfe", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"v": 1, "v": 1}', "invalid_json"),
        (b'{"v": 1, "x": NaN}', "invalid_json"),
        (b'{"v": 1, "x": -Infinity}', "invalid_json"),
        (b'{"v": 1, "x": 1e999}', "invalid_json"),
        (b"[1, 2]", "invalid_payload"),
        (b'{"v": 2, "type": "roster_change"}', "unsupported_version"),
        (b'{"v": "1", "type": "roster_change"}', "unsupported_version"),
        (b'{"type": "roster_change"}', "unsupported_version"),
        (b'{"v": 1, "type": "command"}', "unknown_type"),
        (change([template_op(VECTOR[:127])]), "invalid_payload"),
        (change([template_op([*VECTOR, 0.0])]), "invalid_payload"),
        (change([template_op(["0.1"] * 128)]), "invalid_payload"),
        (change([template_op([1e6] * 128)]), "invalid_payload"),
        (change([template_op([0.01] * 512)]), "invalid_payload"),  # dlib's vectors are 128-d
        (change([template_op([0.01] * 63, "onnx-1a2b3c4d")]), "invalid_payload"),
        (change([template_op([0.01] * 1025, "onnx-1a2b3c4d")]), "invalid_payload"),
        (change([template_op(VECTOR, "ONNX model")]), "invalid_payload"),
        (
            change(
                [
                    {
                        "op": "add_template",
                        "member_id": "m-1",
                        "template": {"template_id": "a" * 32, "vector": VECTOR},
                    }
                ]
            ),
            "invalid_payload",
        ),
        (change([{"op": "revoke_centre_key", "kid": "XYZ"}]), "invalid_payload"),
        (change([{"op": "remove_member", "member_id": "m-1"}], v=1.0), "unsupported_version"),
        (change([{"op": "remove_member", "member_id": "m-1"}], v=True), "unsupported_version"),
        (change([{"op": "remove_member", "member_id": "m-1"}], sig={"kid": "fcd97215"}), "invalid_payload"),
        (change([template_op(VECTOR)]).replace(b"0.001", b"NaN", 1), "invalid_json"),
        (change([], version=1), "invalid_payload"),
        (change([{"op": "remove_member", "member_id": "m-1"}], version="2"), "invalid_payload"),
        (change([{"op": "remove_member", "member_id": ".."}]), "invalid_payload"),
        (change([{"op": "remove_member", "member_id": "m-1", "extra": 1}]), "invalid_payload"),
        (
            change(
                [{"op": "add_member", "member": {"member_id": "m", "name": "n", "valid_until": "2030-01-01"}}]
            ),
            "invalid_payload",
        ),
        (b" " * (LIMIT + 1), "too_large"),
    ],
)
def test_bad_roster_input_is_refused_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(m.InboundError) as caught:
        m.parse_roster(raw, LIMIT)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "raw,code",
    [
        (command(seconds="5"), "invalid_payload"),
        (command(seconds=-1), "invalid_payload"),
        (command(seconds=1e9), "invalid_payload"),
        (command(name="format_disk"), "invalid_payload"),
        (command(expires_at=None), "invalid_payload"),
        (command(id="x" * 49), "invalid_payload"),
        (command(id="c 1"), "invalid_payload"),
        (command(issued_at=100.0, expires_at=50.0), "invalid_payload"),
        (command(name="set_schedule", schedule={"always_open": "yes"}), "invalid_payload"),
        (
            command(name="set_schedule", schedule={"always_open": False, "weekly": {"mon": "25:00-26:00"}}),
            "invalid_payload",
        ),
        (command(v=0), "unsupported_version"),
        (command(v=1.0), "unsupported_version"),  # issue 10 item 14: strict integer
        (command(station_id="a/b"), "invalid_payload"),
        (command(type="roster_change"), "unknown_type"),
    ],
)
def test_bad_commands_are_refused_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(m.InboundError) as caught:
        m.parse_command(raw, LIMIT)
    assert caught.value.code == code
    if code == "invalid_payload":
        assert caught.value.ref in ("c-1", None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = [
    "v",
    "type",
    "id",
    "version",
    "issued_at",
    "ops",
    "op",
    "member",
    "member_id",
    "name",
    "expires_at",
    "seconds",
]


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_the_parser(raw: bytes) -> None:
    for parse in (m.parse_roster, m.parse_command):
        try:
            parse(raw, 4096)
        except m.InboundError:
            pass


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(["change", "command"]),
    key=st.sampled_from(KEYS),
    value=JSON,
    drop=st.sampled_from([None, *KEYS]),
)
def test_mutated_messages_parse_or_are_refused_never_crash(
    base: str, key: str, value: Any, drop: str | None
) -> None:
    op = {"op": "add_member", "member": {"member_id": "m-1", "name": "n"}}
    data: dict[str, Any] = (
        json.loads(change([op])) if base == "change" else json.loads(command(name="open", seconds=3))
    )
    target = data["ops"][0] if key in ("op", "member", "member_id", "name") and base == "change" else data
    target[key] = value
    if drop is not None:
        data.pop(drop, None)
    raw = json.dumps(data).encode()
    parse = m.parse_roster if base == "change" else m.parse_command
    try:
        parsed = parse(raw, LIMIT)
    except m.InboundError as exc:
        assert exc.code in {"invalid_json", "invalid_payload", "unsupported_version", "unknown_type"}
    else:
        # Whatever got through is a fully typed model: no stray types reach the store.
        assert TypeAdapter(type(parsed)).validate_python(parsed) == parsed


def test_templates_name_their_model_and_carry_its_dimension() -> None:
    onnx = m.parse_roster(change([template_op([0.01] * 512, "onnx-1a2b3c4d")]), LIMIT)
    assert isinstance(onnx, m.RosterChange)
    op = onnx.ops[0]
    assert (
        isinstance(op, m.AddTemplate)
        and op.template.model == "onnx-1a2b3c4d"
        and len(op.template.vector) == 512
    )
    assert m.FaceModelInfo(name="dlib_resnet_v1", dim=128).dim == 128
    with pytest.raises(ValueError):
        m.FaceModelInfo(name="dlib_resnet_v1", dim=512)


def test_acks_list_stored_ranges() -> None:
    raw = json.dumps({"v": 1, "type": "ack", "id": "a-1", "stored": [[1, 5], [7, 7]]}).encode()
    assert m.parse_ack(raw, LIMIT).highest == 7
    for bad in ([], [[5, 1]], [[0, 3]], [[1, 2**53]], [[1]], [[1, 2, 3]], "1-5", [[1.0, 2]]):
        raw = json.dumps({"v": 1, "type": "ack", "id": "a-1", "stored": bad}).encode()
        with pytest.raises(m.InboundError) as caught:
            m.parse_ack(raw, LIMIT)
        assert caught.value.code == "invalid_payload", bad


def signed_open(signer: CentreSigner, **overrides: Any) -> dict[str, Any]:
    now = time.time()
    body = {
        "v": 1,
        "type": "command",
        "id": "c-s1",
        "station_id": "st-1",
        "name": "open",
        "issued_at": now,
        "expires_at": now + 30,
        **overrides,
    }
    return signer.sign(body)


def test_signatures_refuse_forged_tampered_resigned_and_misdirected_messages() -> None:
    centre, other = CentreSigner.generate(), CentreSigner.generate()
    trusted = [centre.public_key]
    good = signed_open(centre)
    assert verify_message(good, trusted, "st-1") == centre.kid
    # the bytes published by sign_bytes verify after a strict parse, too
    parsed = m.decode(centre.sign_bytes(good), LIMIT)
    assert verify_message(parsed, trusted, "st-1") == centre.kid

    def code(message: dict[str, Any], station: str = "st-1") -> str:
        with pytest.raises(SignatureError) as caught:
            verify_message(message, trusted, station)
        return caught.value.code

    unsigned = {k: v for k, v in good.items() if k != "sig"}
    assert code(unsigned) == "signature_required"
    assert code(signed_open(other)) == "unknown_key"  # someone else's key
    resigned = signed_open(other)
    resigned["sig"] = {**resigned["sig"], "kid": centre.kid}  # another key claiming ours
    assert code(resigned) == "bad_signature"
    assert code({**good, "seconds": 600}) == "bad_signature"  # tampered after signing
    assert code({**good, "station_id": "st-2"}) == "bad_signature"
    assert code(good, "st-2") == "wrong_station"  # replayed at another station
    assert code({**good, "sig": {**good["sig"], "value": "x"}}) == "bad_signature"
    assert code({**good, "sig": {**good["sig"], "alg": "rsa"}}) == "bad_signature"
    assert code({**good, "sig": "AAAA"}) == "bad_signature"
    assert code({**good, "big": 2**60}) == "bad_signature"  # cannot be canonicalised
    with pytest.raises(ValueError):
        centre.sign({"v": 1, "type": "command"})  # no station_id: refused by the helper


def test_key_files_hold_several_keys_for_rotation() -> None:
    from cryptography.hazmat.primitives import serialization

    old, new = CentreSigner.generate(), CentreSigner.generate()
    pem = (
        Ed25519PrivateKey.from_private_bytes(DOC_SEED)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    text = f"# centre keys\n{old.public_key.b64} centre 2026\n\n{new.public_key.b64}\n{pem}"
    keys = parse_public_keys(text)
    assert [k.kid for k in keys] == [old.kid, new.kid, DOC_SIGNER.kid]
    assert keys[0].label == "centre 2026"
    for bad in ("not base64!", "AAAA", "-----BEGIN PUBLIC KEY-----\nAAAA\n"):
        with pytest.raises(ValueError):
            parse_public_keys(bad)
