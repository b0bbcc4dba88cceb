"""The station's configuration: one typed model, one small section per subsystem.

Loaded from TOML (`--config PATH`, else `$YIZHAN_CONFIG`, else `./yizhan.toml`, else built-in
defaults that work on a laptop with data under `./var/`). Unknown keys are refused: a typo such as
`treshold` must stop the daemon at start, not silently leave the default in force at a door.
Every field has bounds, so a value that would make the door unsafe (a negative margin, a 0 s skew
window turned into hours) is refused with a message naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from common.config_files import ConfigError as ConfigError
from common.config_files import Section, find_config, read_toml, rebased, validate_config
from common.logging_setup import LoggingConfig
from contract.schedule import ScheduleConfig
from door.config import DoorConfig
from edge.access_config import AccessConfig
from edge.api.config import ApiConfig
from edge.camera_config import CameraConfig, SnapshotConfig
from sync.config import MqttConfig

ENV_CONFIG = "YIZHAN_CONFIG"
DEFAULT_CONFIG_NAME = "yizhan.toml"
EXAMPLE_CONFIG = "config.example.toml"
_Section = Section  # the name every section below (and any added later) derives from


class StationConfig(_Section):
    station_id: str = Field(
        "station-dev",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="This station's id: QR tokens scoped to another station are refused.",
    )
    name: str = Field("yizhan dev station", max_length=200, description="Human-readable name.")


class StorageConfig(_Section):
    data_dir: Path = Field(Path("var"), description="Everything the station stores lives under it.")
    key_file: Path | None = Field(
        None,
        description="Template encryption key (32 bytes, hex). Default: <data_dir>/template.key, "
        "created with mode 0600 on first use. $YIZHAN_TEMPLATE_KEY overrides both.",
    )
    reserve_mb: int = Field(
        16,
        ge=0,
        le=4096,
        description="Space (MiB) held in <data_dir>/reserve.space and given back to the database "
        "when the disk is full, so events are still recorded (0: no reserve).",
    )

    @property
    def database_path(self) -> Path:
        return self.data_dir / "yizhan.db"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


#: Largest distance overrides accepted for dlib's model (its impostors sit from ~0.4 up; 0.8 and
#: above would admit nearly anyone). Other models' distances have their own scale (unit vectors:
#: 0..2), so for them only (0, 2) is enforced here and the preset says what is measured.
DLIB_THRESHOLD_RANGE = (0.2, 0.8)


class RecognitionConfig(_Section):
    encoder: Literal["dlib", "onnx"] = Field(
        "dlib",
        description="Face encoder: dlib's ResNet (default, CC0) or an ArcFace-class ONNX model "
        "(onnx_model); docs/RECOGNITION.md says which models may be used and what each buys.",
    )
    onnx_model: Path | None = Field(
        None,
        description='The .onnx file when encoder = "onnx" (relative: from this file\'s folder). '
        "Templates and presets are keyed by the file's content: changing it means re-enrolling.",
    )
    onnx_input: Literal["auto", "pm1", "raw"] = Field(
        "auto",
        description="How pixels are scaled for the ONNX model: auto (read from the graph), pm1 "
        "((x - 127.5) / 127.5, the ArcFace convention) or raw (0..255).",
    )
    onnx_backend: Literal["auto", "opencv", "onnxruntime"] = Field(
        "auto",
        description="What runs the ONNX model: auto (OpenCV's DNN when it computes what onnxruntime "
        "computes on a probe face, faster here; else onnxruntime), opencv or onnxruntime.",
    )
    preset: Literal["strict", "balanced", "convenient"] = Field(
        "balanced",
        description="Measured operating point (docs/RECOGNITION.md); balanced: no stranger let in.",
    )
    operating_point: Path | None = Field(
        None,
        description="An operating point file written by `yizhan calibrate` (used instead of the preset; "
        "relative: from this file's folder).",
    )
    threshold: float | None = Field(
        None,
        gt=0.0,
        lt=2.0,
        description="Override the accept distance (face alone opens under it; unmeasured: '*').",
    )
    min_margin: float | None = Field(
        None, ge=0.0, lt=0.5, description="Override the preset's margin to the best other member."
    )
    max_ratio: float | None = Field(
        None, gt=0.0, le=1.5, description="Override the cohort ratio limit (rosters of 20+ members)."
    )
    two_factor: bool = Field(
        False, description="Everyone: a QR code names the member and the face confirms it."
    )
    two_factor_groups: tuple[str, ...] = Field(
        (), max_length=64, description="Members of these groups need QR + face (e.g. a pair of lookalikes)."
    )
    two_factor_window_s: float = Field(
        10.0, ge=2.0, le=60.0, description="After the QR code, how long the face has to confirm it."
    )
    enrol_templates: int = Field(3, ge=1, le=10, description="Templates kept per enrolment (the best few).")
    detect_max_side: int = Field(
        400,
        ge=160,
        le=4096,
        description="Door frames: detection on a grey copy this large (400: faces >= ~105 px at 640x480).",
    )
    detect_fallback_side: int = Field(
        640, ge=0, le=4096, description="When the first pass finds no face, one more at this size (0: off)."
    )
    photo_detect_max_side: int = Field(
        1280, ge=160, le=8192, description="Enrolment and `identify` photos: detection size (thorough)."
    )
    upsample: int = Field(
        0, ge=0, le=2, description="HOG upsampling for normal frames (small images get +1)."
    )
    min_detection_score: float = Field(
        0.1, ge=-1.0, le=3.0, description="Detections the HOG scores lower are ignored (texture, posters)."
    )
    min_face_px: int = Field(70, ge=40, le=1000, description="Smallest face (box side in pixels) accepted.")
    min_sharpness: float = Field(12.0, ge=0.0, description="Laplacian variance of the face at 128x128.")
    min_brightness: float = Field(40.0, ge=0.0, le=255.0)
    max_brightness: float = Field(230.0, ge=0.0, le=255.0)
    max_roll_deg: float = Field(30.0, gt=0.0, le=90.0)
    max_yaw: float = Field(0.45, gt=0.0, le=2.0)
    same_person_max_distance: float | None = Field(
        None,
        gt=0.2,
        lt=2.0,
        description="Photos enrolled together must be this close to each other "
        "(unset: the encoder's preset, dlib 0.65).",
    )
    max_templates_per_member: int = Field(10, ge=1, le=50)

    @model_validator(mode="after")
    def _encoder_settings(self) -> RecognitionConfig:
        if self.encoder == "onnx" and self.onnx_model is None:
            raise ValueError('encoder = "onnx" needs onnx_model = "<path to the .onnx file>"')
        low, high = DLIB_THRESHOLD_RANGE
        if self.encoder == "dlib" and self.threshold is not None and not low < self.threshold < high:
            raise ValueError(f"threshold for dlib's model must be in ({low}, {high}), got {self.threshold}")
        same = self.same_person_max_distance
        if self.encoder == "dlib" and same is not None and same >= 1.0:
            raise ValueError(f"same_person_max_distance for dlib's model must be under 1.0, got {same}")
        return self


class QrConfig(_Section):
    max_clock_skew_s: int = Field(
        120, ge=0, le=3600, description="Tolerance for the phone/issuer clock against ours (seconds)."
    )
    default_ttl_s: int = Field(
        365 * 24 * 3600, ge=60, le=5 * 365 * 24 * 3600, description="Validity of issued tokens by default."
    )
    signing_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM) for issuing; default <data_dir>/keys/qr_signing.pem."
    )


class DaemonConfig(_Section):
    """How the decide loop spends its time (see docs/ARCHITECTURE.md)."""

    idle_detect_s: float = Field(
        1.0,
        gt=0.0,
        le=30.0,
        description="With no motion, still look for a face this often (someone standing still).",
    )
    min_brightness: float = Field(
        12.0,
        ge=0.0,
        le=255.0,
        description="Frames darker than this skip face detection (lens capped, night).",
    )
    qr_repeat_s: float = Field(
        3.0, ge=0.0, le=60.0, description="The same QR text seen again within this is not decided again."
    )
    max_retries: int = Field(
        3, ge=1, le=10, description="Unknown-face encodings per appearance before refusing."
    )
    retry_interval_s: float = Field(0.3, ge=0.0, le=5.0, description="Spacing of those encodings.")
    lost_after_s: float = Field(0.6, gt=0.0, le=30.0, description="A face unseen this long has left.")
    reverify_s: float = Field(
        2.0, gt=0.0, le=60.0, description="Re-check a decided face this often (did someone else step in?)."
    )
    snapshot_queue: int = Field(
        16, ge=1, le=256, description="Snapshots waiting for the disk; more are dropped."
    )


class Config(_Section):
    station: StationConfig = Field(default_factory=StationConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    qr: QrConfig = Field(default_factory=QrConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    door: DoorConfig = Field(default_factory=DoorConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def parse_config(data: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML mapping; relative paths are taken relative to `base_dir`."""
    config = validate_config(Config, data, source, EXAMPLE_CONFIG)
    if base_dir is not None:
        config = _rebase(config, base_dir)
    return config


def _rebase(config: Config, base: Path) -> Config:
    storage, qr, recognition = config.storage, config.qr, config.recognition
    return config.model_copy(
        update={
            "storage": storage.model_copy(
                update={
                    "data_dir": rebased(storage.data_dir, base),
                    "key_file": rebased(storage.key_file, base),
                }
            ),
            "recognition": recognition.model_copy(
                update={
                    "onnx_model": rebased(recognition.onnx_model, base),
                    "operating_point": rebased(recognition.operating_point, base),
                }
            ),
            "qr": qr.model_copy(update={"signing_key_file": rebased(qr.signing_key_file, base)}),
            "mqtt": config.mqtt.rebased(base),
            "camera": config.camera.rebased(base),
        }
    )


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[Config, str]:
    """Find, read and validate the configuration. Returns (config, where it came from).

    Relative paths inside a file are relative to that file's folder, so a config works the same
    whatever directory systemd or an installer starts us from.
    """
    path = find_config(path, env=env, env_var=ENV_CONFIG, default_name=DEFAULT_CONFIG_NAME)
    if path is None:
        return parse_config({}, "built-in defaults", Path.cwd()), "built-in defaults"
    return parse_config(read_toml(path), str(path), path.resolve().parent), str(path)
