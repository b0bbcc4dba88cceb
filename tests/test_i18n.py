"""Every word the station can show an installer has a translation in both page languages.

The words are collected from the code itself (its syntax tree), not from a list kept by hand, so a
reason, event kind, method or error code added anywhere without a translation fails here, naming
the word, the key it needs and the file it came from:
- reason.*: refusal and ignore reasons (module-level reason constants of the access rules, two-factor,
  QR checks, token parsing and face scoring; every `reason=` / `reason = "..."` literal; the member
  validity reasons of `MemberInfo.is_valid_at`);
- problem.*: photo and enrolment problems (quality gates, face finding, template selection, the
  enrolment refusal codes the API sends);
- event.*: event kinds (`record(kind=...)`, installer actions, door events, access decisions);
- method.*: how a door decision was taken;
- error.*: every API error code.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import get_args

import pytest

from contract.messages import RosterRequestReason
from edge.access import DecisionKind, Method
from edge.api.schemas import MemberStatus
from edge.enrolment import QUALITY_MESSAGES

ROOT = Path(__file__).resolve().parent.parent
I18N = ROOT / "edge" / "api" / "static" / "i18n"
LANGUAGES = ("zh-CN", "en")
WORD = re.compile(r"^[a-z][a-z0-9_]*$")

#: Modules whose upper-case string constants are reason words (minus the few that are not).
REASON_MODULES = (
    "edge/access.py",
    "edge/two_factor.py",
    "recognizer/qr_check.py",
    "recognizer/qr_token.py",
    "recognizer/scoring.py",
)
NOT_REASONS = {
    "TOKEN_PREFIX",
    "MODEL_DLIB",
    "DEFAULT_PRESET",
    "IDENTIFY",
    "VERIFY",
    "WOULD_MATCH",
    "LOOKALIKE",
}
#: Photo problems: the quality gates, face finding, template selection.
PROBLEM_MODULES = ("recognizer/quality.py", "recognizer/face_pipeline.py", "recognizer/templates.py")
CODE_PACKAGES = ("edge", "recognizer", "door", "sync", "models")


def _files(*roots: str) -> Iterator[Path]:
    for root in roots:
        path = ROOT / root
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _strings(node: ast.AST | None) -> Iterator[str]:
    """String literals a value can be: "x", a or "x", "x" if c else "y"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _strings(value)
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _constants(path: Path, skip: set[str]) -> Iterator[str]:
    for node in _tree(path).body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = _name(node.targets[0]), node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = _name(node.target), node.value
        if target and target.isupper() and target not in skip:
            yield from _strings(value)


def _assigned(tree: ast.AST, wanted: str) -> Iterator[str]:
    """Literals given to a keyword argument or variable named `wanted` (also `a, wanted = x, "w"`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == wanted:
            yield from _strings(node.value)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if _name(target) == wanted:
                    yield from _strings(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for element, value in zip(target.elts, node.value.elts, strict=False):
                        if _name(element) == wanted:
                            yield from _strings(value)


def _calls(tree: ast.AST, names: set[str]) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in names:
            yield node


def reason_words() -> dict[str, str]:
    """Reason word -> where it was found."""
    found: dict[str, str] = {}
    for module in REASON_MODULES:
        for word in _constants(ROOT / module, NOT_REASONS):
            found.setdefault(word, module)
    problem_files = {ROOT / m for m in PROBLEM_MODULES}
    for path in _files(*CODE_PACKAGES):
        if path in problem_files:
            continue
        for word in _assigned(_tree(path), "reason"):
            found.setdefault(word, str(path.relative_to(ROOT)))
    # MemberInfo.is_valid_at: (False, "member_...") and f"member_{status}" for every status.
    roster = ROOT / "recognizer/roster.py"
    statuses = [s for s in get_args(MemberStatus) if s != "active"]
    for node in ast.walk(_tree(roster)):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2:
            reason = node.value.elts[1]
            found.update({word: "recognizer/roster.py" for word in _strings(reason)})
            if isinstance(reason, ast.JoinedStr):
                prefix = "".join(_strings(reason.values[0])) if reason.values else ""
                found.update({prefix + status: "recognizer/roster.py" for status in statuses})
    # Why the station asks the centre for the roster: words on the wire, never on a screen.
    wire_only = set(get_args(RosterRequestReason))
    return {w: where for w, where in found.items() if WORD.match(w) and w not in wire_only}


def problem_words() -> dict[str, str]:
    found: dict[str, str] = {}
    for module in PROBLEM_MODULES:
        path = ROOT / module
        for word in [*_constants(path, set()), *_assigned(_tree(path), "reason")]:
            found.setdefault(word, module)
    # The enrolment refusal codes the API sends ({"code": "...", ...} in classify_problem).
    enrol = ROOT / "edge/api/routers/enrol.py"
    for node in ast.walk(_tree(enrol)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=False):
                if isinstance(key, ast.Constant) and key.value == "code":
                    found.update({w: "edge/api/routers/enrol.py" for w in _strings(value)})
    # ... and the finding codes it maps refusal phrases to (`_FINDING_CODES`'s values).
    for node in ast.walk(_tree(enrol)):
        if isinstance(node, ast.Assign) and any(_name(t) == "_FINDING_CODES" for t in node.targets):
            if isinstance(node.value, ast.Dict):
                for value in node.value.values:
                    found.update({w: "edge/api/routers/enrol.py" for w in _strings(value)})
    found.update({w: "edge/enrolment.py" for w in QUALITY_MESSAGES})
    return {w: where for w, where in found.items() if WORD.match(w)}


def event_kinds() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in _files(*CODE_PACKAGES):
        tree = _tree(path)
        where = str(path.relative_to(ROOT))
        for call in _calls(tree, {"record", "record_event", "audit", "DoorEvent"}):
            first = call.args[:1] if _name(call.func) in ("audit", "DoorEvent") else []
            for value in [*first, *(k.value for k in call.keywords if k.arg == "kind")]:
                found.update({w: where for w in _strings(value)})
    for word in _constants(ROOT / "door/controller.py", set()):
        found.setdefault(word, "door/controller.py")
    decided = get_args(DecisionKind)
    found.update({k: "edge/access.py" for k in decided if k != "ignored"})  # "ignored" is never stored
    return {w: where for w, where in found.items() if WORD.match(w)}


def method_words() -> dict[str, str]:
    found = {m: "edge/access.py" for m in get_args(Method)}
    for path in _files(*CODE_PACKAGES):
        tree = _tree(path)
        for word in _assigned(tree, "method"):
            found.setdefault(word, str(path.relative_to(ROOT)))
        for call in _calls(tree, {"DoorEvent"}):  # DoorEvent(kind, method, ...)
            for word in _strings(call.args[1] if len(call.args) > 1 else None):
                found.setdefault(word, str(path.relative_to(ROOT)))
    return {w: where for w, where in found.items() if WORD.match(w)}


def error_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in _files("edge/api", "common"):  # common/: the login and error code shared with the centre
        tree = _tree(path)
        where = str(path.relative_to(ROOT))
        for call in _calls(tree, {"ApiError", "_respond", "error_body", "LoginRefused"}):
            values: Iterable[ast.AST] = [
                *call.args[2:3],
                *(k.value for k in call.keywords if k.arg == "code"),
            ]
            for value in values:
                found.update({w: where for w in _strings(value)})
        found.update({w: where for w in _assigned(tree, "code")})
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_code"):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return):
                        found.update({w: where for w in _strings(ret.value)})
            if isinstance(node, ast.Assign) and any(
                (_name(t) or "").endswith("_CODES") for t in node.targets
            ):
                if isinstance(node.value, ast.Dict):
                    for value in node.value.values:
                        found.update({w: where for w in _strings(value)})
    # Image refusals carry their own word (recognizer.images.ImageError(code=...)).
    for call in _calls(_tree(ROOT / "recognizer/images.py"), {"ImageError"}):
        for keyword in call.keywords:
            if keyword.arg == "code":
                found.update({w: "recognizer/images.py" for w in _strings(keyword.value)})
    return {w: where for w, where in found.items() if WORD.match(w)}


GROUPS = {
    "reason": reason_words,
    "problem": problem_words,
    "event": event_kinds,
    "method": method_words,
    "error": error_codes,
}


@functools.cache
def _words(group: str) -> dict[str, str]:
    return GROUPS[group]()


def load(language: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((I18N / f"{language}.json").read_text(encoding="utf-8"))
    return data


def test_the_collector_finds_what_it_must() -> None:
    """The collector itself: known words from each kind of source (a collector finding nothing
    would make the translation test pass vacuously)."""
    reasons = reason_words()
    expected = "unknown_face face_mismatch wrong_station wrong_group expired replayed low_margin cooldown"
    for word in [*expected.split(), "member_suspended", "member_expired", "member_not_yet_valid"]:
        assert word in reasons, word
    problems = problem_words()
    for word in ("face_too_small", "no_face", "same_person", "lookalike", "not_same_person", "several_faces"):
        assert word in problems, word
    kinds = event_kinds()
    for word in (
        "entry",
        "refused",
        "emergency",
        "member_created",
        "station_started",
        "lockout",
        "camera_up",
    ):
        assert word in kinds, word
    assert {"face", "qr", "qr_face", "remote", "exit_button"} <= set(method_words())
    errors = error_codes()
    for word in (
        "bad_credentials",
        "slow_down",
        "locked_out",
        "name_mismatch",
        "not_found",
        "bad_body",
        "too_many_pixels",
    ):
        assert word in errors, word


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_word_the_code_can_produce_is_translated(language: str, group: str) -> None:
    texts = load(language)
    words = _words(group)
    missing = {f"{group}.{w}": where for w, where in sorted(words.items()) if not texts.get(f"{group}.{w}")}
    assert not missing, f"{language}.json lacks translations for: {missing}"


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    zh, en = load("zh-CN"), load("en")
    assert set(zh) == set(en), {"only zh-CN": sorted(set(zh) - set(en)), "only en": sorted(set(en) - set(zh))}
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_chinese_texts_are_chinese() -> None:
    """A reason left in English in zh-CN.json (copied across) is as bad as a missing one."""
    zh = load("zh-CN")
    untranslated = [
        key
        for key, text in zh.items()
        if key.split(".")[0] in GROUPS
        and re.sub(r"\{\w+\}", "", text).strip()  # "{text}": the station's own words, passed on
        and not re.search(r"[\u4e00-\u9fff]", text)
    ]
    assert not untranslated, untranslated
