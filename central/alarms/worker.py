"""The alarms part of the centre: the engine and the notifier, built and stopped together.

`CentralApp.workers()` adds one `AlarmWorker`. The notifier starts first and stops last, so an
alarm the engine raises while the process stops is still in the queue for the next start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from central.alarms.engine import AlarmEngine
from central.alarms.notifier import Notifier
from central.alarms.targets import load_targets
from central.config import CentralConfig
from central.live import LiveBus
from common.db_types import utc_now


@dataclass
class AlarmWorker:
    engine: AlarmEngine
    notifier: Notifier

    @classmethod
    def build(
        cls,
        config: CentralConfig,
        db: sessionmaker[Session],
        live: LiveBus,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> AlarmWorker:
        notifier = Notifier(
            db, config.alarms, load_targets(config.alarms), dashboard_url=config.web.public_url, clock=clock
        )
        engine = AlarmEngine(db, live, config.alarms, clock=clock, on_change=notifier.kick)
        return cls(engine, notifier)

    def start(self) -> None:
        self.notifier.start()
        try:
            self.engine.start()
        except BaseException:
            self.notifier.stop()
            raise

    def stop(self) -> None:
        self.engine.stop()
        self.notifier.stop()
