"""The live bus: notices reach every subscriber of their topic, a slow one never blocks publish."""

from __future__ import annotations

import threading

import pytest

from central.live import ALARM, EVENT, STATUS, LiveBus


def test_publish_reaches_subscribers_of_the_topic_only() -> None:
    bus = LiveBus()
    events = bus.subscribe({EVENT})
    everything = bus.subscribe()
    bus.publish(EVENT, {"id": "e1"}, station_id="s1", district="d1")
    bus.publish(STATUS, {"state": "online"}, station_id="s1")
    got = events.get(timeout=1)
    assert got is not None and got.data == {"id": "e1"} and got.station_id == "s1" and got.district == "d1"
    assert events.get(timeout=0.01) is None
    assert [m.topic for m in everything.drain()] == [EVENT, STATUS]


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    bus = LiveBus()
    slow = bus.subscribe({EVENT}, maxlen=3)
    for n in range(5):
        bus.publish(EVENT, {"n": n})
    assert [m.data["n"] for m in slow.drain()] == [2, 3, 4]
    assert slow.dropped == 2


def test_get_wakes_on_publish_from_another_thread() -> None:
    bus = LiveBus()
    sub = bus.subscribe({ALARM})
    timer = threading.Timer(0.05, lambda: bus.publish(ALARM, {"kind": "emergency"}))
    timer.start()
    try:
        got = sub.get(timeout=30)
    finally:
        timer.cancel()
    assert got is not None and got.data["kind"] == "emergency"


def test_closed_subscription_gets_nothing_more_and_is_forgotten() -> None:
    bus = LiveBus()
    with bus.subscribed({EVENT}) as sub:
        assert bus.subscribers == 1
    assert bus.subscribers == 0 and sub.closed
    bus.publish(EVENT, {"id": "late"})
    assert sub.get(timeout=0.01) is None


@pytest.mark.parametrize("topic", ["", "events", "../x"])
def test_unknown_topics_are_refused(topic: str) -> None:
    bus = LiveBus()
    with pytest.raises(ValueError, match="unknown live topic"):
        bus.publish(topic, {})
    with pytest.raises(ValueError, match="unknown live topics"):
        bus.subscribe({topic})
