"""Who hears about an alarm: the `[alarms]` webhooks and e-mail lists, with their secrets loaded.

A target is named by a label (its `name`, else format, district and a short hash of its URL or
addresses), which is what the delivery queue and the notification log store: never the URL, which
holds the robot's key. Secrets (`url_file`, `secret_file`, the SMTP password) are read once at
start, so a missing or unsafe file stops `run` with the file named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from central.alarms.rules import SEVERITY_RANK
from central.config import ANY_DISTRICT, AlarmsConfig, ConfigError
from central.store.database import read_secret_file
from common.errors import StoreError

#: Purposes that go to every ordinary target concerned (escalation lists get reminders only).
ESCALATION_ONLY_AFTER: Final = "reminder"


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    channel: str  # wecom | dingtalk | feishu | email
    district: str
    min_severity: str
    escalation: bool
    mention_all: bool = True
    url: str | None = None
    secret: str | None = None
    to: tuple[str, ...] = ()

    def concerns(self, district_id: str | None, severity: str) -> bool:
        in_district = self.district == ANY_DISTRICT or self.district == district_id
        return in_district and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK.get(self.min_severity, 0)

    def __repr__(self) -> str:  # never the URL or the secret in a log line
        return f"Target({self.label!r}, {self.channel})"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def load_targets(config: AlarmsConfig) -> list[Target]:
    """The configured targets with their URLs and secrets read; `ConfigError` naming a bad file."""
    targets: list[Target] = []
    try:
        for hook in config.webhooks:
            if hook.url_file is not None:
                url = read_secret_file(hook.url_file, "webhook URL")
                if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
                    raise ConfigError(f"webhook URL file {hook.url_file} does not hold an http(s) URL")
            else:
                assert hook.url is not None
                url = hook.url
            secret = (
                None if hook.secret_file is None else read_secret_file(hook.secret_file, "webhook secret")
            )
            if secret is not None and hook.format == "wecom":
                raise ConfigError("[[alarms.webhooks]] format wecom has no signing: remove secret_file")
            label = hook.name or f"{hook.format}-{hook.district.replace('*', 'all')}-{_short_hash(url)}"
            targets.append(
                Target(
                    label=label,
                    channel=hook.format,
                    district=hook.district,
                    min_severity=hook.min_severity,
                    escalation=hook.escalation,
                    mention_all=hook.mention_all,
                    url=url,
                    secret=secret,
                )
            )
    except StoreError as exc:
        raise ConfigError(f"[alarms] webhooks: {exc}") from None
    for mail in config.email:
        label = mail.name or f"email-{mail.district.replace('*', 'all')}-{_short_hash(','.join(mail.to))}"
        targets.append(
            Target(
                label=label,
                channel="email",
                district=mail.district,
                min_severity=mail.min_severity,
                escalation=mail.escalation,
                to=tuple(mail.to),
            )
        )
    labels = [t.label for t in targets]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"[alarms] targets configured twice (same name or same URL): {duplicates}")
    return targets


def targets_for(
    targets: Iterable[Target],
    *,
    district_id: str | None,
    severity: str,
    purpose: str,
    round: int,
    escalate_after: int,
    already_told: Sequence[str] = (),
) -> list[Target]:
    """Who gets a message about an alarm of `severity` in `district_id`, for `purpose`.

    Ordinary targets get everything concerning them. Escalation targets get reminders of an
    unacknowledged emergency from round `escalate_after` on, and then also hear how it ended
    (acknowledged, cleared) once they were told (`already_told` labels).
    """
    chosen = []
    for target in targets:
        if not target.concerns(district_id, severity):
            continue
        if target.escalation:
            reminder_due = purpose == "reminder" and round >= escalate_after
            follow_up = purpose in ("acknowledged", "cleared") and target.label in already_told
            if not (reminder_due or follow_up):
                continue
        chosen.append(target)
    return chosen
