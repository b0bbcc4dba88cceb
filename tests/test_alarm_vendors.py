"""What a notification says, and each group robot's wire format and signature (pure functions)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import urllib.parse

from central.alarms import vendors
from central.alarms.messages import AlarmView, compose

RAISED = dt.datetime(2026, 11, 23, 19, 5, 7, tzinfo=dt.UTC)  # 03:05:07 in Beijing


def view(**changes: object) -> AlarmView:
    values: dict[str, object] = {
        "id": 42,
        "kind": "emergency",
        "severity": "emergency",
        "state": "open",
        "station_id": "haidian-012",
        "station_name": "海淀区学院路驿站",
        "district_id": "haidian",
        "address": "学院路 30 号",
        "contact_phone": "010-12345678",
        "raised_at": RAISED,
        "details": {"event_kind": "emergency"},
    }
    values.update(changes)
    return AlarmView(**values)  # type: ignore[arg-type]


def test_an_emergency_says_what_where_when_and_what_to_do_in_chinese() -> None:
    notice = compose(view(), "raised", dashboard_url="https://yizhan.example.org/")
    assert notice.title == "【紧急】驿站告警：海淀区学院路驿站 · 紧急呼叫（驿站内有人按下紧急按钮）"
    text = notice.text
    assert "海淀区学院路驿站（haidian-012）" in text and "学院路 30 号" in text
    assert "2026-11-24 03:05:07" in text  # local time, Asia/Shanghai
    assert "#42" in text and "010-12345678" in text and "请立即联系" in text
    assert notice.link == "https://yizhan.example.org/dashboard/#/stations/haidian-012"
    assert notice.mention_all and "驿站" in text  # DingTalk's keyword security needs it


def test_english_cleared_and_reminder_notices() -> None:
    cleared = compose(
        view(kind="station_offline", severity="critical", cleared_at=RAISED + dt.timedelta(minutes=20)),
        "cleared",
        language="en",
        timezone="UTC",
    )
    assert cleared.title.startswith("[critical] Station alarm cleared: 海淀区学院路驿站 - Station offline")
    assert "Cleared at 2026-11-23 19:25:07" in cleared.text and not cleared.mention_all
    reminder = compose(view(), "reminder", round=3)
    assert "第 3 次提醒：仍无人确认" in reminder.text and reminder.mention_all
    acked = compose(
        view(state="acknowledged", acknowledged_by="liu", note="已电话联系，误按"), "acknowledged"
    )
    assert "liu 已确认：已电话联系，误按" in acked.text and not acked.mention_all


def test_an_event_that_arrives_late_shows_when_it_happened() -> None:
    late = view(details={"occurred_at": (RAISED - dt.timedelta(hours=5)).isoformat()})
    assert "发生时间（驿站时钟）：2026-11-23 22:05:07" in compose(late, "raised").text
    on_time = view(details={"occurred_at": (RAISED - dt.timedelta(seconds=1)).isoformat()})
    assert "发生时间" not in compose(on_time, "raised").text


def test_wecom_markdown_and_mention_all_as_text() -> None:
    warning = compose(view(kind="disk_low", severity="warning"), "raised")
    request = vendors.wecom(warning, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K")
    assert request.body["msgtype"] == "markdown"
    content = request.body["markdown"]["content"]
    assert content.startswith('**<font color="comment">【警告】') and "存储空间不足" in content
    emergency = vendors.wecom(compose(view(), "raised"), "https://x/send?key=K")
    assert emergency.body["msgtype"] == "text" and emergency.body["text"]["mentioned_list"] == ["@all"]
    quiet = vendors.wecom(compose(view(), "raised"), "https://x/send?key=K", mention_all=False)
    assert quiet.body["msgtype"] == "markdown"


def test_wecom_limits_are_bytes_of_utf8() -> None:
    long_view = view(kind="disk_low", severity="warning", details={"detail": "满" * 3000})
    content = vendors.wecom(compose(long_view, "raised"), "https://x").body["markdown"]["content"]
    assert len(content.encode("utf-8")) <= vendors.WECOM_MARKDOWN_MAX
    text = vendors.wecom(compose(view(details={"detail": "满" * 3000}), "raised"), "https://x").body["text"]
    assert len(text["content"].encode("utf-8")) <= vendors.WECOM_TEXT_MAX


def test_dingtalk_signature_is_hmac_sha256_of_timestamp_and_secret() -> None:
    secret, ts = "SEC0123456789abcdef", 1795501867412
    request = vendors.dingtalk(
        compose(view(), "raised"),
        "https://oapi.dingtalk.com/robot/send?access_token=T",
        secret=secret,
        timestamp_ms=ts,
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
    assert query["access_token"] == ["T"] and query["timestamp"] == [str(ts)]
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]  # parse_qs undid the URL encoding of + / =
    body = request.body
    assert body["msgtype"] == "markdown" and body["at"]["isAtAll"] is True
    assert body["markdown"]["text"].startswith("### 【紧急】") and "@所有人" in body["markdown"]["text"]
    unsigned = vendors.dingtalk(
        compose(view(), "raised"), "https://oapi.dingtalk.com/robot/send?access_token=T"
    )
    assert "sign=" not in unsigned.url


def test_feishu_signature_uses_the_string_to_sign_as_the_key() -> None:
    secret, ts = "feishu-secret", 1795501867
    request = vendors.feishu(
        compose(view(), "raised"),
        "https://open.feishu.cn/open-apis/bot/v2/hook/H",
        secret=secret,
        timestamp_s=ts,
    )
    body = request.body
    expected = base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["timestamp"] == str(ts) and body["sign"] == expected
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["template"] == "red" and card["header"]["title"]["content"].startswith("【紧急】")
    assert "<at id=all></at>" in card["elements"][0]["content"]
    json.loads(request.encoded())  # valid JSON, UTF-8 kept as is
    assert "海淀".encode() in request.encoded()


def test_station_text_cannot_inject_markdown_links() -> None:
    hostile = view(
        station_name="[点我](https://evil.example) <script>", details={"detail": "![x](http://e/x.png)"}
    )
    markdown = [
        vendors.wecom(compose(hostile, "raised"), "https://x", mention_all=False).body["markdown"]["content"],
        vendors.dingtalk(compose(hostile, "raised"), "https://x").body["markdown"]["text"],
        vendors.feishu(compose(hostile, "raised"), "https://x").body["card"]["elements"][0]["content"],
    ]
    for text in markdown:  # (titles shown as plain text by the vendors are left as they are)
        assert "](https://evil" not in text and "<script>" not in text and "![x]" not in text
        assert "点我" in text


def test_answers_are_read_from_the_body_not_only_the_status() -> None:
    assert vendors.accepted("wecom", 200, b'{"errcode":0,"errmsg":"ok"}') == (True, None)
    ok, why = vendors.accepted("wecom", 200, b'{"errcode":93000,"errmsg":"invalid webhook url"}')
    assert not ok and "93000" in (why or "")
    assert vendors.accepted("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}')[0] is False
    assert vendors.accepted("feishu", 200, b'{"code":0,"msg":"success"}') == (True, None)
    assert vendors.accepted("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}') == (True, None)
    assert vendors.accepted("feishu", 200, b'{"code":19021,"msg":"sign match fail"}')[0] is False
    assert vendors.accepted("feishu", 502, b"<html>bad gateway</html>")[0] is False
    assert vendors.accepted("wecom", 200, b"not json")[0] is False
    assert vendors.accepted("wecom", 200, b"[1,2]")[0] is False
