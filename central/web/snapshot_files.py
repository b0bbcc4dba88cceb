"""Small thumbnails of snapshot files for the dashboard.

Ingest writes the JPEGs (central.snapshot_files); the route resolves a row's path there. Thumbnails
(the live list shows dozens of entries; a full frame is 100-300 KB) are made with Pillow once
and kept in a small in-memory LRU cache.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

THUMB_EDGE = 320
THUMB_CACHE = 512
MAX_PIXELS = 40_000_000  # a snapshot is a camera frame: anything bigger is not one


class Thumbnails:
    """JPEG thumbnails by (event id, file size, mtime), least recently used dropped first."""

    def __init__(self, size: int = THUMB_CACHE) -> None:
        self._cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, event_id: str, path: Path) -> bytes:
        """The thumbnail of `path`; ValueError when the file is not a usable image."""
        stat = path.stat()
        key = (event_id, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = make_thumbnail(path.read_bytes())
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return data


def make_thumbnail(jpeg: bytes, edge: int = THUMB_EDGE) -> bytes:
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError("image too large")
            image.draft("RGB", (edge, edge))  # JPEG: decode at a reduced scale, much cheaper
            small = image.convert("RGB")
            small.thumbnail((edge, edge))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a usable image: {exc}") from None
