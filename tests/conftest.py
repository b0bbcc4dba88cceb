"""Shared fixtures: real photos, one loaded face model per test session, an in-process CLI."""

from __future__ import annotations

import fcntl
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.dataset import ENV_FACES, FIXTURES, faces_dir

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The centre's fixtures (SQLite and a real PostgreSQL): tests/central_fixtures.py.
pytest_plugins = ("central_fixtures",)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def faces_root() -> Path:
    """The wider labelled set. Absent locally: skip with the reason. Absent in CI: fail loudly."""
    root = faces_dir()
    if root is None:
        message = f"face data set not found: set {ENV_FACES} to ../shared/data/faces"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the dataset tests)")
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def face_model() -> Any:
    from recognizer.encoder import DlibFaceModel

    return DlibFaceModel()


@pytest.fixture(scope="session")
def pipeline(face_model: Any) -> Any:
    """The photo pipeline (thorough detection), as enrolment and `yizhan identify` use it."""
    from recognizer.face_pipeline import DetectionSettings, FacePipeline

    return FacePipeline(face_model, DetectionSettings(detect_max_side=1280))


@pytest.fixture(scope="session")
def door_pipeline(face_model: Any) -> Any:
    """The door's pipeline (detection sized for 640x480 camera frames)."""
    from recognizer.face_pipeline import FacePipeline

    return FacePipeline(face_model)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs `yizhan` in-process against one station folder (so dlib loads once per session)."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        from edge.cli import main

        out, err = io.StringIO(), io.StringIO()
        saved = dict(os.environ)
        try:
            os.environ.pop("YIZHAN_TEMPLATE_KEY", None)
            os.environ.update(env or {})
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(["--config", str(self.config_path), "--log-format", "text", *args])
                except SystemExit as exc:  # argparse rejecting the command line
                    code = int(exc.code or 0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def station_dir(tmp_path: Path) -> Path:
    config = tmp_path / "yizhan.toml"
    config.write_text('[storage]\ndata_dir = "data"\n\n[station]\nstation_id = "st-test"\n', encoding="utf-8")
    return tmp_path


@pytest.fixture
def cli(station_dir: Path, face_model: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    # Share the session's loaded dlib model with every Station the CLI builds.
    import recognizer.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "DlibFaceModel", lambda: face_model)
    yield Cli(station_dir / "yizhan.toml")


@pytest.fixture(scope="session")
def labelled_faces(faces_root: Path, face_model: Any) -> Any:
    """Every face of ../shared/data/faces and faces-ea, encoded once per test session (photo +
    three door frames each: what `balanced` and `convenient` judge on), through bench.quality's own
    pipelines and cache (bench/out/, git-ignored: a rerun on the same machine reads it instead of
    encoding again). About 2-3 minutes on a loaded 2-core box without the cache."""
    from bench.quality import CACHE_DIR, data_roots, encode_set

    roots = data_roots(faces_root)
    if len(roots) < 2:
        message = f"faces-ea not found beside {faces_root} (the East Asian set the rule is measured on)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Parallel test processes (pytest-xdist) share the cache file: one encodes and writes it while
    # the others wait, then read it instead of encoding the same photos again.
    with _cache_lock(CACHE_DIR / ".labelled_faces.lock"):
        samples, info = encode_set(face_model, roots, frames=3)
    return samples, roots, info


@contextmanager
def _cache_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def eval_model_path() -> Path:
    """The ONNX evaluation model of `make eval-model` ($YIZHAN_EVAL_MODEL or var/models/); absent:
    skip, saying how to get it (CI runs `make eval-model` first; without npm it cannot)."""
    from bench.eval_model import find_eval_model

    path, why = find_eval_model()
    if path is None:
        pytest.skip(why)
    return path
