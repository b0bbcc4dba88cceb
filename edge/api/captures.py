"""Photos waiting for review: captured from the live camera or uploaded, kept in memory only.

Enrolment on site is capture, look, then enrol: between the first and the last step the photo
belongs to no member yet, so it must not be on disk (no biometric data without a person who
consented). Captures are held in RAM, bounded in count and bytes, expire after `ttl_s`, and are
visible only to the installer who made them. Enrolling consumes them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

CAPTURE_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


@dataclass(frozen=True, slots=True)
class Capture:
    capture_id: str
    owner: str
    source: Literal["camera", "upload"]
    data: bytes  # what enrolment decodes: a lossless PNG of a camera frame, or the uploaded file
    preview: bytes  # a small JPEG for the review screen
    width: int
    height: int
    check: dict[str, Any]  # the quality verdict at capture time
    created: float  # time.monotonic()

    @property
    def name(self) -> str:
        """The label used in messages and as the template's source (never the client's file name)."""
        return f"{self.source}-{self.capture_id[:8]}"

    @property
    def size(self) -> int:
        return len(self.data) + len(self.preview)

    def to_json(self, ttl_s: float, now: float) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "source": self.source,
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "check": self.check,
            "image_url": f"/api/v1/captures/{self.capture_id}/image",
            "expires_in_s": max(0, round(self.created + ttl_s - now)),
        }


def new_capture_id() -> str:
    return secrets.token_urlsafe(16)


class CaptureStore:
    """Bounded, expiring, per-owner store of captures. Thread-safe."""

    def __init__(
        self,
        *,
        ttl_s: float,
        max_items: int = 24,
        max_bytes: int = 96 * 1024 * 1024,
        per_owner: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.per_owner = per_owner
        self._clock = clock
        self._items: OrderedDict[str, Capture] = OrderedDict()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def add(self, capture: Capture) -> None:
        """Keep a capture; the oldest ones (the owner's first) make room."""
        with self._lock:
            self._expire()
            mine = [k for k, c in self._items.items() if c.owner == capture.owner]
            for key in mine[: max(0, len(mine) - self.per_owner + 1)]:
                del self._items[key]
            self._items[capture.capture_id] = capture
            while len(self._items) > self.max_items or self._bytes() > self.max_bytes:
                self._items.popitem(last=False)

    def get(self, capture_id: str, owner: str) -> Capture | None:
        with self._lock:
            self._expire()
            capture = self._items.get(capture_id)
            return capture if capture is not None and capture.owner == owner else None

    def discard(self, capture_id: str, owner: str) -> bool:
        with self._lock:
            capture = self._items.get(capture_id)
            if capture is None or capture.owner != owner:
                return False
            del self._items[capture_id]
            return True

    def list(self, owner: str) -> list[Capture]:
        with self._lock:
            self._expire()
            return [c for c in self._items.values() if c.owner == owner]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _bytes(self) -> int:
        return sum(c.size for c in self._items.values())

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for key in [k for k, c in self._items.items() if c.created < cutoff]:
            del self._items[key]
