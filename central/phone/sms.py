"""One-time codes by SMS: making them, keeping only a MAC of them, and the HTTP gateway that sends them.

China's SMS providers (Aliyun, Tencent Cloud, the carriers' own) each have their own signed API
and approved message templates; unions usually run or rent a small relay in front of one. The
centre therefore speaks one simple, documented HTTP contract (docs/PHONE.md, "SMS gateway") to a
configurable URL: POST JSON, bearer token from `[sms] token_file`, any 2xx is "sent". Without
`[sms] url` there is no gateway and registrations wait for staff approval instead.

Codes are drawn with `secrets` (uniform digits), and the database keeps only
HMAC-SHA256(key, purpose | phone | registration | code) with a key derived from the data key: a
leaked database cannot be searched for a live 6-digit code, and a code for one purpose, number or
registration never verifies for another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from central.config import SmsConfig
from central.store.database import read_secret_file

log = logging.getLogger(__name__)

MAC_PURPOSE = "phone-code"


class SmsError(Exception):
    """The gateway did not accept the message (unreachable, refused, timed out)."""


class SmsSender(Protocol):
    def send(self, *, phone: str, code: str, minutes: int, purpose: str) -> None:
        """Send `code` to `phone`; SmsError when the gateway did not take it."""
        ...


def new_code(length: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def code_mac(key: bytes, *, purpose: str, phone: str, registration_id: str | None, code: str) -> str:
    message = "|".join((purpose, phone, registration_id or "", code)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def code_matches(key: bytes, stored_mac: str, **fields: str | None) -> bool:
    candidate = fields.get("code")
    if not isinstance(candidate, str) or not candidate.isascii() or not candidate.isdigit():
        return False
    expected = code_mac(
        key,
        purpose=str(fields["purpose"]),
        phone=str(fields["phone"]),
        registration_id=fields.get("registration_id"),
        code=candidate,
    )
    return hmac.compare_digest(expected, stored_mac)


@dataclass
class HttpSmsGateway:
    """POSTs `{"phone", "text", "code", "minutes", "purpose"}` as JSON to `[sms] url`."""

    config: SmsConfig

    def __post_init__(self) -> None:
        if self.config.url is None:
            raise ValueError("[sms] url is not set")
        self.url = self.config.url
        # Read once at start: a missing or world-readable token file stops the centre with its reason.
        self.token = (
            read_secret_file(self.config.token_file, "SMS gateway token")
            if self.config.token_file is not None
            else None
        )

    def send(self, *, phone: str, code: str, minutes: int, purpose: str) -> None:
        body = {
            "phone": phone,
            "text": self.config.text.format(code=code, minutes=minutes),
            "code": code,
            "minutes": minutes,
            "purpose": purpose,
        }
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "yizhan-central"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:  # noqa: S310
                status = response.status
                response.read(4096)
        except urllib.error.HTTPError as exc:
            raise SmsError(f"the SMS gateway answered {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SmsError(f"the SMS gateway cannot be reached: {reason}") from None
        if not 200 <= status < 300:
            raise SmsError(f"the SMS gateway answered {status}")
        log.info(
            "sms code sent",
            extra={
                "fields": {"event": "sms_sent", "purpose": purpose, "phone": phone[:3] + "****" + phone[-4:]}
            },
        )


def gateway_from_config(config: SmsConfig) -> SmsSender | None:
    """The configured gateway, or None (registrations then wait for staff approval)."""
    return HttpSmsGateway(config) if config.url is not None else None
