"""What the phone pages need from the rest of the centre: the roster and the doors. One module, so
the phone code has exactly one place where it reaches into `central.roster` and `central.commands`.

* `member_changed(db, member_id)`: a member became active, changed consents, ...: the roster
  (`central.web.roster_link`, seam 4) writes the versioned changes for every station concerned, in
  the caller's transaction; its fan-out worker delivers them (signed) after the commit.
* `withdraw_consent(db, member_id, actor, face=..., cross_station=...)`: a consent withdrawn
  (`central.roster.withdraw_consent` through `roster_link`): face consent: the member's
  templates are deleted at the centre and at every station that holds them; cross-station
  consent: they stay only where they were enrolled (recorded in `erasures` with reason
  `consent_withdrawn`); `face_erasure` reports how far that got.
* `send_open(...)`: a signed `open` command for one member at one station through
  `central.commands.send_command` (seam 3: recorded, audited, published signed after the commit).
  The answer is the station's `up/result`, which ingest stores on the command row and announces on
  the live bus (topic `result`, `ref` = the command id). `DoorAnswers.wait` listens for it.

`CentreFleet` is the real link (built from the web app's context); the tests of the phone API
alone pass a recording stand-in through `WebContext.fleet`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.commands import CommandError, Requester, StationNotFound, send_command
from central.live import RESULT, LiveBus
from central.store.tables import Command, Erasure
from central.web import roster_link
from common.asgi import ApiError

if TYPE_CHECKING:
    from central.web.context import WebContext


@dataclass(frozen=True, slots=True)
class DoorAnswer:
    """The station's answer to a command: `ok`, a stable `code` when not, its `message`, its `data`."""

    ok: bool
    code: str | None = None
    message: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErasureProgress:
    requested_at: dt.datetime
    completed_at: dt.datetime | None
    stations_pending: int
    templates_deleted: int


class Fleet(Protocol):
    def member_changed(self, db: Session, member_id: str) -> None: ...

    def withdraw_consent(
        self, db: Session, member_id: str, actor: str, *, face: bool, cross_station: bool
    ) -> None: ...

    def send_open(
        self,
        db: Session,
        *,
        station_id: str,
        member_id: str,
        by: str,
        reason: str,
        ttl_s: int,
        client: str | None = None,
    ) -> str: ...


class CentreFleet:
    """The phone pages' link to the centre's roster master and its signed commands.

    The signer and the publisher are read from the web context on every call: the composition root
    sets them after the web app is built, and a centre without `[mqtt]` has no publisher (the
    command is then recorded as failed with `mqtt_disabled`, and the page shows the pass)."""

    def __init__(self, web: WebContext) -> None:
        self._web = web

    def member_changed(self, db: Session, member_id: str) -> None:
        roster_link.member_changed(db, member_id)

    def withdraw_consent(
        self, db: Session, member_id: str, actor: str, *, face: bool, cross_station: bool
    ) -> None:
        roster_link.withdraw_consent(
            db, member_id, actor, face=face, cross_station=cross_station, client=None
        )

    def send_open(
        self,
        db: Session,
        *,
        station_id: str,
        member_id: str,
        by: str,
        reason: str,
        ttl_s: int,
        client: str | None = None,
    ) -> str:
        signer, link = self._web.signer, self._web.down
        if signer is None:
            link = None  # nothing can be signed: recorded as not sent, never sent unsigned
        try:
            return send_command(
                db,
                signer,  # type: ignore[arg-type]  # only used with a link, which needs the signer
                link,
                station_id=station_id,
                name="open",
                args={"member_id": member_id},
                staff=Requester(by),
                reason=reason,
                ttl_s=ttl_s,
                client=client,
            )
        except StationNotFound as exc:
            raise ApiError(404, str(exc), "not_found") from None
        except CommandError as exc:
            raise ApiError(422, str(exc), "invalid_value") from None


def face_erasure(db: Session, member_id: str) -> ErasureProgress | None:
    """The member's latest face-data erasure (consent withdrawn), or None."""
    row = db.scalars(
        select(Erasure)
        .where(Erasure.member_id == member_id, Erasure.reason == "consent_withdrawn")
        .order_by(Erasure.requested_at.desc(), Erasure.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return ErasureProgress(
        row.requested_at, row.completed_at, len(row.stations_pending), row.templates_deleted
    )


class DoorAnswers:
    """Waits for a station's answer to one command: the live bus first, the command row as truth.

    Subscribing before reading the table closes the race with an answer stored in between; a web
    process that does not ingest (so sees nothing on its own bus) still finds the row by polling.
    """

    POLL_S = 0.25

    def __init__(self, db: sessionmaker[Session], live: LiveBus) -> None:
        self._db = db
        self._live = live

    def wait(self, station_id: str, command_id: str, timeout_s: float) -> DoorAnswer | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._live.subscribed({RESULT}, maxlen=256) as subscription:
            while True:
                stored = self.stored(station_id, command_id)
                if stored is not None:
                    return stored
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                message = subscription.get(timeout=min(self.POLL_S, remaining))
                if message is not None and message.data.get("ref") == command_id:
                    return _answer(message.data)

    def stored(self, station_id: str, command_id: str) -> DoorAnswer | None:
        """The command's outcome as recorded: the station's answer (`ok` / `failed` with its code),
        or the centre's own failure to send it (`station_offline`, `broker_unreachable`, ...)."""
        with self._db() as session:
            row = session.get(Command, command_id)
            if row is None or row.station_id != station_id or row.state not in ("ok", "failed"):
                return None
            return DoorAnswer(row.state == "ok", row.error, row.message, dict(row.result or {}))


def _answer(data: Mapping[str, Any]) -> DoorAnswer:
    raw = data.get("data")
    return DoorAnswer(
        ok=bool(data.get("ok")),
        code=data.get("code") or data.get("error"),
        message=data.get("message"),
        data=raw if isinstance(raw, Mapping) else {},
    )
