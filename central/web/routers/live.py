"""`GET /api/v1/live`: the dashboard's live feed as server-sent events, scoped to the staff member.

Each message is one notice from `central.web.live_feed` (`event`, `snapshot`, `alarm`, `status`,
`result`, `command`), JSON in `data`, with an `id` that is the send time in milliseconds. The
browser's EventSource reconnects by itself and sends that id back as `Last-Event-ID`: the events
the centre received since then (less a few seconds of overlap; the page drops duplicates by event
id) are sent again from the database before the live notices, so a dropped connection loses
nothing. Other messages:

* `resync`: this stream lost notices (the tab was too slow) or was away too long: re-read lists.
* `logout`: the login ended or the account changed: the stream closes.

District staff only get notices of their district's stations. The stream checks the login every
`CHECK_S` without keeping an idle login alive, sends a comment every `PING_S` (proxies close quiet
connections), and ends after `MAX_STREAM_S` (the browser reconnects at once, with its id).
The handler never blocks a thread: it drains its queue every `TICK_S`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from central.live import LiveMessage
from central.store import events as event_store
from central.web.auth import StaffIdentity
from central.web.context import WebContext
from central.web.deps import current_staff, scoped_stations
from central.web.event_views import row_fields, views

router = APIRouter(prefix="/api/v1", tags=["live"])

TICK_S = 0.25
PING_S = 15.0
CHECK_S = 15.0
MAX_STREAM_S = 3600.0
RETRY_MS = 3000
REPLAY_OVERLAP = dt.timedelta(seconds=10)
REPLAY_MAX_AGE = dt.timedelta(hours=1)
REPLAY_LIMIT = 500
#: Entries sent per tick at most (the newest): at fleet scale thousands arrive per second, more
#: than a person or a browser tab can take in; the page shows the newest ones anyway.
MAX_EVENTS_PER_TICK = 100


def frame(topic: str, data: Any, now_ms: int | None = None) -> str:
    """One server-sent event. JSON never contains a raw newline, so `data` is one line."""
    ident = now_ms if now_ms is not None else int(time.time() * 1000)
    return f"id: {ident}\nevent: {topic}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def _identify(ctx: WebContext, request: Request) -> StaffIdentity:
    with ctx.db() as db:
        return current_staff(request, ctx, db)


def _still_allowed(ctx: WebContext, staff: StaffIdentity, request: Request) -> bool:
    if not ctx.auth.sessions.is_live(staff.session):
        return False
    try:
        now = _identify(ctx, request)
    except Exception:
        return False
    return (now.role, now.district_id) == (staff.role, staff.district_id)


def _replay_since(last_event_id: str | None, now: dt.datetime) -> dt.datetime | None | bool:
    """When to replay from (a datetime), False when the id is unusable or too old (resync), None
    when there is nothing to replay (a first connection)."""
    if last_event_id is None:
        return None
    if not last_event_id.isdigit() or len(last_event_id) > 15:
        return False
    since = dt.datetime.fromtimestamp(int(last_event_id) / 1000, dt.UTC) - REPLAY_OVERLAP
    if since < now - REPLAY_MAX_AGE or since > now + REPLAY_OVERLAP:
        return False
    return since


def _replay(ctx: WebContext, staff: StaffIdentity, since: dt.datetime) -> tuple[list[dict[str, Any]], bool]:
    """(event views received since `since` in scope, whether there were more than the limit)."""
    with ctx.db() as db:
        station_ids = (
            None if staff.district_scope is None else [s.station_id for s in scoped_stations(db, staff)]
        )
        rows = event_store.received_since(db, since=since, station_ids=station_ids, limit=REPLAY_LIMIT + 1)
        items = [v.model_dump(mode="json") for v in views(db, [row_fields(r) for r in rows[:REPLAY_LIMIT]])]
    return items, len(rows) > REPLAY_LIMIT


def visible(message: LiveMessage, scope: list[str] | None) -> bool:
    """Whether a staff member with this district scope may see the notice."""
    return scope is None or (message.district is not None and message.district in scope)


def to_send(messages: list[LiveMessage], scope: list[str] | None, max_events: int) -> list[LiveMessage]:
    """What one tick sends: the visible notices, in order, with only the newest `max_events` entries."""
    shown = [m for m in messages if visible(m, scope)]
    events = [m for m in shown if m.topic == "event"]
    if len(events) <= max_events:
        return shown
    dropped = {id(m) for m in events[:-max_events]}
    return [m for m in shown if id(m) not in dropped]


@router.get(
    "/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def live_stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """New entries, snapshots, alarms, station status and command results as they happen."""
    ctx: WebContext = request.app.state.ctx
    staff = await to_thread.run_sync(_identify, ctx, request)
    since = _replay_since(last_event_id, ctx.now())
    feed = ctx.feed()
    subscription = feed.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            if since is False:
                yield frame("resync", {"reason": "stale"})
            elif isinstance(since, dt.datetime):
                items, more = await to_thread.run_sync(_replay, ctx, staff, since)
                for item in items:
                    yield frame("event", item)
                if more:
                    yield frame("resync", {"reason": "backlog"})
            dropped = 0
            started = last_ping = last_check = time.monotonic()
            while True:
                messages = subscription.drain()
                if subscription.dropped != dropped:
                    dropped = subscription.dropped
                    yield frame("resync", {"reason": "overflow"})
                for message in to_send(messages, staff.district_scope, MAX_EVENTS_PER_TICK):
                    yield frame(message.topic, dict(message.data))
                now = time.monotonic()
                if now - last_check >= CHECK_S:
                    last_check = now
                    if not await to_thread.run_sync(_still_allowed, ctx, staff, request):
                        yield frame("logout", {})
                        return
                if now - started >= MAX_STREAM_S:
                    return
                if now - last_ping >= PING_S:
                    last_ping = now
                    yield ": ping\n\n"
                await asyncio.sleep(TICK_S)
        finally:
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
