"""The dashboard's live feed over real HTTP (uvicorn): server-sent events from the live bus and
from the database, scoped per staff member, replayed after a reconnect, closed at logout.
Also the time-zone arithmetic behind visits in station-local days, across daylight saving."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from central_fixtures import CentralDb
from dashboard_support import PASSWORD, Fleet, build_fleet, config_for, serve

from central.config import CentralConfig
from central.store import visits as visit_store
from central.store.tables import Station
from central.web.routers import live as live_route


@dataclass
class Stream:
    """A background reader of one SSE stream: (event, data, id) tuples on a queue."""

    response: httpx.Response
    messages: queue.Queue[tuple[str, Any, str | None]] = field(default_factory=queue.Queue)
    last_id: str | None = None

    def next(self, topic: str, timeout: float = 15.0, where: Any = None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {topic!r} message within {timeout} s"
            try:
                event, data, _ = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if event == topic and (where is None or where(data)):
                return data

    def none(self, topic: str, within: float, where: Any = None) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                event, data, _ = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            assert not (event == topic and (where is None or where(data))), (event, data)


@pytest.fixture
def site(central_db: CentralDb, central_config: CentralConfig) -> Iterator[tuple[Fleet, str]]:
    fleet = build_fleet(central_db, config_for(central_config, live_poll_s=0.3))
    with serve(fleet.ctx) as url:
        yield fleet, url


def login(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return client


def open_stream(client: httpx.Client, last_event_id: str | None = None) -> tuple[Stream, threading.Thread]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    request = client.build_request("GET", "/api/v1/live", headers=headers, timeout=httpx.Timeout(10, read=60))
    response = client.send(request, stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    stream = Stream(response)

    def read() -> None:
        event, data, ident = "message", "", None
        try:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line == "" and data:
                    stream.last_id = ident or stream.last_id
                    stream.messages.put((event, json.loads(data), ident))
                    event, data = "message", ""
        except (httpx.HTTPError, RuntimeError):
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return stream, thread


def test_a_new_entry_reaches_staff_of_its_district_only(site: tuple[Fleet, str]) -> None:
    fleet, url = site
    hd, cy, admin = login(url, "hd.staff"), login(url, "cy.staff"), login(url, "admin")
    hd_stream, _ = open_stream(hd)
    cy_stream, _ = open_stream(cy)
    admin_stream, _ = open_stream(admin)
    time.sleep(0.5)
    event_id = fleet.store_event(station_id="hd-1", member_id="m-li")
    entry = hd_stream.next("event", where=lambda d: d["id"] == event_id)
    assert (entry["member_name"], entry["station_name"], entry["granted"]) == ("李娜", "海淀一号", True)
    admin_stream.next("event", where=lambda d: d["id"] == event_id)
    cy_stream.none("event", within=1.0)
    alarm_id = fleet.raise_alarm(station_id="cy-1")
    assert cy_stream.next("alarm")["id"] == alarm_id
    hd_stream.none("alarm", within=1.0, where=lambda d: d["id"] == alarm_id)
    for stream in (hd_stream, cy_stream, admin_stream):
        stream.response.close()


def test_rows_stored_by_another_process_arrive_by_the_database_poll(site: tuple[Fleet, str]) -> None:
    fleet, url = site
    stream, _ = open_stream(login(url, "admin"))
    time.sleep(0.5)
    event_id = fleet.store_event(station_id="cy-1", member_id="m-wang", publish=False)  # no bus notice
    entry = stream.next("event", where=lambda d: d["id"] == event_id)
    assert entry["member_name"] == "王强"
    # Published late by "ingest" as well: the feed forwards it once.
    from central import live

    notice = {"id": event_id, "station_id": "cy-1", "ts": entry["ts"], "kind": "entry"}
    fleet.ctx.live.publish(live.EVENT, notice, station_id="cy-1", district="chaoyang")
    stream.none("event", within=1.0, where=lambda d: d["id"] == event_id)
    with fleet.ctx.db.begin() as db:
        station = db.get(Station, "cy-1")
        assert station is not None
        station.last_state, station.last_status_at = "offline", dt.datetime.now(dt.UTC)
    assert stream.next("status", where=lambda d: d["station_id"] == "cy-1")["state"] == "offline"
    stream.response.close()


def test_a_reconnect_replays_what_was_missed(site: tuple[Fleet, str]) -> None:
    fleet, url = site
    hd = login(url, "hd.staff")
    stream, _ = open_stream(hd)
    time.sleep(0.5)
    first = fleet.store_event(station_id="hd-1", member_id="m-li")
    stream.next("event", where=lambda d: d["id"] == first)
    last_id = stream.last_id
    stream.response.close()
    missed = [fleet.store_event(station_id="hd-2", publish=False) for _ in range(3)]
    other = fleet.store_event(station_id="cy-1", publish=False)
    again, _ = open_stream(hd, last_event_id=last_id)
    seen = {again.next("event", where=lambda d: d["id"] in missed)["id"] for _ in range(3)}
    assert seen == set(missed)
    again.none("event", within=1.0, where=lambda d: d["id"] == other)
    again.response.close()
    stale, _ = open_stream(hd, last_event_id=str(int((time.time() - 7200) * 1000)))
    assert stale.next("resync")["reason"] == "stale"
    stale.response.close()
    garbage, _ = open_stream(hd, last_event_id="12abc")
    assert garbage.next("resync")["reason"] == "stale"
    garbage.response.close()


def test_the_stream_ends_when_the_login_ends(
    site: tuple[Fleet, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_route, "CHECK_S", 0.2)
    _, url = site
    hd = login(url, "hd.staff")
    stream, reader = open_stream(hd)
    time.sleep(0.5)
    assert hd.post("/api/v1/auth/logout").status_code == 204
    stream.next("logout", timeout=10)
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert httpx.get(url + "/api/v1/live", headers=dict(hd.headers), timeout=10).status_code == 401


def test_a_slow_tab_is_told_to_resync(site: tuple[Fleet, str]) -> None:
    fleet, url = site
    feed = fleet.ctx.feed()
    subscription = feed.subscribe(maxlen=2)
    from central import live

    for n in range(5):
        fleet.ctx.live.publish(live.COMMAND, {"id": f"c{n}"}, station_id="hd-1", district="haidian")
    deadline = time.monotonic() + 10
    while subscription.dropped == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [m.data["id"] for m in subscription.drain()] == ["c3", "c4"]
    subscription.close()


# -- station-local days ------------------------------------------------------------------------------


def test_offset_segments_cut_at_daylight_saving_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end = visit_store.local_day_bounds(berlin, dt.date(2026, 3, 28), dt.date(2026, 3, 30))
    segments = visit_store.offset_segments(berlin, start, end)
    change = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)  # 02:00 CET -> 03:00 CEST
    assert segments == [(start, change, 3600), (change, end, 7200)]
    shanghai = ZoneInfo("Asia/Shanghai")
    start, end = visit_store.local_day_bounds(shanghai, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert visit_store.offset_segments(shanghai, start, end) == [(start, end, 28800)]
    assert start == dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC)
    assert visit_store.periods(dt.date(2026, 11, 25), dt.date(2026, 12, 7), "week") == [
        dt.date(2026, 11, 23), dt.date(2026, 11, 30), dt.date(2026, 12, 7)]  # fmt: skip


def test_visits_across_a_daylight_saving_change(central_db: CentralDb, central_config: CentralConfig) -> None:
    fleet = build_fleet(central_db, config_for(central_config))
    with fleet.ctx.db.begin() as db:
        station = db.get(Station, "cy-1")
        assert station is not None
        station.schedule = {"always_open": True, "timezone": "Europe/Berlin", "weekly": {}, "holidays": {}}
    for when, member in (
        (dt.datetime(2026, 3, 28, 22, 30, tzinfo=dt.UTC), "a"),  # 23:30 on the 28th (CET)
        (dt.datetime(2026, 3, 28, 23, 30, tzinfo=dt.UTC), "b"),  # 00:30 on the 29th (CET)
        (dt.datetime(2026, 3, 29, 21, 30, tzinfo=dt.UTC), "a"),  # 23:30 on the 29th (CEST)
        (dt.datetime(2026, 3, 29, 22, 30, tzinfo=dt.UTC), "c"),  # 00:30 on the 30th (CEST)
    ):
        fleet.store_event(station_id="cy-1", member_id=member, ts=when, publish=False)
    with fleet.ctx.db() as db:
        stations = [db.get(Station, "cy-1")]
        days = visit_store.count_visits(
            db, stations=stations, first=dt.date(2026, 3, 28), last=dt.date(2026, 3, 30)
        )
        weeks = visit_store.count_visits(db, stations=stations, first=dt.date(2026, 3, 23),
                                         last=dt.date(2026, 4, 5), period="week")  # fmt: skip
    assert [(r.period_start.day, r.entries, r.members) for r in days] == [(28, 1, 1), (29, 2, 2), (30, 1, 1)]
    assert [(r.period_start, r.entries, r.members) for r in weeks] == [
        (dt.date(2026, 3, 23), 3, 2), (dt.date(2026, 3, 30), 1, 1)]  # fmt: skip


def test_a_burst_sends_the_newest_entries_only() -> None:
    from central.live import LiveMessage

    burst = [LiveMessage("event", {"n": n}, "hd-1", "haidian") for n in range(12)]
    burst.insert(3, LiveMessage("alarm", {"id": 1}, "hd-1", "haidian"))
    burst.append(LiveMessage("event", {"n": 99}, "cy-1", "chaoyang"))
    sent = live_route.to_send(burst, ["haidian"], 5)
    assert [(m.topic, m.data.get("n", m.data.get("id"))) for m in sent] == [
        ("alarm", 1), ("event", 7), ("event", 8), ("event", 9), ("event", 10), ("event", 11)]  # fmt: skip
    assert len(live_route.to_send(burst, None, 100)) == 14
