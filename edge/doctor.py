"""`yizhan doctor`: what is wrong with this station, in words an installer can act on.

Each check returns ok / warn / fail and one line of detail. It never changes stored data (the
database is only opened and checked; keys are only read), so it is safe to run beside the daemon.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.config import Config

Status = Literal["ok", "warn", "fail"]

#: A clock before this is certainly wrong (a Pi without RTC boots at its last shutdown or 1970).
EARLIEST_PLAUSIBLE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


def check_clock(now: dt.datetime | None = None) -> Check:
    now = now or dt.datetime.now(dt.UTC)
    if now < EARLIEST_PLAUSIBLE:
        return Check(
            "clock",
            "fail",
            f"system time {now.isoformat()} is in the past: QR tokens and "
            "opening hours will be judged wrongly; check NTP / the RTC",
        )
    synced = _ntp_synchronized()
    if synced is False:
        return Check("clock", "warn", f"{now.isoformat()} but NTP is not synchronized (timedatectl)")
    return Check(
        "clock", "ok", now.isoformat(timespec="seconds") + ("" if synced is None else ", NTP synchronized")
    )


def _ntp_synchronized() -> bool | None:
    path = shutil.which("timedatectl")
    if path is None:
        return None
    import subprocess

    try:
        out = subprocess.run(
            [path, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    return None if out.returncode != 0 or value not in ("yes", "no") else value == "yes"


def check_disk(config: Config) -> Check:
    data_dir = config.storage.data_dir
    probe = data_dir if data_dir.exists() else data_dir.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return Check("disk", "fail", f"cannot read free space of {probe}: {exc}")
    free_mb = usage.free / 2**20
    budget = config.snapshots.budget_mb
    floor = config.snapshots.min_free_mb
    if free_mb < floor:
        used = config.storage.reserve_mb and not (probe / "reserve.space").exists()
        held = "; the disk reserve is gone (used)" if used else ""
        return Check(
            "disk",
            "fail",
            f"only {free_mb:.0f} MiB free under {probe}, below the {floor} MiB floor: snapshots are "
            f"paused and events live on what is left{held}; free space (journald? old files?)",
        )
    if free_mb < budget / 4:
        return Check(
            "disk",
            "warn",
            f"{free_mb:.0f} MiB free, snapshot budget is {budget} MiB: lower [snapshots] budget_mb",
        )
    return Check("disk", "ok", f"{free_mb:.0f} MiB free under {probe}")


def check_database(config: Config) -> Check:
    path = config.storage.database_path
    if not path.exists():
        return Check("database", "warn", f"{path} does not exist yet (created at the first start)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            members = conn.execute("SELECT count(*) FROM members").fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path}: {exc}")
    if integrity != "ok":
        return Check("database", "fail", f"{path} is damaged: {integrity}")
    from models.database import SCHEMA_VERSION

    if version != SCHEMA_VERSION:
        return Check(
            "database",
            "warn",
            f"schema version {version}, this program uses {SCHEMA_VERSION} (upgraded at the next start)"
            if (version or 0) < SCHEMA_VERSION
            else f"schema version {version} is newer than this program ({SCHEMA_VERSION}): upgrade yizhan",
        )
    return Check("database", "ok", f"{members} members, {pending} events waiting to sync, journal {mode}")


def _state_values(config: Config, *keys: str) -> dict[str, str]:
    """station_state values, read-only (empty when there is no database yet)."""
    path = config.storage.database_path
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        marks = ", ".join("?" for _ in keys)
        rows = conn.execute(f"SELECT key, value FROM station_state WHERE key IN ({marks})", keys).fetchall()
    finally:
        conn.close()
    return {str(key): str(value) for key, value in rows}


def _member_id_twins(config: Config) -> list[list[str]]:
    from models.database import CASE_CONFLICTS_SQL, case_conflict_groups

    path = config.storage.database_path
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return case_conflict_groups(conn.execute(CASE_CONFLICTS_SQL).fetchall())
    finally:
        conn.close()


def check_lockouts(config: Config, now_wall: float | None = None) -> list[Check]:
    """Active lockouts (as the daemon last saved them) and member ids that differ only by case."""
    from edge import access_state

    try:
        values = _state_values(config, access_state.KEY)
    except sqlite3.Error as exc:
        return [Check("lockouts", "fail", f"cannot read the saved lockouts: {exc}")]
    now = time.time() if now_wall is None else now_wall
    locks = access_state.active_lockouts(values.get(access_state.KEY), now)
    checks = []
    if not locks:
        checks.append(Check("lockouts", "ok", "no credential or face is locked out"))
    else:
        words = {"member": "face entry as", "pass": "pass", "appearance": "face track"}
        parts = []
        for lock in locks:
            scope, _, key = str(lock.get("id", "")).partition(":")
            parts.append(
                f"{words.get(scope, scope)} {key} ({lock['remaining_s']:.0f} s left, "
                f"{lock.get('attempts')} failed attempts, {lock.get('reason')})"
            )
        checks.append(
            Check(
                "lockouts",
                "warn",
                f"{len(locks)} locked: " + "; ".join(parts) + " - other members are not affected; "
                "clear one on the installer page or DELETE /api/v1/lockouts/<id>",
            )
        )
    try:
        groups = _member_id_twins(config)
    except sqlite3.Error as exc:
        return [*checks, Check("member ids", "fail", f"cannot read members: {exc}")]
    if groups:
        listed = "; ".join(" and ".join(group) for group in groups)
        checks.append(
            Check(
                "member ids",
                "warn",
                f"member ids that differ only by case (kept from before ids were compared ignoring "
                f"case): {listed}. Remove one of each pair and re-issue its passes under the other",
            )
        )
    return checks


def check_keys(config: Config, env: dict[str, str]) -> list[Check]:
    from common.template_cipher import load_or_create_key

    checks = []
    key_path = config.storage.key_file or config.storage.data_dir / "template.key"
    if env.get("YIZHAN_TEMPLATE_KEY"):
        checks.append(Check("template key", "ok", "from $YIZHAN_TEMPLATE_KEY"))
    elif not key_path.exists():
        checks.append(
            Check(
                "template key",
                "warn" if config.storage.key_file is None else "fail",
                f"{key_path} does not exist"
                + ("" if config.storage.key_file else " (created at the first enrolment)"),
            )
        )
    else:
        try:
            load_or_create_key(key_file=key_path, data_dir=config.storage.data_dir, env={})
            checks.append(
                Check("template key", "ok", f"{key_path}, mode {stat.S_IMODE(key_path.stat().st_mode):o}")
            )
        except Exception as exc:
            checks.append(Check("template key", "fail", str(exc)))
    db = config.storage.database_path
    if db.exists():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                trusted = conn.execute("SELECT count(*) FROM qr_keys WHERE revoked_at IS NULL").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            trusted, detail = 0, str(exc)
        else:
            detail = f"{trusted} trusted QR public key(s)"
        checks.append(
            Check(
                "qr keys",
                "ok" if trusted else "warn",
                detail if trusted else detail + ": QR codes cannot be checked (yizhan keys add/init)",
            )
        )
    return checks


def check_gpio(config: Config) -> Check:
    from door.pins import DoorHardwareError, make_pin_factory

    name = config.door.gpio.pin_factory
    try:
        factory = make_pin_factory(name)
    except DoorHardwareError as exc:
        return Check("gpio", "fail", str(exc))
    factory.close()
    if name == "mock":
        on_pi = Path("/proc/device-tree/model").exists()
        return Check(
            "gpio",
            "fail" if on_pi else "warn",
            'simulated pins ([door.gpio] pin_factory = "mock"): no door is driven'
            + (' — this IS a Pi: set pin_factory = "lgpio"' if on_pi else ""),
        )
    return Check("gpio", "ok", f"pin factory {name!r} loaded")


def check_camera(
    config: Config,
    opener: Callable[[str], bool] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    source = config.camera.source
    if source == "demo":
        return Check("camera", "warn", "source is the generated demo video, not a camera")
    from edge.camera import parse_source, redact_source

    kind, target = parse_source(source)
    if kind == "file" and not Path(str(target)).is_file():
        return Check("camera", "fail", f"video file {source} does not exist")
    camera = config.camera
    limit = camera.open_timeout_s + camera.read_timeout_s  # what the check allows, as the daemon does
    if opener is None:
        opener = functools.partial(
            _open_and_read, open_timeout_s=camera.open_timeout_s, read_timeout_s=camera.read_timeout_s
        )
    started = clock()
    ok = opener(source)
    took = clock() - started
    if not ok:
        hint = "unplugged? wrong index or URL? is the daemon holding the device?"
        if took < camera.open_timeout_s:
            detail = f"{redact_source(source)}: cannot be opened (refused after {took:.1f} s; {hint})"
        else:
            detail = f"{redact_source(source)}: no frame within {limit:g} s ({hint})"
        return Check("camera", "fail", detail)
    return Check("camera", "ok", f"{redact_source(source)}: first frame in {took:.2f} s")


def _open_and_read(source: str, *, open_timeout_s: float, read_timeout_s: float) -> bool:
    from edge.camera import open_capture, parse_source

    _, target = parse_source(source)
    capture = open_capture(target, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s)
    try:
        if not capture.isOpened():
            return False
        ok, frame = capture.read()
        return bool(ok) and frame is not None
    finally:
        capture.release()


def check_face_stack(config: Config | None = None) -> Check:
    """The configured encoder loads and has measured presets for the configured preset name.

    Both encoders use dlib's HOG detector; an ONNX model also needs dlib's 68-point predictor.
    """
    rec = config.recognition if config is not None else None
    try:
        import dlib
        import face_recognition_models

        started = time.monotonic()
        if rec is None or rec.encoder == "dlib":
            dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
            return Check(
                "face models",
                "ok",
                f"dlib {dlib.__version__}, models load in {time.monotonic() - started:.1f} s",
            )
        dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    except Exception as exc:
        return Check("face models", "fail", f"cannot load the face models: {exc}")
    from recognizer.encoder import FaceModelError
    from recognizer.onnx_encoder import OnnxFaceModel
    from recognizer.scoring import PRESETS

    try:
        info = OnnxFaceModel(
            rec.onnx_model,  # type: ignore[arg-type]
            scaling=rec.onnx_input,
            backend=rec.onnx_backend,
        ).info
    except FaceModelError as exc:
        return Check("face models", "fail", f"[recognition] onnx_model = {str(rec.onnx_model)!r}: {exc}")
    took = time.monotonic() - started
    detail = (
        f"ONNX model {info.name} ({info.dim}-d, {info.layout.upper()}, input scaled {info.scaling}"
        f"{'' if info.scaling == info.detected_scaling else ' by onnx_input'}, run by {info.backend}"
        f"{f': {info.backend_note}' if info.backend_note else ''}) from {rec.onnx_model}, "
        f"loads in {took:.1f} s"
    )
    measured = PRESETS.get(info.name, {}).get(rec.preset)
    if measured is None:
        return Check(
            "face models",
            "fail",
            f"{detail}; no measured preset {rec.preset!r} for it: measure one with "
            "`yizhan calibrate --faces DIR` (docs/RECOGNITION.md)",
        )
    if measured.description.startswith("PROVISIONAL"):
        return Check("face models", "warn", f"{detail}; preset {rec.preset!r}: {measured.description}")
    return Check("face models", "ok", detail)


def check_face_templates(config: Config) -> Check:
    """Who has no template for the active face model (after an encoder switch: must re-enrol)."""
    from recognizer.encoder import FaceModelError, describe_face_model

    rec = config.recognition
    try:
        active = describe_face_model(rec.encoder, rec.onnx_model, rec.onnx_input).name
    except FaceModelError:
        return Check("face templates", "warn", "unknown: the face model cannot be loaded (see face models)")
    path = config.storage.database_path
    if not path.exists():
        return Check("face templates", "ok", f"no database yet; active face model {active}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(face_templates)")}
            model_column = "model" if "model" in columns else "'dlib_resnet_v1'"
            rows = conn.execute(
                f"SELECT member_id, {model_column}, count(*) FROM face_templates GROUP BY 1, 2"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("face templates", "fail", f"{path}: {exc}")
    by_member: dict[str, set[str]] = {}
    unused = 0
    for member_id, model, count in rows:
        by_member.setdefault(str(member_id), set()).add(str(model))
        unused += int(count) if model != active else 0
    enrolled = sorted(m for m, models in by_member.items() if active in models)
    stale = sorted(m for m, models in by_member.items() if active not in models)
    if stale:
        shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        return Check(
            "face templates",
            "warn",
            f"{len(stale)} member(s) have templates of another face model only and no face at this door "
            f"until enrolled again for {active} (their pass still works): {shown}; "
            f"`yizhan members list` marks them",
        )
    kept = (
        f"; {unused} template(s) of other face models kept unused (`yizhan members prune-templates`)"
        if unused
        else ""
    )
    return Check("face templates", "ok", f"{len(enrolled)} member(s) enrolled for {active}{kept}")


def run_checks(config: Config, env: dict[str, str] | None = None, *, camera: bool = True) -> list[Check]:
    env = dict(os.environ) if env is None else env
    checks = [
        check_clock(),
        check_disk(config),
        check_database(config),
        *check_lockouts(config),
        *check_keys(config, env),
        check_gpio(config),
        check_face_stack(config),
        check_face_templates(config),
    ]
    if camera:
        checks.append(check_camera(config))
    return checks
