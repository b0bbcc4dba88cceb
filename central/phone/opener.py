"""Opening a door from a phone: gather the facts, decide (`open_rules`), send, and hear the door.

One tap = one `request_id` chosen by the page. `request` decides and, when allowed, sends the
station a signed `open` command for the member (through `Fleet.send_open`, i.e.
`central.commands.send_command`, short expiry) and records a `phone_opens` row, all in the
request's transaction. `answer` then waits (outside any
transaction) for the station's `up/result`: `ok` is "门已开", anything else is the door's own
reason. No answer within `[phone] answer_timeout_s` of the tap is `no_answer`: the page says so
and shows the pass, which the station checks offline. A late answer still updates the row.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.config import PhoneConfig
from central.phone.fleet import DoorAnswer, DoorAnswers, Fleet
from central.phone.geo import Point
from central.phone.open_rules import RATE_LIMITED, STATION_OFFLINE, OpenFacts, decide_open
from central.store import phone as phone_store
from central.store import stations as station_store
from central.store.tables import Member, PhoneOpen, Station
from common.asgi import ApiError
from contract.schedule import OpeningHours

log = logging.getLogger(__name__)

WINDOW = dt.timedelta(minutes=10)
#: Command failures recorded by the centre itself (the station never saw the command) and what the
#: page is told: the station is offline, or the door could not be asked; both show the pass.
NOT_SENT = {"station_offline": "offline", "broker_unreachable": "no_answer", "mqtt_disabled": "no_answer"}
PURGE_EVERY = 200


@dataclass(frozen=True, slots=True)
class OpenState:
    """What the page shows: `state` is sent / opened / refused / no_answer / offline / denied."""

    request_id: str
    station_id: str
    state: str
    reason: str | None
    message: str | None
    command_id: str | None
    at: dt.datetime
    distance_m: float | None = None
    retry_after_s: float | None = None

    @classmethod
    def of(cls, row: PhoneOpen, retry_after_s: float | None = None) -> OpenState:
        return cls(
            row.request_id,
            row.station_id,
            row.outcome,
            row.reason,
            row.message,
            row.command_id,
            row.at,
            row.distance_m,
            retry_after_s,
        )


def _opens_at(station: Station, now: dt.datetime) -> dt.datetime | None:
    hours: OpeningHours = station_store.parse_schedule(station.schedule).opening_hours()
    return hours.next_change(now)


class Opener:
    def __init__(
        self,
        config: PhoneConfig,
        *,
        fleet: Fleet,
        answers: DoorAnswers,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.answers = answers
        self.clock = clock
        self._requests = 0

    def request(
        self,
        session: Session,
        *,
        member: Member,
        station: Station,
        request_id: str,
        client: str,
        phone_point: Point | None,
    ) -> OpenState:
        now = self.clock()
        self._requests += 1
        if self._requests % PURGE_EVERY == 1:
            phone_store.purge_opens(session, before=now - dt.timedelta(days=self.config.keep_opens_days))
        if phone_store.find_open(session, member_id=member.member_id, request_id=request_id) is not None:
            raise ApiError(409, "this request was made already (replayed): tap the button again", "replayed")
        last = phone_store.last_sent_open(session, member_id=member.member_id, station_id=station.station_id)
        open_now = station_store.is_open(station, now)
        station_point = (
            Point(station.latitude, station.longitude)
            if station.latitude is not None and station.longitude is not None
            else None
        )
        verdict = decide_open(
            OpenFacts(
                now=now,
                member_status=member.status,
                member_valid_from=member.valid_from,
                member_valid_until=member.valid_until,
                member_groups=list(member.groups),
                station_active=station.active,
                station_groups=list(station.allowed_groups),
                station_open_now=open_now,
                station_opens_at=None if open_now else _opens_at(station, now),
                station_state=station.last_state,
                station_point=station_point,
                require_location_m=station.require_location_m,
                phone_point=phone_point,
                seconds_since_last_open=(now - last.at).total_seconds() if last is not None else None,
                cooldown_s=float(self.config.open_cooldown_s),
                member_opens_10min=phone_store.opens_since(
                    session, since=now - WINDOW, member_id=member.member_id
                ),
                member_limit_10min=self.config.opens_per_member_per_10min,
                address_opens_10min=phone_store.opens_since(session, since=now - WINDOW, client=client),
                address_limit_10min=self.config.opens_per_address_per_10min,
            )
        )
        if not verdict.allowed and verdict.reason == RATE_LIMITED:
            wait = verdict.retry_after_s or 600.0
            raise ApiError(
                429,
                verdict.detail,
                "rate_limited",
                headers={"Retry-After": str(int(wait))},
                retry_after_s=wait,
            )
        values = {
            "member_id": member.member_id,
            "station_id": station.station_id,
            "request_id": request_id,
            "client": client[:64],
            "at": now,
            "distance_m": verdict.distance_m,
        }
        if not verdict.allowed:
            outcome = "offline" if verdict.reason == STATION_OFFLINE else "denied"
            row = self._record(
                session, **values, outcome=outcome, reason=verdict.reason, message=verdict.detail
            )
            return OpenState.of(row, verdict.retry_after_s)
        # The request id is claimed first (its SAVEPOINT is released before any command exists: a
        # command is published after the commit, and a SAVEPOINT release counts as one).
        row = self._record(session, **values, outcome="sent")
        # The command (central.commands.send_command) is recorded and audited as `remote_open` by
        # `phone:<member>` with this client address, in this transaction.
        row.command_id = self.fleet.send_open(
            session,
            station_id=station.station_id,
            member_id=member.member_id,
            by=f"phone:{member.member_id}",
            reason="opened from the member's phone",
            ttl_s=self.config.open_command_ttl_s,
            client=client,
        )
        command_id = row.command_id
        log.info(
            "phone open sent",
            extra={
                "fields": {
                    "event": "phone_open",
                    "member_id": member.member_id,
                    "station_id": station.station_id,
                    "command_id": command_id,
                }
            },
        )
        return OpenState.of(row)

    def _record(self, session: Session, **values: object) -> PhoneOpen:
        try:
            with session.begin_nested():
                return phone_store.record_open(session, **values)
        except IntegrityError:  # the same request_id raced in twice
            raise ApiError(409, "this request was made already (replayed)", "replayed") from None

    def answer(
        self,
        db: sessionmaker[Session],
        reads: sessionmaker[Session],
        *,
        member_id: str,
        request_id: str,
        wait_s: float,
    ) -> OpenState:
        """The state of one of this member's requests, waiting up to `wait_s` for the door.
        `reads` are read-only sessions (the wait holds none); `db` writes the outcome once known."""
        with reads() as session:
            row = phone_store.find_open(session, member_id=member_id, request_id=request_id)
            if row is None:
                raise ApiError(404, "no such request of yours", "not_found")
            state = OpenState.of(row)
        if state.command_id is None or state.state not in ("sent", "no_answer"):
            return state
        deadline_s = self.config.answer_timeout_s - (self.clock() - state.at).total_seconds()
        answer = self.answers.wait(state.station_id, state.command_id, max(0.0, min(wait_s, deadline_s)))
        if answer is None and deadline_s > wait_s:
            return state  # still within the time the door has: the page asks again
        return self._settle(db, member_id, request_id, answer)

    def _settle(
        self, db: sessionmaker[Session], member_id: str, request_id: str, answer: DoorAnswer | None
    ) -> OpenState:
        with db.begin() as session:
            row = phone_store.find_open(session, member_id=member_id, request_id=request_id)
            if row is None:  # erased meanwhile
                raise ApiError(404, "no such request of yours", "not_found")
            if answer is None:
                if row.outcome == "sent":
                    row.outcome = "no_answer"
            elif not answer.ok and answer.code in NOT_SENT:
                # The centre never reached the door (central.commands): the page shows the pass.
                row.outcome = NOT_SENT[answer.code]
                row.reason, row.message = answer.code, (answer.message or "")[:500] or None
            else:
                row.outcome = "opened" if answer.ok else "refused"
                row.reason = None if answer.ok else (answer.code or "refused")[:64]
                row.message = None if answer.ok else (answer.message or "")[:500] or None
                row.answered_at = self.clock()
            return OpenState.of(row)
