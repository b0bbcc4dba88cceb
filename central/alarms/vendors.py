"""The group robots' wire formats, signatures and answers (pure: a `Notice` in, a request out).

* **WeCom** (企业微信群机器人): `POST <webhook>?key=...` with `{"msgtype": "markdown", ...}`, or
  `text` with `mentioned_list: ["@all"]` when everyone must be woken (markdown cannot mention).
  Answers `{"errcode": 0, "errmsg": "ok"}`. Markdown content is capped at 4,096 bytes, text at
  2,048. No signing: the key in the URL is the secret.
* **DingTalk** (钉钉自定义机器人): `POST <webhook>?access_token=...` with `{"msgtype": "markdown",
  "markdown": {"title", "text"}, "at": {"isAtAll"}}`. With "加签" security the URL also carries
  `timestamp` (milliseconds) and `sign` = urlencode(base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}"))), valid for an hour. Answers `{"errcode": 0, ...}`.
* **Feishu / Lark** (飞书自定义机器人): `POST <webhook>` with an `interactive` card (coloured header
  by severity, one markdown element). With "签名校验" the body carries `timestamp` (seconds, as a
  string) and `sign` = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")) (the
  string-to-sign is the *key*, the message is empty). Answers `{"code": 0, "msg": "success"}`
  (older robots: `{"StatusCode": 0}`).

Each vendor answers HTTP 200 with an error code in the body for most failures (bad key, bad
signature, rate limit): `accepted` reads it, so a refused message is retried and logged, never
counted as delivered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from central.alarms.messages import Notice

WECOM_MARKDOWN_MAX: Final = 4096
WECOM_TEXT_MAX: Final = 2048
DINGTALK_MAX: Final = 18_000
FEISHU_MAX: Final = 18_000

_WECOM_COLOURS: Final = {"emergency": "warning", "critical": "warning", "warning": "comment"}
_FEISHU_TEMPLATES: Final = {"emergency": "red", "critical": "orange", "warning": "yellow"}


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP POST to make: the URL (with any signature) and the JSON body."""

    url: str
    body: dict[str, Any]

    def encoded(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fit(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 on a character boundary (with an ellipsis)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    cut = raw[: max(0, max_bytes - 3)].decode("utf-8", errors="ignore")
    return cut + "…"


def _markdown_lines(notice: Notice) -> list[str]:
    """The notice's lines as markdown: escaped, the first quoted, the link last."""
    lines = [f"> {_md(line)}" if i == 0 else _md(line) for i, line in enumerate(notice.lines)]
    if notice.link:
        lines.append(f"[{notice.link}]({notice.link})")
    return lines


def wecom(notice: Notice, url: str, *, mention_all: bool = True) -> Request:
    if notice.mention_all and mention_all:
        content = fit(notice.text, WECOM_TEXT_MAX)
        body: dict[str, Any] = {"msgtype": "text", "text": {"content": content, "mentioned_list": ["@all"]}}
        return Request(url, body)
    colour = _WECOM_COLOURS.get(notice.severity, "comment")
    head = f'**<font color="{colour}">{_md(notice.title)}</font>**'
    content = "\n".join([head, *_markdown_lines(notice)])
    return Request(url, {"msgtype": "markdown", "markdown": {"content": fit(content, WECOM_MARKDOWN_MAX)}})


def dingtalk(
    notice: Notice,
    url: str,
    *,
    secret: str | None = None,
    timestamp_ms: int | None = None,
    mention_all: bool = True,
) -> Request:
    at_all = notice.mention_all and mention_all
    lines = [f"### {_md(notice.title)}", *_markdown_lines(notice)]
    if at_all:
        lines.append("@所有人")
    text = fit("\n\n".join(lines), DINGTALK_MAX)
    body = {
        "msgtype": "markdown",
        "markdown": {"title": fit(notice.title, 200), "text": text},
        "at": {"isAtAll": at_all, "atMobiles": [], "atUserIds": []},
    }
    if secret is not None:
        if timestamp_ms is None:
            raise ValueError("a signed DingTalk message needs its timestamp")
        url = dingtalk_signed_url(url, secret, timestamp_ms)
    return Request(url, body)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")), before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    query = urllib.parse.urlencode(
        {"timestamp": str(timestamp_ms), "sign": dingtalk_sign(secret, timestamp_ms)}
    )
    return f"{url}{'&' if '?' in url else '?'}{query}"


def feishu(
    notice: Notice,
    url: str,
    *,
    secret: str | None = None,
    timestamp_s: int | None = None,
    mention_all: bool = True,
) -> Request:
    lines = _markdown_lines(notice)
    if notice.mention_all and mention_all:
        lines.append("<at id=all></at>")
    card = {
        "config": {"wide_screen_mode": True},
        "header": {
            "template": _FEISHU_TEMPLATES.get(notice.severity, "blue"),
            "title": {"tag": "plain_text", "content": fit(notice.title, 500)},
        },
        "elements": [{"tag": "markdown", "content": fit("\n".join(lines), FEISHU_MAX)}],
    }
    body: dict[str, Any] = {"msg_type": "interactive", "card": card}
    if secret is not None:
        if timestamp_s is None:
            raise ValueError("a signed Feishu message needs its timestamp")
        body = {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s), **body}
    return Request(url, body)


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b"")) as Feishu specifies it."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def accepted(vendor: str, status_code: int, body: bytes) -> tuple[bool, str | None]:
    """Whether the robot took the message, and if not, why (from its answer)."""
    if not 200 <= status_code < 300:
        return False, f"HTTP {status_code}: {_snippet(body)}"
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, f"not a JSON answer: {_snippet(body)}"
    if not isinstance(answer, Mapping):
        return False, f"unexpected answer: {_snippet(body)}"
    if vendor in ("wecom", "dingtalk"):
        code, message = answer.get("errcode"), answer.get("errmsg")
    else:
        code = answer.get("code", answer.get("StatusCode"))
        message = answer.get("msg", answer.get("StatusMessage"))
    if code == 0:
        return True, None
    return False, f"{vendor} error {code}: {str(message)[:200]}"


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", errors="replace")


def _md(text: str) -> str:
    """Station-supplied text inside markdown: no links, images or HTML of its own."""
    return text.replace("<", "＜").replace(">", "＞").replace("[", "［").replace("]", "］")
