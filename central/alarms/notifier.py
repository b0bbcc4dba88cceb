"""The notifier: the `alarm_deliveries` queue in, group-robot posts and e-mails out.

One thread reads what is due and claims it; a small pool sends (`[alarms] notify_threads`), so a
robot that hangs until its timeout holds up nobody else, and the engine (and ingest) never wait on
the network. Every attempt is a row of `alarm_notifications`; a failure is retried after
`retry_base_s`, doubling up to `retry_max_s`, `retry_attempts` times, then logged as an error (the
alarm itself is on the dashboard whatever happens to its messages).

Fan-outs (`channel = 'fanout'`) expand into one delivery per target concerned (district, severity,
escalation: `central.alarms.targets`). Expanding a raised emergency schedules its first reminder;
each reminder that finds the emergency still open sends again and schedules the next, up to
`emergency_resend_max`, adding the escalation targets from `escalate_after_reminders` on.

A message queued about an alarm that was acknowledged before it went out is skipped (recorded
as such), except the "acknowledged" message itself. Rows are claimed with a compare-and-set, so
several centre processes can run notifiers on one database; a process that dies mid-send leaves
its claim to expire and the row is sent again (at-least-once, like everything else here).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.alarms import vendors
from central.alarms.messages import AlarmView, Notice, compose
from central.alarms.targets import Target, targets_for
from central.config import AlarmsConfig, ConfigError, SmtpConfig
from central.store import alarms as store
from central.store.database import read_secret_file
from central.store.tables import Alarm, AlarmDelivery, Station
from common.db_types import utc_now
from common.errors import StoreError

log = logging.getLogger(__name__)

POLL_S = 1.0
USER_AGENT = "yizhan-central alarms"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None


class Transport(Protocol):
    def post_json(self, url: str, body: bytes, timeout_s: float) -> tuple[int, bytes]: ...


class HttpTransport:
    """httpx (explicit connect/read/write timeouts, connection reuse across threads)."""

    def __init__(self) -> None:
        # httpx logs every request's URL at INFO, and a group robot's URL holds its key.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._client = httpx.Client(
            headers={"User-Agent": USER_AGENT}, follow_redirects=False, trust_env=False
        )

    def post_json(self, url: str, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        response = self._client.post(
            url,
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=httpx.Timeout(timeout_s),
        )
        return response.status_code, response.content[:65536]

    def close(self) -> None:
        self._client.close()


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """smtplib with STARTTLS, implicit TLS or (for a relay on the same host) plain SMTP."""

    def __init__(self, config: SmtpConfig) -> None:
        if config.host is None or config.sender is None:
            raise ConfigError("[alarms.smtp] host and sender are needed for e-mail")
        self.config = config
        self.password: str | None = None
        if config.password_file is not None:
            try:
                self.password = read_secret_file(config.password_file, "SMTP password")
            except StoreError as exc:
                raise ConfigError(f"[alarms.smtp] {exc}") from None
        self._tls = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)

    def send(self, message: EmailMessage) -> None:
        config = self.config
        assert config.host is not None
        smtp: smtplib.SMTP
        if config.security == "tls":
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=self._tls)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=self._tls)
            if config.username is not None and self.password is not None:
                smtp.login(config.username, self.password)
            smtp.send_message(message)


@dataclass(frozen=True, slots=True)
class _Job:
    id: int
    alarm_id: int
    purpose: str
    round: int
    channel: str
    target: str
    attempts: int


class Sender:
    """Sends one notice to one target: the vendor's format and signature, HTTP or SMTP."""

    def __init__(
        self,
        config: AlarmsConfig,
        targets: Sequence[Target],
        *,
        transport: Transport | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.config = config
        self._own_transport = transport is None
        self.transport: Transport = transport or HttpTransport()
        needs_mail = any(t.channel == "email" for t in targets)
        self.mailer = mailer if mailer is not None or not needs_mail else SmtpMailer(config.smtp)

    def close(self) -> None:
        if self._own_transport and isinstance(self.transport, HttpTransport):
            self.transport.close()

    def deliver(self, target: Target, notice: Notice) -> Outcome:
        """Send one notice to one target now; never raises."""
        try:
            if target.channel == "email":
                return self._email(target, notice)
            return self._webhook(target, notice)
        except Exception as exc:  # a bug in a format must not stop the notifier
            log.exception("alarm notifier: building the message for %s failed", target.label)
            return Outcome(False, None, f"{type(exc).__name__}: {exc}")

    def _webhook(self, target: Target, notice: Notice) -> Outcome:
        assert target.url is not None
        now = time.time()
        if target.channel == "wecom":
            request = vendors.wecom(notice, target.url, mention_all=target.mention_all)
        elif target.channel == "dingtalk":
            request = vendors.dingtalk(
                notice,
                target.url,
                secret=target.secret,
                timestamp_ms=int(now * 1000),
                mention_all=target.mention_all,
            )
        else:
            request = vendors.feishu(
                notice, target.url, secret=target.secret, timestamp_s=int(now), mention_all=target.mention_all
            )
        try:
            status, body = self.transport.post_json(
                request.url, request.encoded(), self.config.webhook_timeout_s
            )
        except httpx.TimeoutException:
            return Outcome(False, None, f"no answer within {self.config.webhook_timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {_redact(str(exc), target)}")
        ok, error = vendors.accepted(target.channel, status, body)
        return Outcome(ok, status, error)

    def _email(self, target: Target, notice: Notice) -> Outcome:
        if self.mailer is None:
            return Outcome(False, None, "no [alarms.smtp] configured")
        message = email_message(notice, sender=self.config.smtp.sender or "", to=target.to)
        try:
            self.mailer.send(message)
        except smtplib.SMTPResponseException as exc:
            return Outcome(False, exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300])
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
        return Outcome(True, 250, None)


class Notifier:
    def __init__(
        self,
        db: sessionmaker[Session],
        config: AlarmsConfig,
        targets: Sequence[Target],
        *,
        dashboard_url: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        transport: Transport | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.targets = {t.label: t for t in targets}
        self.dashboard_url = dashboard_url
        self.clock = clock
        self.sender = Sender(config, targets, transport=transport, mailer=mailer)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: set[int] = set()
        self._lock = threading.Lock()
        self.sent = 0
        self.failed_attempts = 0
        self.given_up = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.notify_threads, thread_name_prefix="alarm-send"
        )
        self._thread = threading.Thread(target=self._run, name="alarm-notifier", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._pool is not None:
            # Sends in flight end within their timeout; queued ones stay in the table for later.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.sender.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.process_due()
            except Exception:
                log.exception("alarm notifier: reading the queue failed (retrying)")
            self._wake.wait(POLL_S)
            self._wake.clear()

    # -- the queue --------------------------------------------------------------------------------

    def process_due(self, *, wait: bool = False) -> int:
        """Claim what is due, expand fan-outs, hand messages to the pool. Returns rows handled.

        `wait=True` (tests, `yizhan-central alarms test`) sends in this thread instead."""
        now = self.clock()
        with self.db.begin() as session:
            rows = [
                _Job(r.id, r.alarm_id, r.purpose, r.round, r.channel, r.target, r.attempts)
                for r in store.due_deliveries(session, now=now, limit=200)
            ]
        handled = 0
        for job in rows:
            with self._lock:
                if job.id in self._inflight:
                    continue
            claim_until = now + dt.timedelta(seconds=self._claim_s())
            with self.db.begin() as session:
                if not store.claim_delivery(session, delivery_id=job.id, now=now, until=claim_until):
                    continue  # another process took it
            handled += 1
            if job.channel == "fanout":
                self._guarded(job, self._expand)
            elif wait or self._pool is None:
                self._guarded(job, self._send)
            else:
                with self._lock:
                    self._inflight.add(job.id)
                self._pool.submit(self._send_in_pool, job)
        return handled

    def _claim_s(self) -> float:
        return max(self.config.webhook_timeout_s, self.config.smtp.timeout_s) * 2 + 30

    def _guarded(self, job: _Job, work: Callable[[_Job], None]) -> None:
        try:
            work(job)
        except Exception:
            log.exception("alarm notifier: delivery %s failed unexpectedly", job.id)

    def _send_in_pool(self, job: _Job) -> None:
        try:
            self._guarded(job, self._send)
        finally:
            with self._lock:
                self._inflight.discard(job.id)
            self._wake.set()

    @staticmethod
    def _still_due(session: Session, job: _Job, now: dt.datetime) -> Alarm | None:
        """The job's alarm, or None after marking the job skipped: the alarm is gone, or it was
        acknowledged before this message about it could go out (only "acknowledged" and
        "cleared" messages are still worth sending then)."""
        alarm = session.get(Alarm, job.alarm_id)
        why = None
        if alarm is None:
            why = "no alarm"
        elif alarm.state != "open" and job.purpose not in ("acknowledged", "cleared"):
            why = "acknowledged already"
        if why is None:
            return alarm
        store.finish_delivery(session, delivery_id=job.id, now=now, outcome="skipped", error=why)
        return None

    def _expand(self, job: _Job) -> None:
        """A fan-out: one delivery per target concerned (and the next reminder), atomically."""
        now = self.clock()
        config = self.config
        with self.db.begin() as session:
            alarm = self._still_due(session, job, now)
            if alarm is None:
                return
            told = session.scalars(
                select(AlarmDelivery.target).where(
                    AlarmDelivery.alarm_id == alarm.id, AlarmDelivery.channel != "fanout"
                )
            ).all()
            chosen = targets_for(
                self.targets.values(),
                district_id=alarm.district_id,
                severity=alarm.severity,
                purpose=job.purpose,
                round=job.round,
                escalate_after=config.escalate_after_reminders,
                already_told=list(told),
            )
            for target in chosen:
                store.queue_delivery(
                    session,
                    alarm_id=alarm.id,
                    purpose=job.purpose,
                    round=job.round,
                    channel=target.channel,
                    target=target.label,
                    now=now,
                )
            emergency = alarm.severity == "emergency" and alarm.state == "open"
            next_round = None
            if emergency and job.purpose == "raised" and config.emergency_resend_max > 0:
                next_round = 1
            elif job.purpose == "reminder" and job.round < config.emergency_resend_max:
                next_round = job.round + 1
            if next_round is not None:
                store.queue_fanout(
                    session,
                    alarm_id=alarm.id,
                    purpose="reminder",
                    round=next_round,
                    now=now,
                    due_at=now + dt.timedelta(seconds=config.emergency_resend_s),
                )
            store.finish_delivery(
                session,
                delivery_id=job.id,
                now=now,
                outcome="sent",
                error=None if chosen else "no target configured for this alarm",
            )
        if chosen:
            self._wake.set()
        elif job.purpose not in ("cleared", "acknowledged"):
            log.warning(
                "alarm %s: nobody to notify (no [[alarms.webhooks]] or [[alarms.email]] for its district)",
                job.alarm_id,
                extra={"fields": {"event": "alarm_unrouted", "alarm_id": job.alarm_id}},
            )

    def _send(self, job: _Job) -> None:
        now = self.clock()
        with self.db.begin() as session:
            alarm = self._still_due(session, job, now)
            if alarm is None:
                return
            view = alarm_view(session, alarm)
        target = self.targets.get(job.target)
        if target is None:
            with self.db.begin() as session:
                store.finish_delivery(
                    session,
                    delivery_id=job.id,
                    now=now,
                    outcome="failed",
                    error="target no longer configured",
                )
            return
        notice = compose(
            view,
            job.purpose,
            round=job.round,
            language=self.config.language,
            timezone=self.config.timezone,
            dashboard_url=self.dashboard_url,
        )
        outcome = self.sender.deliver(target, notice)
        self._record(job, target, outcome)

    def _record(self, job: _Job, target: Target, outcome: Outcome) -> None:
        now = self.clock()
        attempts = job.attempts + 1
        with self.db.begin() as session:
            store.record_attempt(
                session,
                alarm_id=job.alarm_id,
                channel=target.channel,
                target=target.label,
                now=now,
                ok=outcome.ok,
                status_code=outcome.status_code,
                error=outcome.error,
            )
            if outcome.ok:
                store.finish_delivery(session, delivery_id=job.id, now=now, outcome="sent")
            elif attempts >= self.config.retry_attempts:
                store.finish_delivery(
                    session, delivery_id=job.id, now=now, outcome="failed", error=outcome.error
                )
            else:
                store.retry_delivery(
                    session,
                    delivery_id=job.id,
                    attempts=attempts,
                    due_at=now + dt.timedelta(seconds=self.backoff_s(attempts)),
                    error=outcome.error,
                )
        fields = {
            "alarm_id": job.alarm_id,
            "target": target.label,
            "channel": target.channel,
            "purpose": job.purpose,
            "attempt": attempts,
        }
        if outcome.ok:
            self.sent += 1
            log.info("alarm notification sent", extra={"fields": {"event": "alarm_notified", **fields}})
        elif attempts >= self.config.retry_attempts:
            self.given_up += 1
            log.error(
                "alarm notification given up after %d attempts: %s",
                attempts,
                outcome.error,
                extra={"fields": {"event": "alarm_notify_failed", **fields}},
            )
        else:
            self.failed_attempts += 1
            log.warning(
                "alarm notification failed (will retry): %s",
                outcome.error,
                extra={"fields": {"event": "alarm_notify_retry", **fields}},
            )

    def backoff_s(self, attempts: int) -> float:
        return float(min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempts - 1)))


def alarm_view(session: Session, alarm: Alarm) -> AlarmView:
    station = None if alarm.station_id is None else session.get(Station, alarm.station_id)
    return AlarmView(
        id=alarm.id,
        kind=alarm.kind,
        severity=alarm.severity,
        state=alarm.state,
        station_id=alarm.station_id,
        station_name=None if station is None else station.name,
        district_id=alarm.district_id,
        address=None if station is None else station.address,
        contact_phone=None if station is None else station.contact_phone,
        raised_at=alarm.raised_at,
        cleared_at=alarm.cleared_at,
        note=alarm.note,
        acknowledged_by=store.acknowledger_name(session, alarm),
        details=dict(alarm.details or {}),
    )


def email_message(notice: Notice, *, sender: str, to: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:12], domain="yizhan.local")
    message["X-Yizhan-Severity"] = notice.severity
    if notice.severity == "emergency" and notice.purpose != "cleared":
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    message.set_content("\n".join((*notice.lines, *((notice.link,) if notice.link else ()))) + "\n")
    return message


def _redact(text: str, target: Target) -> str:
    """httpx errors quote the URL, which holds the robot's key."""
    return text.replace(target.url or "\0", f"<{target.label}>")
