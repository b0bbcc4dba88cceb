"""The notifier against real receivers on 127.0.0.1: each vendor's payload and signature, e-mail
over SMTP (plain and STARTTLS), retries with back-off, timeouts, reminders of an unacknowledged
emergency with escalation, routing by district and severity, and nothing lost when a sender dies."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ssl
import threading
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest
from alarm_support import (
    T0,
    Clock,
    MailBox,
    Received,
    add_station,
    ok_answer,
    receiver,
    smtp_server,
    store_event,
)
from central_fixtures import CentralDb
from sqlalchemy import select

from central import live
from central.alarms.engine import AlarmEngine
from central.alarms.notifier import Notifier
from central.alarms.targets import load_targets
from central.config import AlarmsConfig, ConfigError, parse_config
from central.live import LiveBus, LiveMessage
from central.store import alarms as alarm_store
from central.store.tables import Alarm, AlarmDelivery, AlarmNotification
from demo.pki import server_certs

DING_SECRET = "SECd1ng-test-secret"
FEISHU_SECRET = "feishu-test-secret"


def alarms_config(**values: Any) -> AlarmsConfig:
    return parse_config({"alarms": values}, "test").alarms


@pytest.fixture
def stations(central_db: CentralDb) -> CentralDb:
    add_station(central_db.sessions, "hd-1", "haidian", name="学院路驿站", address="学院路 30 号")
    add_station(central_db.sessions, "cy-1", "chaoyang", name="望京驿站")
    return central_db


def raise_event(db: CentralDb, clock: Clock, station_id: str, kind: str, config: AlarmsConfig) -> int:
    engine = AlarmEngine(db.sessions, LiveBus(), config, clock=clock)
    data = store_event(db.sessions, station_id, kind, ts=clock())
    engine.handle(LiveMessage(live.EVENT, data, station_id=station_id))
    with db.sessions.begin() as session:
        return int(session.scalars(select(Alarm.id).order_by(Alarm.id.desc())).first() or 0)


def drain(notifier: Notifier, rounds: int = 5) -> None:
    """Process what is due now (fan-outs first, then their deliveries), in this thread."""
    for _ in range(rounds):
        if notifier.process_due(wait=True) == 0:
            return


def attempts(db: CentralDb, alarm_id: int | None = None) -> list[AlarmNotification]:
    with db.sessions.begin() as session:
        query = select(AlarmNotification).order_by(AlarmNotification.id)
        if alarm_id is not None:
            query = query.where(AlarmNotification.alarm_id == alarm_id)
        return list(session.scalars(query).all())


def pending(db: CentralDb) -> list[AlarmDelivery]:
    with db.sessions.begin() as session:
        return list(session.scalars(select(AlarmDelivery).where(AlarmDelivery.done_at.is_(None))).all())


def secret_file(tmp_path: Path, name: str, value: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return str(path)


def test_every_vendor_gets_its_format_and_a_valid_signature(stations: CentralDb, tmp_path: Path) -> None:
    clock = Clock()
    with (
        receiver(ok_answer("wecom")) as wecom,
        receiver(ok_answer("dingtalk")) as ding,
        receiver(ok_answer("feishu")) as feishu,
        smtp_server() as mail,
    ):
        config = alarms_config(
            webhooks=[
                {"district": "haidian", "format": "wecom", "url": wecom.url + "?key=WECOMKEY"},
                {
                    "district": "haidian",
                    "format": "dingtalk",
                    "url_file": secret_file(tmp_path, "ding.url", ding.url + "?access_token=DINGTOKEN"),
                    "secret_file": secret_file(tmp_path, "ding.secret", DING_SECRET),
                },
                {
                    "district": "*",
                    "format": "feishu",
                    "url": feishu.url,
                    "secret_file": secret_file(tmp_path, "feishu.secret", FEISHU_SECRET),
                },
            ],
            smtp={"host": "127.0.0.1", "port": mail.port, "security": "none", "sender": "alarms@union.test"},
            email=[{"district": "haidian", "to": ["duty@union.test", "lead@union.test"]}],
        )
        notifier = Notifier(
            stations.sessions, config, load_targets(config), clock=clock, dashboard_url="https://centre.test"
        )
        alarm_id = raise_event(stations, clock, "hd-1", "emergency", config)
        drain(notifier)
        [w] = wecom.wait_for(1)
        [d] = ding.wait_for(1)
        [f] = feishu.wait_for(1)
        [m] = mail.wait_for(1)
        notifier.stop()

    assert w.query == {"key": ["WECOMKEY"]} and w.body["msgtype"] == "text"
    assert w.body["text"]["mentioned_list"] == ["@all"] and "学院路驿站" in w.body["text"]["content"]
    assert w.headers["Content-Type"].startswith("application/json")

    assert d.query["access_token"] == ["DINGTOKEN"]
    timestamp = d.query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert d.query["sign"] == [expected]
    assert abs(int(timestamp) / 1000 - time.time()) < 3600  # DingTalk refuses older than an hour
    assert d.body["msgtype"] == "markdown" and d.body["at"]["isAtAll"] is True
    assert "驿站" in d.body["markdown"]["text"]  # the keyword a "custom keywords" robot needs

    stamp = f.body["timestamp"]
    expected_f = base64.b64encode(
        hmac.new(f"{stamp}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert f.body["sign"] == expected_f and f.body["msg_type"] == "interactive"
    assert f.body["card"]["header"]["template"] == "red"
    assert "https://centre.test/dashboard/#/stations/hd-1" in f.body["card"]["elements"][0]["content"]

    subject = str(make_header(decode_header(m["Subject"])))
    assert subject.startswith("【紧急】驿站告警：学院路驿站") and m["Importance"] == "high"
    assert mail.envelopes[0] == ("alarms@union.test", ["duty@union.test", "lead@union.test"])
    assert "学院路 30 号" in m.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]

    log = attempts(stations, alarm_id)
    assert sorted(a.channel for a in log) == ["dingtalk", "email", "feishu", "wecom"]
    assert all(a.ok for a in log)
    assert all("KEY" not in a.target and "TOKEN" not in a.target for a in log)  # labels, never URLs


def test_routing_by_district_and_severity(stations: CentralDb) -> None:
    clock = Clock()
    with receiver(ok_answer("wecom")) as haidian, receiver(ok_answer("wecom")) as chaoyang_critical:
        config = alarms_config(
            webhooks=[
                {"district": "haidian", "format": "wecom", "url": haidian.url},
                {
                    "district": "chaoyang",
                    "format": "wecom",
                    "url": chaoyang_critical.url,
                    "min_severity": "critical",
                },
            ]
        )
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        raise_event(stations, clock, "cy-1", "lockout", config)  # a warning in chaoyang: nobody
        raise_event(stations, clock, "cy-1", "door_forced", config)  # critical in chaoyang
        raise_event(stations, clock, "hd-1", "lockout", config)  # a warning in haidian
        drain(notifier)
        notifier.stop()
        assert ["门被强行打开" in r.body["markdown"]["content"] for r in chaoyang_critical.requests] == [True]
        assert ["连续识别失败" in r.body["markdown"]["content"] for r in haidian.requests] == [True]


def test_a_failing_robot_is_retried_with_back_off_and_every_attempt_recorded(stations: CentralDb) -> None:
    clock = Clock()
    answers = iter(
        [
            (500, b"<html>busy</html>"),
            (200, b'{"errcode":45009,"errmsg":"api freq out of limit"}'),
            (200, b'{"errcode":0,"errmsg":"ok"}'),
        ]
    )
    with receiver(lambda _: next(answers)) as robot:
        config = alarms_config(
            webhooks=[{"format": "wecom", "url": robot.url}], retry_base_s=2.0, retry_max_s=300.0
        )
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "tamper", config)
        drain(notifier)
        assert len(robot.requests) == 1
        drain(notifier)  # not due yet: no second request
        assert len(robot.requests) == 1
        clock.advance(2.1)
        drain(notifier)
        assert len(robot.requests) == 2
        clock.advance(2.1)  # the second wait is 4 s
        drain(notifier)
        assert len(robot.requests) == 2
        clock.advance(2.1)
        drain(notifier)
        assert len(robot.requests) == 3
        notifier.stop()
    log = attempts(stations, alarm_id)
    assert [a.ok for a in log] == [False, False, True]
    assert log[0].status_code == 500 and "HTTP 500" in (log[0].error or "")
    assert "45009" in (log[1].error or "")
    assert pending(stations) == []


def test_after_the_last_attempt_a_message_is_given_up_but_the_alarm_stays(stations: CentralDb) -> None:
    clock = Clock()
    with receiver(lambda _: (503, b"down")) as robot:
        config = alarms_config(webhooks=[{"format": "feishu", "url": robot.url}], retry_attempts=3)
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "door_forced", config)
        for _ in range(5):
            drain(notifier)
            clock.advance(600)
        notifier.stop()
    assert len(robot.requests) == 3 and notifier.given_up == 1
    with stations.sessions.begin() as session:
        [delivery] = alarm_store.deliveries(session, alarm_id=alarm_id)
        assert (delivery.outcome, delivery.attempts) == ("failed", 2) and "503" in (delivery.last_error or "")
        assert session.get(Alarm, alarm_id).state == "open"  # type: ignore[union-attr]


def test_a_robot_that_never_answers_times_out_and_is_retried(stations: CentralDb) -> None:
    clock = Clock()
    slow = threading.Event()

    def hang(_: Received) -> tuple[int, bytes]:
        if not slow.is_set():
            time.sleep(3)
        return 200, b'{"code":0,"msg":"success"}'

    with receiver(hang) as robot:
        config = alarms_config(webhooks=[{"format": "feishu", "url": robot.url}], webhook_timeout_s=0.5)
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "door_forced", config)
        drain(notifier)
        slow.set()
        clock.advance(5)
        drain(notifier)
        notifier.stop()
    log = attempts(stations, alarm_id)
    assert [a.ok for a in log] == [False, True]
    assert log[0].error == "no answer within 0.5 s"


def test_a_hanging_robot_holds_up_neither_the_other_robots_nor_the_engine(stations: CentralDb) -> None:
    gate = threading.Event()

    def stuck(_: Received) -> tuple[int, bytes]:
        gate.wait(60)
        return 200, b'{"errcode":0,"errmsg":"ok"}'

    bus = LiveBus()
    with receiver(stuck) as hanging, receiver(ok_answer("dingtalk")) as fine:
        config = alarms_config(
            webhooks=[{"format": "wecom", "url": hanging.url}, {"format": "dingtalk", "url": fine.url}],
            webhook_timeout_s=60,
        )
        notifier = Notifier(stations.sessions, config, load_targets(config))
        engine = AlarmEngine(stations.sessions, bus, config, on_change=notifier.kick)
        notifier.start()
        engine.start()
        try:
            first = store_event(stations.sessions, "hd-1", "door_forced", ts=T0)
            bus.publish(live.EVENT, first, station_id="hd-1")
            hanging.wait_for(1)  # the first send to the stuck robot is in flight now
            second = store_event(stations.sessions, "cy-1", "emergency", ts=T0)
            bus.publish(live.EVENT, second, station_id="cy-1")  # returns at once: ingest never waits
            got = fine.wait_for(2)
            assert {("门被强行打开" in r.body["markdown"]["title"]) for r in got} == {True, False}
            assert len(hanging.requests) <= 2 and not gate.is_set()
        finally:
            gate.set()
            engine.stop()
            notifier.stop()


def test_an_unacknowledged_emergency_is_sent_again_and_escalated_until_acknowledged(
    stations: CentralDb,
) -> None:
    clock = Clock()
    with receiver(ok_answer("wecom")) as duty, receiver(ok_answer("dingtalk")) as leaders:
        config = alarms_config(
            webhooks=[
                {"format": "wecom", "url": duty.url, "district": "haidian"},
                {"format": "dingtalk", "url": leaders.url, "escalation": True},
            ],
            emergency_resend_s=300,
            emergency_resend_max=5,
            escalate_after_reminders=2,
        )
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "emergency", config)
        drain(notifier)
        assert (len(duty.requests), len(leaders.requests)) == (1, 0)
        clock.advance(299)
        drain(notifier)
        assert len(duty.requests) == 1
        clock.advance(2)
        drain(notifier)  # reminder 1: the duty group only
        assert (len(duty.requests), len(leaders.requests)) == (2, 0)
        assert "第 1 次提醒" in duty.requests[-1].body["text"]["content"]
        clock.advance(301)
        drain(notifier)  # reminder 2: escalated to the leaders' group too
        assert (len(duty.requests), len(leaders.requests)) == (3, 1)
        assert "第 2 次提醒" in leaders.requests[-1].body["markdown"]["text"]
        with stations.sessions.begin() as session:
            alarm_store.acknowledge(
                session, alarm_id=alarm_id, staff_id=None, note="已到现场，老人身体不适已送医", now=clock()
            )
            alarm_store.queue_fanout(session, alarm_id=alarm_id, purpose="acknowledged", now=clock())
        drain(notifier)  # both groups hear who took it
        assert "已到现场" in duty.requests[-1].body["markdown"]["content"]
        assert "已到现场" in leaders.requests[-1].body["markdown"]["text"]
        for _ in range(4):
            clock.advance(301)
            drain(notifier)
        notifier.stop()
        assert (len(duty.requests), len(leaders.requests)) == (4, 2)  # no reminder after the ack
    assert pending(stations) == []


def test_reminders_stop_after_the_configured_number(stations: CentralDb) -> None:
    clock = Clock()
    with receiver(ok_answer("wecom")) as duty:
        config = alarms_config(webhooks=[{"format": "wecom", "url": duty.url}], emergency_resend_max=2)
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        raise_event(stations, clock, "hd-1", "emergency", config)
        for _ in range(6):
            drain(notifier)
            clock.advance(301)
        notifier.stop()
        assert len(duty.requests) == 3  # the alarm and two reminders
    assert pending(stations) == []


def test_a_sender_that_dies_mid_send_leaves_the_message_to_another(stations: CentralDb) -> None:
    clock = Clock()
    with receiver(ok_answer("feishu")) as robot:
        config = alarms_config(webhooks=[{"format": "feishu", "url": robot.url}])
        first = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        raise_event(stations, clock, "hd-1", "tamper", config)
        first.process_due(wait=True)  # the fan-out: one delivery queued
        with stations.sessions.begin() as session:
            [job] = alarm_store.due_deliveries(session, now=clock())
            until = clock() + dt.timedelta(seconds=40)
            assert alarm_store.claim_delivery(session, delivery_id=job.id, now=clock(), until=until)
        # ... and that process died here. Another one must not send it while the claim holds,
        second = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        drain(second)
        assert robot.requests == []
        clock.advance(41)  # ... and sends it once the claim has expired.
        drain(second)
        assert len(robot.requests) == 1
        first.stop()
        second.stop()


def test_a_message_for_an_alarm_acknowledged_meanwhile_is_skipped(stations: CentralDb) -> None:
    clock = Clock()
    with receiver(lambda _: (500, b"")) as robot:
        config = alarms_config(webhooks=[{"format": "wecom", "url": robot.url}], notify_acknowledged=False)
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "door_forced", config)
        drain(notifier)
        with stations.sessions.begin() as session:
            alarm_store.acknowledge(
                session, alarm_id=alarm_id, staff_id=None, note="handled by phone", now=clock()
            )
        clock.advance(60)
        drain(notifier)
        notifier.stop()
    assert len(robot.requests) == 1
    with stations.sessions.begin() as session:
        [delivery] = alarm_store.deliveries(session, alarm_id=alarm_id)
        assert delivery.outcome == "skipped"


def test_hostile_answers_are_failures_not_crashes(stations: CentralDb) -> None:
    clock = Clock()
    answers = iter(
        [(200, b"\xff\xfe" * 50_000), (200, b'{"errcode": "0"}'), (302, b""), (200, b'{"errcode":0}')]
    )
    with receiver(lambda _: next(answers)) as robot:
        config = alarms_config(webhooks=[{"format": "wecom", "url": robot.url}], retry_base_s=1.0)
        notifier = Notifier(stations.sessions, config, load_targets(config), clock=clock)
        alarm_id = raise_event(stations, clock, "hd-1", "door_forced", config)
        for _ in range(4):
            drain(notifier)
            clock.advance(10)
        notifier.stop()
    assert [a.ok for a in attempts(stations, alarm_id)] == [False, False, False, True]


@pytest.fixture
def starttls_server(tmp_path: Path) -> Iterator[tuple[MailBox, Path]]:
    certs = server_certs(tmp_path / "smtp-tls")  # a CA and a certificate for localhost / 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    with smtp_server(context) as box:
        yield box, certs.ca


def test_email_over_starttls_checks_the_servers_certificate(
    stations: CentralDb, starttls_server: tuple[MailBox, Path], tmp_path: Path
) -> None:
    box, cert = starttls_server
    clock = Clock()
    smtp = {"host": "127.0.0.1", "port": box.port, "security": "starttls", "sender": "alarms@union.test"}
    trusted = alarms_config(smtp={**smtp, "ca_file": str(cert)}, email=[{"to": ["duty@union.test"]}])
    untrusted = alarms_config(smtp=smtp, email=[{"to": ["duty@union.test"]}], retry_attempts=1)
    refused = Notifier(stations.sessions, untrusted, load_targets(untrusted), clock=clock)
    alarm_id = raise_event(stations, clock, "hd-1", "tamper", untrusted)
    drain(refused)
    [attempt] = attempts(stations, alarm_id)
    assert not attempt.ok and "CERTIFICATE_VERIFY_FAILED" in (attempt.error or "")
    accepted = Notifier(stations.sessions, trusted, load_targets(trusted), clock=clock)
    raise_event(stations, clock, "cy-1", "tamper", trusted)
    drain(accepted)
    [message] = box.wait_for(1)
    assert "望京驿站" in str(make_header(decode_header(message["Subject"])))


def test_unsafe_or_wrong_secrets_stop_the_start_with_the_file_named(tmp_path: Path) -> None:
    loose = secret_file(
        tmp_path, "loose.url", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", 0o644
    )
    with pytest.raises(ConfigError, match="loose.url"):
        load_targets(alarms_config(webhooks=[{"format": "wecom", "url_file": loose}]))
    not_a_url = secret_file(tmp_path, "bad.url", "ftp://robot")
    with pytest.raises(ConfigError, match="does not hold an http"):
        load_targets(alarms_config(webhooks=[{"format": "wecom", "url_file": not_a_url}]))
    secret = secret_file(tmp_path, "s", "x")
    with pytest.raises(ConfigError, match="wecom has no signing"):
        load_targets(
            alarms_config(webhooks=[{"format": "wecom", "url": "https://x/y", "secret_file": secret}])
        )
    with pytest.raises(ConfigError, match="configured twice"):
        load_targets(alarms_config(webhooks=[{"format": "wecom", "url": "https://x/y"}] * 2))
    with pytest.raises(ConfigError, match="exactly one of url and url_file"):
        alarms_config(webhooks=[{"format": "feishu"}])
    with pytest.raises(ConfigError, match="format"):
        alarms_config(webhooks=[{"format": "slack", "url": "https://x"}])


def test_an_alarm_with_no_target_is_logged_and_stays_on_the_dashboard(
    stations: CentralDb, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    config = alarms_config()
    notifier = Notifier(stations.sessions, config, [], clock=clock)
    alarm_id = raise_event(stations, clock, "hd-1", "emergency", config)
    drain(notifier)
    notifier.stop()
    assert "nobody to notify" in caplog.text
    with stations.sessions.begin() as session:
        assert session.get(Alarm, alarm_id).state == "open"  # type: ignore[union-attr]


def test_the_notifier_thread_sends_what_the_engine_raises(stations: CentralDb) -> None:
    with receiver(ok_answer("wecom")) as robot:
        config = alarms_config(webhooks=[{"format": "wecom", "url": robot.url}])
        notifier = Notifier(stations.sessions, config, load_targets(config))
        notifier.start()
        try:
            bus = LiveBus()
            engine = AlarmEngine(stations.sessions, bus, config, on_change=notifier.kick)
            engine.start()
            try:
                bus.publish(
                    live.EVENT,
                    store_event(stations.sessions, "hd-1", "door_forced", ts=T0),
                    station_id="hd-1",
                )
                [request] = robot.wait_for(1)
            finally:
                engine.stop()
        finally:
            notifier.stop()
    assert "门被强行打开" in request.body["markdown"]["content"]
