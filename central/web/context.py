"""What the routes of one centre web app share, built once by the composition root."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.data_key import DataKey
from central.live import LiveBus
from central.web.auth import StaffAuth


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class WebContext:
    config: CentralConfig
    db: sessionmaker[Session]
    auth: StaffAuth
    data_key: DataKey
    live: LiveBus = field(default_factory=LiveBus)
    now: Callable[[], dt.datetime] = field(default=_utc_now)
    #: The phone pages' link to the roster and the doors (`central.phone.fleet.Fleet`); None: not
    #: running in this process (the phone routes that need it answer 503).
    fleet: Any = None

    @classmethod
    def build(
        cls, config: CentralConfig, db: sessionmaker[Session], data_key: DataKey, live: LiveBus | None = None
    ) -> WebContext:
        return cls(
            config=config, db=db, auth=StaffAuth(db, config.web), data_key=data_key, live=live or LiveBus()
        )
