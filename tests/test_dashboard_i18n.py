"""The dashboard speaks zh-CN and English completely: both dictionaries have the same keys, every
key the page uses exists, and every word a station can write into an event (kind, method, refusal
reason: read from the station's own source by tests/station_vocabulary.py) and every audit action
the centre records has a translation. A new word anywhere fails here until it is translated."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import station_vocabulary

from central.store.tables import MEMBER_KINDS, MEMBER_STATUSES, STAFF_ROLES

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "central" / "web" / "static"
LANGS = ("zh-CN", "en")
ALARM_KINDS = (
    "emergency",
    "door_forced",
    "door_held_open",
    "tamper",
    "camera_down",
    "station_offline",
    "disk_low",
    "clock_wrong",
    "repeated_refusals",
    "lockout",
)  # fmt: skip  (CENTRE-PLAN, alarms)


def dictionary(lang: str) -> dict[str, str]:
    data = json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def page_sources() -> dict[Path, str]:
    files = [STATIC / "index.html", *sorted((STATIC / "js").rglob("*.js"))]
    return {path: path.read_text(encoding="utf-8") for path in files}


def test_both_languages_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = dictionary("zh-CN"), dictionary("en")
    assert set(zh) == set(en), sorted(set(zh) ^ set(en))
    for lang, words in (("zh-CN", zh), ("en", en)):
        empty = [k for k, v in words.items() if not isinstance(v, str) or not v.strip()]
        assert not empty, (lang, empty)
    placeholders = re.compile(r"\{(\w+)\}")
    differing = [k for k in zh if set(placeholders.findall(zh[k])) != set(placeholders.findall(en[k]))]
    assert not differing, differing
    assert sum(1 for k in zh if re.search(r"[\u4e00-\u9fff]", zh[k])) > 0.8 * len(zh)  # really Chinese


def test_every_key_the_page_uses_exists() -> None:
    words = dictionary("zh-CN")
    static = re.compile(
        r"""\btr?\(\s*"([a-z0-9_.]+)"|data-i18n(?:-placeholder|-aria-label)?="([a-z0-9_.]+)"|"""
        r"""\?\s*"([a-z0-9_]+\.[a-z0-9_.]+)"\s*:\s*"([a-z0-9_]+\.[a-z0-9_.]+)\""""
    )
    missing = []
    for path, text in page_sources().items():
        for match in static.finditer(text):
            for key in filter(None, match.groups()):
                if key not in words:
                    missing.append(f"{path.relative_to(STATIC)}: {key}")
    assert not missing, missing
    # Keys built from a prefix at run time: every prefix has keys.
    for path, text in page_sources().items():
        for prefix in re.findall(r"\btr?\(`([a-z0-9_.]+)\.\$\{", text):
            assert any(k.startswith(prefix + ".") for k in words), f"{path.name}: no {prefix}.* keys"


@pytest.mark.parametrize("lang", LANGS)
def test_every_station_word_is_translated(lang: str) -> None:
    words = dictionary(lang)
    kinds, methods, reasons = (
        station_vocabulary.event_kinds(),
        station_vocabulary.methods(),
        station_vocabulary.reasons(),
    )
    assert {"entry", "refused", "emergency", "door_forced", "camera_down"} <= kinds  # the reader works
    assert {"unknown_face", "expired", "face_mismatch", "over_threshold", "read_failed"} <= reasons
    missing = (
        [f"event.{k}" for k in sorted(kinds) if f"event.{k}" not in words]
        + [f"method.{m}" for m in sorted(methods) if f"method.{m}" not in words]
        + [f"reason.{r}" for r in sorted(reasons) if f"reason.{r}" not in words]
    )
    assert not missing, f"{lang}: translate {missing}"


def test_the_vocabulary_reader_sees_a_new_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "x.py").write_text("recorder.record(kind='brand_new_kind')\n", encoding="utf-8")
    monkeypatch.setattr(station_vocabulary, "ROOT", tmp_path)
    assert station_vocabulary._keyword_constants(("edge",), "kind") == {"brand_new_kind"}


@pytest.mark.parametrize("lang", LANGS)
def test_roles_statuses_kinds_and_alarms_are_translated(lang: str) -> None:
    words = dictionary(lang)
    expected = (
        [f"role.{r}" for r in STAFF_ROLES]
        + [f"status.{s}" for s in MEMBER_STATUSES]
        + [f"kind.{k}" for k in MEMBER_KINDS]
        + [f"alarm.{k}" for k in ALARM_KINDS]
    )
    assert not [k for k in expected if k not in words]


def _audit_actions() -> set[str]:
    """Every action the centre writes to its audit log (`action="..."` and the members router's
    `_audit(db, staff, "...", ...)`)."""
    actions: set[str] = set()
    for path in (ROOT / "central").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "record":
                for kw in node.keywords:
                    if kw.arg == "action" and isinstance(kw.value, ast.Constant):
                        actions.add(kw.value.value)
            elif name == "_audit" and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                actions.add(node.args[2].value)
    return actions


@pytest.mark.parametrize("lang", LANGS)
def test_every_audit_action_is_translated(lang: str) -> None:
    actions = _audit_actions()
    assert {"member_erased", "staff_created", "station_updated", "pass_issued"} <= actions
    words = dictionary(lang)
    assert not [a for a in sorted(actions) if f"action.{a}" not in words]
