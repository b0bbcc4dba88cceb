"""The centre's Prometheus metrics, on a registry of its own (`GET /api/v1/metrics`, staff only).

One `CentreMetrics` per process, built by the composition root and handed to the parts that count
(ingest, roster fan-out, commands). A registry of our own, not prometheus-client's global one, so
tests and a second app in one process never collide. Label values are bounded sets (message kinds,
refusal reasons from `central.ingest.messages`, command names): never station or member ids, which
would grow the series without bound; per-station detail goes to the log line instead.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class CentreMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingest_messages = Counter(
            "yizhan_centre_ingest_messages",
            "Messages taken from the broker by kind and outcome (stored, duplicate, refused, retried).",
            ["kind", "outcome"],
            registry=r,
        )
        self.ingest_refused = Counter(
            "yizhan_centre_ingest_refused",
            "Messages refused (never stored, never acknowledged to the station), by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.ingest_batch_seconds = Histogram(
            "yizhan_centre_ingest_batch_seconds",
            "Time to store one batch (parse, write, commit).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.ingest_batch_size = Histogram(
            "yizhan_centre_ingest_batch_messages",
            "Messages per stored batch.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.ingest_batch_failures = Counter(
            "yizhan_centre_ingest_batch_failures",
            "Batches whose transaction failed (retried; a database outage shows here).",
            registry=r,
        )
        self.ingest_parked = Gauge(
            "yizhan_centre_ingest_parked_snapshots",
            "Snapshots waiting for their event (parked briefly before they are refused).",
            registry=r,
        )
        self.acks_sent = Counter(
            "yizhan_centre_acks_sent", "down/ack messages published (after the commit).", registry=r
        )
        self.down_messages = Counter(
            "yizhan_centre_down_messages",
            "Messages published to stations, by type (roster_change, roster_snapshot, roster_status, ...).",
            ["type"],
            registry=r,
        )
        self.commands = Counter(
            "yizhan_centre_commands", "Commands by name and final state.", ["name", "state"], registry=r
        )
        self.snapshots_deleted = Counter(
            "yizhan_centre_snapshots_deleted",
            "Snapshot files deleted, by why (retention, budget, free_space, erasure).",
            ["why"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
