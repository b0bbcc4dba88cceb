"""Prometheus metrics for `/metrics`, on a registry of their own.

Two sources, neither of which can slow the door:
- the recorder's listener (`on_event`, called after each commit, on the recording thread): counters
  and the per-stage latency histogram are updated from the event JSON, a few microseconds;
- a collector read at scrape time: outbox depth, camera fps and state, decide-loop counters, MQTT
  connection, roster size. Nothing is polled between scrapes.

Frame-to-relay latencies are kept by the decide loop (`loop.stats.latencies_ms`, appended after the
relay moved, because the event is committed before the latency is known); each scrape moves the
new ones into the histogram.

A registry of our own (not prometheus-client's global one) keeps tests and a second app instance
from colliding, and leaves out the default process collectors nobody asked for.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.api.services import StationServices, sync_status
from models import events as event_store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DECISION_KINDS = frozenset({"entry", "exit", "refused"})
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,48}")
_MAX_STAGES = 32  # label values from event details are bounded: a bug cannot explode cardinality


def _label(value: object, default: str = "none") -> str:
    if value is None or value == "":
        return default
    text = str(value)
    return text if _LABEL.fullmatch(text) else "other"


class StationMetrics:
    """The station's metrics; `on_event` is the recorder listener, `render` the scrape."""

    def __init__(self, services: StationServices) -> None:
        self.services = services
        # The `_created` companion series only double the scrape for a box that restarts rarely.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "yizhan_decisions",
            "Access decisions recorded (entry, exit, refused), by method and reason.",
            ["kind", "method", "reason"],
            registry=self.registry,
        )
        self.events = Counter(
            "yizhan_events", "Every event recorded, by kind.", ["kind"], registry=self.registry
        )
        self.stage_seconds = Histogram(
            "yizhan_stage_latency_seconds",
            "Time per recognition stage (detect, landmarks, quality, encode, match, QR decode/verify) "
            "and frame_to_relay (camera read to relay energised), by method.",
            ["method", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "yizhan_api_request_duration_seconds",
            "Local API request time by route template (the live preview stream is excluded).",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._stages: set[str] = set()
        self._latency_seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self.registry.register(_StationCollector(services))

    # -- feeding -------------------------------------------------------------------------------

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Recorder listener: count the event and observe its stage timings. Never raises."""
        try:
            kind = _label(event.get("kind"))
            self.events.labels(kind).inc()
            method = _label(event.get("method"))
            if kind in DECISION_KINDS:
                self.decisions.labels(kind, method, _label(event.get("reason"))).inc()
            details = event.get("details")
            timings = details.get("timings_ms") if isinstance(details, Mapping) else None
            if isinstance(timings, Mapping):
                for stage, ms in timings.items():
                    if isinstance(ms, int | float) and not isinstance(ms, bool) and 0 <= ms < 1e7:
                        name = self._stage(stage)
                        if name is not None:
                            self.stage_seconds.labels(method, name).observe(float(ms) / 1000.0)
        except Exception:
            log.exception("metrics listener failed", extra={"fields": {"event_id": event.get("id")}})

    def _stage(self, stage: object) -> str | None:
        name = _label(stage)
        with self._lock:
            if name in self._stages:
                return name
            if len(self._stages) >= _MAX_STAGES:
                return None
            self._stages.add(name)
        return name

    def observe_request(self, route: str, method: str, seconds: float) -> None:
        self.request_seconds.labels(route, method).observe(seconds)

    def _drain_loop_latencies(self) -> None:
        loop = self.services.loop
        if loop is None:
            return
        with self._lock:
            for method, values in list(loop.stats.latencies_ms.items()):
                seen = self._latency_seen.get(method, 0)
                fresh = values[seen:]
                self._latency_seen[method] = seen + len(fresh)
                for ms in fresh:
                    self.stage_seconds.labels(_label(method), "frame_to_relay").observe(ms / 1000.0)

    # -- scraping ------------------------------------------------------------------------------

    def render(self) -> bytes:
        self._drain_loop_latencies()
        return generate_latest(self.registry)


class _StationCollector(Collector):
    """Values read from the daemon at scrape time (cheap: attribute reads and one COUNT query)."""

    def __init__(self, services: StationServices) -> None:
        self.services = services

    def describe(self) -> list[Metric]:
        return []  # values appear only when the part exists; describing them up front would lie

    def collect(self) -> Iterator[Metric]:
        services = self.services
        yield from self._camera(services)
        yield from self._loop(services)
        yield from self._store(services)
        sync = sync_status(services)
        yield GaugeMetricFamily(
            "yizhan_mqtt_enabled", "MQTT sync is running.", value=float(bool(sync["enabled"]))
        )
        yield GaugeMetricFamily(
            "yizhan_mqtt_connected",
            "Connected to the centre's broker (1) or not (0).",
            value=float(bool(sync["connected"])),
        )

    @staticmethod
    def _camera(services: StationServices) -> Iterator[Metric]:
        camera = services.camera
        if camera is None:
            return
        status = camera.status
        yield GaugeMetricFamily("yizhan_camera_fps", "Frames read per second (measured).", value=status.fps)
        yield GaugeMetricFamily(
            "yizhan_camera_up", "Camera delivering frames (1) or not.", value=float(status.state == "up")
        )
        yield CounterMetricFamily(
            "yizhan_camera_frames_read", "Frames read from the camera.", value=status.frames_read
        )
        yield CounterMetricFamily(
            "yizhan_camera_frames_dropped",
            "Frames replaced before the decide loop took them (the loop is slower than the camera).",
            value=status.frames_dropped,
        )
        yield CounterMetricFamily(
            "yizhan_camera_reconnects", "Camera reconnections.", value=status.reconnects
        )

    @staticmethod
    def _loop(services: StationServices) -> Iterator[Metric]:
        loop = services.loop
        if loop is None:
            return
        stats = loop.stats
        for name, value, text in (
            ("frames", stats.frames, "Frames the decide loop processed."),
            ("detections", stats.detections, "Face detections run."),
            ("encodings", stats.encodings, "Face encodings computed."),
            ("qr_checks", stats.qr_checks, "QR payloads checked."),
            (
                "record_failures",
                stats.record_failures,
                "Decisions that could not be recorded (door kept shut).",
            ),
        ):
            yield CounterMetricFamily(f"yizhan_loop_{name}", text, value=value)
        yield GaugeMetricFamily(
            "yizhan_loop_heartbeat_age_seconds",
            "Seconds since the decide loop last went round (it should stay under 1).",
            value=max(0.0, time.monotonic() - loop.heartbeat),
        )

    @staticmethod
    def _store(services: StationServices) -> Iterator[Metric]:
        station = services.station
        if station is None:
            return
        try:
            with station.sessions() as session:
                depth = event_store.outbox_depth(session)
        except Exception:
            log.warning("outbox depth not read", exc_info=True)
        else:
            yield GaugeMetricFamily(
                "yizhan_outbox_depth", "Events not yet delivered to the centre.", value=depth
            )
        roster = station.roster.current
        yield GaugeMetricFamily(
            "yizhan_roster_members", "Members in the door's roster.", value=len(roster.members)
        )
        yield GaugeMetricFamily(
            "yizhan_roster_templates", "Face templates in the door's roster.", value=len(roster.owners)
        )
        writer = services.snapshots
        if writer is not None:
            yield CounterMetricFamily(
                "yizhan_snapshots_dropped", "Snapshots dropped (disk too slow).", value=writer.dropped
            )
            yield GaugeMetricFamily(
                "yizhan_snapshot_bytes", "Bytes of snapshots on disk.", value=writer.store.usage_bytes()
            )
