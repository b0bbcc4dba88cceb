"""Everything one API instance holds besides the daemon: accounts, sessions, captures, metrics.

Built once per app by `create_app` from the daemon and its `[api]` section; routes reach it through
`edge.api.deps`. Nothing here is global, so two apps (tests) never share sessions or counters.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.schedule import ScheduleConfig
from edge.api.auth import AuthService, InstallerStore
from edge.api.captures import CaptureStore
from edge.api.config import ApiConfig
from edge.api.faces import FaceWork
from edge.api.metrics import StationMetrics
from edge.api.services import StationServices
from recognizer.encoder import FaceModel
from recognizer.images import decode_image

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    services: StationServices
    settings: ApiConfig
    auth: AuthService
    metrics: StationMetrics
    captures: CaptureStore
    faces: FaceWork
    schedule: ScheduleConfig
    stopping: threading.Event = field(default_factory=threading.Event)
    previews: int = 0
    started_mono: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Photos decoded at once: a 25-megapixel photo is 75 MB of pixels on a Pi with 1-4 GB.
    decode_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))

    @classmethod
    def build(cls, services: StationServices, *, face_model: FaceModel | None = None) -> ApiContext:
        config = services.config
        settings = config.api
        installers = InstallerStore.for_data_dir(config.storage.data_dir)
        holder: dict[str, ApiContext] = {}

        def on_lockout(scope: str, key: str) -> None:
            if "ctx" in holder:
                holder["ctx"].audit(
                    "installer_lockout",
                    by="api",
                    details={"scope": scope, "key": key[:64], "lockout_s": settings.login_lockout_s},
                )

        ctx = cls(
            services=services,
            settings=settings,
            auth=AuthService(installers, settings, on_lockout=on_lockout),
            metrics=StationMetrics(services),
            captures=CaptureStore(ttl_s=settings.capture_ttl_s),
            faces=FaceWork(services, interval_s=settings.analysis_interval_s, face_model=face_model),
            schedule=config.schedule,
        )
        holder["ctx"] = ctx
        if services.recorder is not None:
            services.recorder.subscribe(ctx.metrics.on_event)
        return ctx

    def audit(
        self, kind: str, *, by: str, member_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Record an installer action in the station's event log (and so to the centre).

        Best effort: the action already happened, and a failing write is logged by the recorder.
        """
        recorder = self.services.recorder
        if recorder is None:
            return
        try:
            recorder.record(kind=kind, member_id=member_id, details={"by": by, **(details or {})})
        except Exception:
            log.warning("installer action not recorded", extra={"fields": {"kind": kind, "by": by}})

    def close(self) -> None:
        """Stop previews and release the API's own station (its face model and database engine)."""
        self.stopping.set()
        self.faces.close()

    def decode(self, data: bytes) -> npt.NDArray[np.uint8]:
        """`decode_image` with the upload pixel limit, a few at a time."""
        with self.decode_slots:
            return decode_image(data, max_pixels=self.settings.max_photo_pixels)

    def refresh_roster(self) -> None:
        """Rebuild the door's roster now, on this (API) thread rather than on the decide thread.

        The decide loop would notice the new roster version by itself; a failure here is logged
        and left to it (it keeps QR working when templates are unreadable).
        """
        try:
            self.services.reload_roster()
        except Exception:
            log.warning("roster not reloaded after a change", exc_info=True)

    def try_open_preview(self) -> bool:
        """Claim one of the `max_preview_clients` preview slots."""
        with self.lock:
            if self.previews >= self.settings.max_preview_clients:
                return False
            self.previews += 1
            return True

    def close_preview(self) -> None:
        with self.lock:
            self.previews = max(0, self.previews - 1)
