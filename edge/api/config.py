"""`[api]`: where the local API and installer page listen, and how they protect themselves.

The station sits on a site LAN that nobody audits, often reachable by anyone on the same Wi-Fi, so
the defaults are the cautious ones: logins expire, failed logins slow down and then lock, request
bodies are bounded before they are read, and the live preview (JPEG encoding costs CPU the door
needs) is limited in rate and in the number of viewers.
"""

from __future__ import annotations

from pydantic import Field

from common.auth_settings import AuthSettings


class ApiConfig(AuthSettings):
    """Logins (session_ttl_s, session_idle_s, max_sessions, login_max_failures, login_lockout_s,
    login_backoff_s, cookie_secure) come from the policy the centre's staff logins share."""

    enabled: bool = Field(True, description="Serve the local API and installer page inside `yizhan run`.")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=253,
        description="Bind address (the station's LAN address on site).",
    )
    port: int = Field(8080, ge=1, le=65535, description="TCP port.")
    max_upload_mb: int = Field(
        10,
        ge=1,
        le=40,
        description="Largest photo upload (MiB); a bigger request is refused with 413 before it is read.",
    )
    max_upload_megapixels: float = Field(
        25.0,
        ge=1.0,
        le=50.0,
        allow_inf_nan=False,
        description="Largest photo (million pixels); decompression bombs are refused before decoding.",
    )
    max_json_kb: int = Field(
        256, ge=16, le=4096, description="Largest JSON request body (KiB); bigger ones get 413."
    )
    preview_fps: float = Field(
        8.0,
        ge=1.0,
        le=30.0,
        allow_inf_nan=False,
        description="Frame rate of the live preview (MJPEG); each frame is a JPEG encode on the Pi.",
    )
    preview_max_side: int = Field(
        640, ge=160, le=1920, description="Preview frames are scaled down to this longest side (pixels)."
    )
    max_preview_clients: int = Field(
        2, ge=1, le=10, description="Live previews served at once; more are refused with 503."
    )
    analysis_interval_s: float = Field(
        0.5,
        ge=0.1,
        le=10.0,
        allow_inf_nan=False,
        description="The face box and quality hints of the preview are computed at most this often "
        "(seconds), whatever the number of viewers: the face model is shared with the door.",
    )
    capture_ttl_s: int = Field(
        900,
        ge=60,
        le=86400,
        description="Photos captured or uploaded for review are forgotten after this long (seconds) "
        "unless enrolled; they are kept in memory only.",
    )

    @property
    def max_photo_pixels(self) -> int:
        """`max_upload_megapixels` in pixels: the one photo limit of the station (page and CLI)."""
        return int(self.max_upload_megapixels * 1_000_000)
