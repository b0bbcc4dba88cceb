"""The centre's MQTT side, built in one place for the composition root (`central.app`).

`MqttSide.build(...)` makes the objects (nothing connects yet): the process's down link, the
message signer, the roster service, `[mqtt] workers` ingest workers sharing one batch processor,
and the housekeeper. `workers()` lists them in start order (publisher first, so acks and roster
answers have a way out before the first message is stored); the app stops them in reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.data_key import DataKey
from central.ingest.batch import BatchProcessor
from central.ingest.directory import StationDirectory
from central.ingest.downlink import DownLink
from central.ingest.housekeeping import Housekeeper
from central.ingest.refusals import RefusalLog
from central.ingest.worker import IngestWorker
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.roster.fanout import RosterService
from central.signing import MessageSigner
from central.snapshot_files import SnapshotFiles


@dataclass
class MqttSide:
    down: DownLink
    signer: MessageSigner
    roster: RosterService
    housekeeper: Housekeeper
    ingest: list[IngestWorker] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        config: CentralConfig,
        db: sessionmaker[Session],
        data_key: DataKey,
        live: LiveBus,
        metrics: CentreMetrics,
        *,
        signer: MessageSigner | None = None,
        reads: sessionmaker[Session] | None = None,
    ) -> MqttSide:
        """`db`: the sessions that write; `reads`: sessions for reads only (central.store.database)."""
        reads = reads or db
        signer = signer or MessageSigner(reads, data_key)
        down = DownLink(config.mqtt, config.mqtt.effective_client_id(0).removesuffix("-0") + "-down")
        roster = RosterService(db=db, data_key=data_key, down=down, signer=signer, metrics=metrics)
        files = SnapshotFiles(config.storage.snapshots_dir)
        processor = BatchProcessor(
            db=db,
            directory=StationDirectory(reads),
            files=files,
            config=config,
            cipher=data_key.templates,
            refusals=RefusalLog(metrics),
        )
        workers = [
            IngestWorker(
                index=n,
                config=config,
                processor=processor,
                down=down,
                signer=signer,
                live=live,
                metrics=metrics,
                on_roster_request=roster.request,
                on_roster_written=roster.wake,
            )
            for n in range(1, config.mqtt.workers + 1)
        ]
        housekeeper = Housekeeper(db=db, config=config, files=files, live=live, metrics=metrics)
        return cls(down=down, signer=signer, roster=roster, housekeeper=housekeeper, ingest=workers)

    def workers(self) -> list[tuple[str, Any]]:
        return [
            ("down link", self.down),
            ("roster", self.roster),
            *((f"ingest {w.index}", w) for w in self.ingest),
            ("housekeeping", self.housekeeper),
        ]
