"""What the routes of one centre web app share, built once by the composition root."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.data_key import DataKey
from central.ingest.downlink import DownLink
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.signing import MessageSigner
from central.web.auth import StaffAuth
from central.web.live_feed import LiveFeed
from central.web.snapshot_files import Thumbnails


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
    #: The phone pages' link to the roster and the doors (`central.phone.fleet.Fleet`); None: the
    #: real one (`CentreFleet`: central.roster and central.commands). Tests of the phone API alone
    #: pass a recording stand-in.
    fleet: Any = None
    metrics: CentreMetrics | None = None
    #: Signs what goes to stations (commands); `down` publishes it (None when [mqtt] is disabled).
    signer: MessageSigner | None = None
    down: DownLink | None = None
    thumbnails: Thumbnails = field(default_factory=Thumbnails)
    _feed: LiveFeed | None = field(default=None, init=False, repr=False)
    _feed_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def feed(self) -> LiveFeed:
        """The dashboard's live feed (built on first use; its thread starts with the first viewer)."""
        with self._feed_lock:
            if self._feed is None:
                self._feed = LiveFeed(self.live, self.db, poll_s=self.config.dashboard.live_poll_s)
            return self._feed

    def close(self) -> None:
        """Stop what the web app started (the live feed's thread)."""
        with self._feed_lock:
            feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()

    @classmethod
    def build(
        cls, config: CentralConfig, db: sessionmaker[Session], data_key: DataKey, live: LiveBus | None = None
    ) -> WebContext:
        return cls(
            config=config, db=db, auth=StaffAuth(db, config.web), data_key=data_key, live=live or LiveBus()
        )
