"""Configuration sections for the camera input (`[camera]`) and snapshot storage (`[snapshots]`).

Same rules as `edge.config`: unknown keys are refused, every value is bounded, and the models are
frozen so a running camera thread can never see its settings change underneath it. They live in
their own module so the camera and snapshot code (and their tests) do not depend on the whole
station configuration; `edge.config.Config` can include them as sections.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SourceKind = Literal["device", "url", "file"]
_URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")


def parse_source(source: str) -> tuple[SourceKind, str | int]:
    """Classify `camera.source`: ("device", index), ("url", url) or ("file", path)."""
    text = source.strip()
    if re.fullmatch(r"[0-9]{1,3}", text):
        return "device", int(text)
    if text.lower().startswith(_URL_PREFIXES):
        return "url", text
    return "file", source


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class CameraConfig(_Section):
    source: str = Field(
        "demo",
        min_length=1,
        max_length=2000,
        description='What to read: an integer such as "0" is a V4L2 device index, "rtsp://", '
        '"http://" or "https://" is a stream URL, anything else is a video file path. "demo" is '
        "mapped by the daemon to a generated demo video.",
    )
    realtime: bool = Field(
        True,
        description="File sources play at their native frame rate; false reads them as fast as possible "
        "(tests, benchmarks). Devices and streams always run at their own rate.",
    )
    fps_limit: float = Field(
        15.0,
        gt=0.0,
        le=120.0,
        description="At most this many frames per second are handed to the decision loop; the rest are "
        "read (so the device buffer never holds stale frames) and dropped.",
    )
    width: int | None = Field(
        None, ge=160, le=7680, description="Requested capture width for devices (None: the driver default)."
    )
    height: int | None = Field(
        None, ge=120, le=4320, description="Requested capture height for devices (None: the driver default)."
    )
    frozen_after_s: float = Field(
        10.0,
        ge=0.2,
        le=3600.0,
        description="Identical frames for this long mean the camera is frozen: camera_down, reconnect.",
    )
    reconnect_initial_s: float = Field(
        0.5, ge=0.01, le=60.0, description="First wait before reopening a failed camera."
    )
    reconnect_max_s: float = Field(
        30.0, ge=0.01, le=3600.0, description="The wait doubles after each failed attempt up to this."
    )
    reconnect_jitter: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="Each wait is randomised by up to this fraction, so several stations behind one "
        "network camera do not reconnect in lockstep.",
    )
    open_timeout_s: float = Field(
        10.0, ge=0.5, le=120.0, description="Give up opening a stream after this long (FFmpeg sources)."
    )
    read_timeout_s: float = Field(
        5.0,
        ge=0.5,
        le=120.0,
        description="A stream read blocked this long fails (FFmpeg sources), so a silent RTSP server "
        "becomes read_failed and a reconnect instead of a hung thread.",
    )

    def rebased(self, base: Path) -> CameraConfig:
        """A relative video-file source taken relative to `base` (the config file's folder), as
        data_dir is: systemd starts us in /, an installer from anywhere."""
        kind, target = parse_source(self.source)
        if self.source == "demo" or kind != "file" or Path(str(target)).is_absolute():
            return self
        return self.model_copy(update={"source": str(base / str(target))})

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self


class SnapshotConfig(_Section):
    enabled: bool = Field(True, description="Write a JPEG beside each event.")
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of snapshot files.")
    budget_mb: int = Field(
        2048,
        ge=10,
        le=1_000_000,
        description="Snapshots may use at most this much disk (MiB); the oldest are deleted first.",
    )
    retention_days: int = Field(
        30, ge=1, le=3650, description="Snapshots older than this are deleted; event rows stay."
    )
    min_free_mb: int = Field(
        256,
        ge=1,
        le=1_000_000,
        description="Free space (MiB) kept on the data disk: the oldest snapshots are deleted to keep "
        "it, and none is written below it, so events can always be recorded.",
    )
    face_crop: bool = Field(True, description="Also write a crop around the face (<event_id>.face.jpg).")
