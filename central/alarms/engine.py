"""The alarm engine: the live bus and a database sweep in, alarm rows (and their fan-outs) out.

One thread. It waits on a live-bus subscription (topics `event` and `status`: ingest publishes
them right after its commit), so an alarm is raised within a second of its event reaching the
centre; and every `[alarms] sweep_interval_s` it sweeps the database, because the bus is only a
hint (docs/CENTRAL.md, "the live bus"):

* events of alarm kinds received since the last sweep (with an overlap for transactions that
  committed late) that no `alarm_events` row marks as handled: an event committed just before a
  crash, or dropped by a full subscription queue, still raises its alarm;
* refusals per station over the last ten minutes (the bus path counts them in memory, which a
  restart forgets);
* every station's row: overdue heartbeats (station offline), and the health of its last status.

Each event is handled in one transaction with its `alarm_events` row, so the bus path and the
sweep (or two centre processes) never raise one twice. After the commit the engine publishes
`alarm` on the live bus and wakes the notifier; it never waits on a webhook. A failure of one
message is logged and the next one handled: the sweep retries whatever was not committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from central import live as live_topics
from central.alarms import rules
from central.alarms.rules import Action, Clear, EventFacts, Raise, RuleSettings, StationFacts
from central.config import AlarmsConfig
from central.live import LiveBus, LiveMessage, Subscription
from central.store import alarms as store
from central.store.tables import AlarmEvent, Event, Station
from common.db_types import utc_now

log = logging.getLogger(__name__)

#: Late commits: a transaction may commit a while after its rows' `received_at` was set.
SWEEP_OVERLAP_S = 120.0
#: The sweep reads at most this many events per query (and loops while it gets full pages).
SWEEP_PAGE = 500
PRUNE_EVERY_S = 3600.0


def rule_settings(config: AlarmsConfig) -> RuleSettings:
    return RuleSettings(
        offline_after_s=float(config.offline_after_s),
        clock_skew_max_s=float(config.clock_skew_max_s),
        refusals_threshold=config.refusals_per_10min,
        refusals_window_s=600.0,
    )


@dataclass
class EngineStats:
    events_seen: int = 0
    statuses_seen: int = 0
    alarms_raised: int = 0
    changes: int = 0
    sweeps: int = 0
    swept_events: int = 0
    errors: int = 0
    bus_dropped: int = 0
    last_sweep_at: dt.datetime | None = None
    by_change: dict[str, int] = field(default_factory=dict)


class AlarmEngine:
    """Start once, stop once. `sweep()` and `handle()` are public for tests and the CLI."""

    def __init__(
        self,
        db: sessionmaker[Session],
        live: LiveBus,
        config: AlarmsConfig,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        on_change: Callable[[], None] | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self.db = db
        self.live = live
        self.config = config
        self.settings = rule_settings(config)
        self.clock = clock
        self.on_change = on_change
        self.stats = EngineStats()
        self.refusals = rules.RefusalWindow(self.settings)
        self.clock_judge = rules.ClockJudge(self.settings)
        self._queue_size = queue_size
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sweep_now = threading.Event()
        self._watermark: dt.datetime | None = None
        self._started_at: dt.datetime | None = None
        self._last_prune = 0.0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        # Subscribe before the first sweep: whatever is committed from now on is either on the bus
        # or found by the sweep (usually both; handling is idempotent).
        self._subscription = self.live.subscribe({live_topics.EVENT, live_topics.STATUS}, self._queue_size)
        self._started_at = self.clock()
        self._watermark = self._started_at - dt.timedelta(seconds=self.config.sweep_lookback_s)
        self._thread = threading.Thread(target=self._run, name="alarm-engine", daemon=True)
        self._thread.start()
        log.info("alarm engine started", extra={"fields": {"event": "alarm_engine_started"}})

    def stop(self) -> None:
        self._stop.set()
        if self._subscription is not None:
            self._subscription.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def request_sweep(self) -> None:
        self._sweep_now.set()

    def _run(self) -> None:
        assert self._subscription is not None
        subscription = self._subscription
        next_sweep = time.monotonic()
        dropped = 0
        while not self._stop.is_set():
            now_mono = time.monotonic()
            if now_mono >= next_sweep or self._sweep_now.is_set():
                self._sweep_now.clear()
                self._guarded(self.sweep)
                next_sweep = time.monotonic() + self.config.sweep_interval_s
                continue
            message = subscription.get(timeout=min(1.0, max(0.0, next_sweep - now_mono)))
            if message is not None:
                self._guarded(functools.partial(self.handle, message))
            if subscription.dropped != dropped:
                # The queue overflowed (a burst): what fell off is in the database; sweep now.
                self.stats.bus_dropped = dropped = subscription.dropped
                self._sweep_now.set()

    def _guarded(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            self.stats.errors += 1
            log.exception("alarm engine: a step failed (the next sweep retries it)")

    # -- the live bus -----------------------------------------------------------------------------

    def handle(self, message: LiveMessage) -> None:
        if message.topic == live_topics.EVENT:
            self.stats.events_seen += 1
            facts = EventFacts.from_mapping(message.data)
            if facts is not None:
                self.handle_event(facts)
        elif message.topic == live_topics.STATUS:
            self.stats.statuses_seen += 1
            station_id = message.station_id or message.data.get("station_id")
            if isinstance(station_id, str):
                self.check_stations([station_id])

    def handle_event(self, facts: EventFacts, *, from_sweep: bool = False) -> None:
        actions: list[Action] = list(rules.from_event(facts))
        if not from_sweep and rules.counts_as_refusal(facts) and facts.ts is not None:
            refusal = self.refusals.add(facts.station_id, facts.ts)
            if refusal is not None:
                actions.append(refusal)
        if not actions:
            return
        now = self.clock()
        changes: list[store.AlarmChange] = []
        with self.db.begin() as session:
            if facts.kind in rules.EVENT_KINDS and not store.mark_event_handled(
                session, station_id=facts.station_id, event_id=facts.id, now=now
            ):
                return  # handled already (bus, then sweep; or another process)
            district = _district(session, facts.station_id)
            for action in actions:
                changes.extend(self._apply(session, action, now, district))
            linked = next((c.alarm_id for c in changes if c.change != "cleared"), None)
            if linked is None and changes:
                linked = changes[0].alarm_id
            if linked is not None and facts.kind in rules.EVENT_KINDS:
                store.link_event(session, station_id=facts.station_id, event_id=facts.id, alarm_id=linked)
        self._published(changes)

    # -- station status ---------------------------------------------------------------------------

    def check_stations(self, station_ids: Sequence[str] | None = None) -> None:
        """Evaluate stations' latest status (all active stations when `station_ids` is None)."""
        now = self.clock()
        changes: list[store.AlarmChange] = []
        with self.db.begin() as session:
            # Columns, not ORM objects: a sweep reads every station's row every few seconds.
            query = select(
                Station.station_id,
                Station.active,
                Station.last_state,
                Station.last_seen_at,
                Station.last_status_at,
                Station.last_health,
                Station.district_id,
            )
            if station_ids is not None:
                query = query.where(Station.station_id.in_(list(station_ids)))
            rows = session.execute(query).all()
            facts = [StationFacts(*row[:6]) for row in rows]
            active = store.active_keys(
                session, station_ids=None if station_ids is None else [f.station_id for f in facts]
            )
            judge_silence = self._silence_judgeable(now)
            silent_fleet = False
            if station_ids is None:
                fleet = rules.fleet_silent(facts, now, self.settings) if judge_silence else None
                silent_fleet = fleet is not None
                fleet_action: Action = fleet or Clear(
                    rules.FLEET_SILENT, None, {"reason": "stations heard again"}
                )
                changes.extend(self._apply_filtered(session, fleet_action, now, None, active))
            districts = {row[0]: row[6] for row in rows}
            for station in facts:
                for action in rules.station_actions(station, now, self.settings, self.clock_judge):
                    missed = (
                        isinstance(action, Raise)
                        and action.kind == rules.STATION_OFFLINE
                        and (action.details.get("reason") == "missed_heartbeats")
                    )
                    if missed and (silent_fleet or not judge_silence):
                        continue
                    changes.extend(
                        self._apply_filtered(session, action, now, districts.get(station.station_id), active)
                    )
        self._published(changes)

    def _silence_judgeable(self, now: dt.datetime) -> bool:
        """Missed heartbeats mean something only once the centre itself has been listening for
        `offline_after_s` (after a restart every station's last heartbeat looks old)."""
        started = self._started_at or now
        return (now - started).total_seconds() >= self.config.offline_after_s

    # -- the sweep --------------------------------------------------------------------------------

    def sweep(self) -> None:
        started = self.clock()
        watermark = self._watermark or started - dt.timedelta(seconds=self.config.sweep_lookback_s)
        since = watermark - dt.timedelta(seconds=SWEEP_OVERLAP_S)
        self._sweep_events(since)
        self._sweep_refusals(since)
        self.check_stations(None)
        self._watermark = started
        self.stats.sweeps += 1
        self.stats.last_sweep_at = started
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            with self.db.begin() as session:
                keep = dt.timedelta(seconds=self.config.sweep_lookback_s + 2 * SWEEP_OVERLAP_S)
                store.prune_handled_events(session, before=started - keep)

    def _sweep_events(self, since: dt.datetime) -> None:
        after: tuple[dt.datetime, str] | None = None
        while True:
            with self.db.begin() as session:
                query = (
                    select(Event)
                    .outerjoin(
                        AlarmEvent,
                        and_(AlarmEvent.station_id == Event.station_id, AlarmEvent.event_id == Event.id),
                    )
                    .where(
                        Event.received_at >= since,
                        Event.kind.in_(sorted(rules.EVENT_KINDS)),
                        AlarmEvent.event_id.is_(None),
                    )
                    .order_by(Event.received_at, Event.id)
                    .limit(SWEEP_PAGE)
                )
                if after is not None:
                    query = query.where(
                        (Event.received_at > after[0])
                        | and_(Event.received_at == after[0], Event.id > after[1])
                    )
                rows = session.scalars(query).all()
                found = [_event_facts(e) for e in rows]
                after = (rows[-1].received_at, rows[-1].id) if rows else after
            # Oldest first per station, so a camera_down and its camera_up land in order.
            for facts in sorted(
                found, key=lambda f: (f.station_id, f.ts or dt.datetime.min.replace(tzinfo=dt.UTC))
            ):
                self.stats.swept_events += 1
                self._guarded(functools.partial(self.handle_event, facts, from_sweep=True))
            if len(found) < SWEEP_PAGE:
                return

    def _sweep_refusals(self, since: dt.datetime) -> None:
        refused = and_(
            Event.kind == rules.EV_REFUSED,
            Event.reason.is_(None) | Event.reason.not_in(sorted(rules.NOT_COUNTED_REFUSALS)),
        )
        with self.db.begin() as session:
            recent = session.execute(
                select(Event.station_id, func.max(Event.ts))
                .where(Event.received_at >= since, refused)
                .group_by(Event.station_id)
            ).all()
            counts: list[tuple[str, int, dt.datetime]] = []
            window = dt.timedelta(seconds=self.settings.refusals_window_s)
            for station_id, latest in recent:
                if latest is None:
                    continue
                count = session.scalar(
                    select(func.count())
                    .select_from(Event)
                    .where(
                        Event.station_id == station_id,
                        Event.ts > latest - window,
                        Event.ts <= latest,
                        refused,
                    )
                )
                counts.append((station_id, int(count or 0), latest))
        for station_id, count, latest in counts:
            spec = rules.refusals_alarm(station_id, count, latest, self.settings)
            if spec is None:
                continue
            level = Raise(
                spec.kind,
                spec.station_id,
                spec.severity,
                spec.details,
                occurred_at=spec.occurred_at,
                transition=False,
                quiet_s=spec.quiet_s,
            )
            self._apply_actions([level], district_of=station_id)

    def _apply_actions(self, actions: Iterable[Action], *, district_of: str | None) -> None:
        now = self.clock()
        changes: list[store.AlarmChange] = []
        with self.db.begin() as session:
            district = None if district_of is None else _district(session, district_of)
            for action in actions:
                changes.extend(self._apply(session, action, now, district))
        self._published(changes)

    # -- applying ---------------------------------------------------------------------------------

    def _apply_filtered(
        self,
        session: Session,
        action: Action,
        now: dt.datetime,
        district: str | None,
        active: dict[str, store.Active],
    ) -> list[store.AlarmChange]:
        """Skip what cannot change anything: a level `Raise` already in force (unless its severity
        rises, as a disk going from "warn" to "fail"), a `Clear` of nothing."""
        known = active.get(action.dedup_key)
        if isinstance(action, Clear):
            if known is None or known.cleared:
                return []
        elif not action.transition and known is not None and not known.cleared:
            if rules.SEVERITY_RANK[action.severity] <= rules.SEVERITY_RANK.get(known.severity, 0):
                return []
        return self._apply(session, action, now, district)

    def _apply(
        self, session: Session, action: Action, now: dt.datetime, district: str | None
    ) -> list[store.AlarmChange]:
        if isinstance(action, Raise):
            change = store.raise_alarm(session, action, now=now, district_id=district)
            found = [] if change is None else [change]
        else:
            found = store.clear_alarm(session, action, now=now)
        for change in found:
            purpose = change.notify
            if purpose == "cleared" and (not self.config.notify_cleared or change.data["state"] != "open"):
                purpose = None
            if purpose is not None:
                store.queue_fanout(session, alarm_id=change.alarm_id, purpose=purpose, now=now)
        return found

    def _published(self, changes: Sequence[store.AlarmChange]) -> None:
        """After the commit: tell the live bus and wake the notifier."""
        if not changes:
            return
        for change in changes:
            self.stats.changes += 1
            self.stats.by_change[change.change] = self.stats.by_change.get(change.change, 0) + 1
            if change.change == "raised":
                self.stats.alarms_raised += 1
            self.live.publish(
                live_topics.ALARM, change.data, station_id=change.station_id, district=change.district_id
            )
            log.info(
                "alarm %s",
                change.change,
                extra={
                    "fields": {
                        "event": "alarm_" + change.change,
                        "alarm_id": change.alarm_id,
                        "kind": change.data.get("kind"),
                        "severity": change.data.get("severity"),
                        "station_id": change.station_id,
                    }
                },
            )
        if self.on_change is not None and any(c.notify for c in changes):
            self.on_change()


def _district(session: Session, station_id: str) -> str | None:
    return session.scalar(select(Station.district_id).where(Station.station_id == station_id))


def _event_facts(event: Event) -> EventFacts:
    details: Any = event.details
    return EventFacts(
        id=event.id,
        station_id=event.station_id,
        kind=event.kind,
        ts=event.ts,
        method=event.method,
        member_id=event.member_id,
        reason=event.reason,
        details=details if isinstance(details, dict) else {},
    )
