"""The words a station writes into its events (kinds, methods, refusal reasons), read from the
station's source code itself, so the dashboard's translations are checked against what stations
really produce: a new kind or reason in edge/, door/, sync/ or recognizer/ fails the i18n test
until it is translated. Pure AST reading; nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(encoding="utf-8"))


def _module_strings(relative: str, *, only: set[str] | None = None, skip: set[str] = frozenset()) -> set[str]:
    """Module-level NAME = "word" constants (annotated or not)."""
    words: set[str] = set()
    for node in _tree(relative).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        if (
            target is None
            or not target.isupper()
            or (only is not None and target not in only)
            or target in skip
        ):
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.isidentifier():
            words.add(value.value)
    return words


def _literal_alias(relative: str, name: str) -> set[str]:
    """The values of `Name: TypeAlias = Literal[...]`."""
    for node in _tree(relative).body:
        targets = (
            [node.target]
            if isinstance(node, ast.AnnAssign)
            else node.targets
            if isinstance(node, ast.Assign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(node.value, ast.Subscript)  # type: ignore[union-attr]
            values = node.value.slice  # type: ignore[union-attr]
            elts = values.elts if isinstance(values, ast.Tuple) else [values]
            return {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    raise AssertionError(f"{name} not found in {relative}")


def _keyword_constants(folders: tuple[str, ...], keyword: str) -> set[str]:
    """Every `f(..., keyword="word")` in those folders."""
    words: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    for kw in node.keywords:
                        if (
                            kw.arg == keyword
                            and isinstance(kw.value, ast.Constant)
                            and isinstance(kw.value.value, str)
                        ):
                            words.add(kw.value.value)
    return words


def _first_args(folder: str, method: str) -> set[str]:
    """Every `x.method("word", ...)` in that folder (the installer API's audit events)."""
    words: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                words.add(node.args[0].value)
    return words


def _camera_reasons() -> set[str]:
    """The reasons the camera gives for being down (`self._transition("down", "read_failed")`)."""
    words: set[str] = set()
    for node in ast.walk(_tree("edge/camera.py")):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_transition"
        ):
            for arg in node.args[1:]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    words.add(arg.value)
    return words


def event_kinds() -> set[str]:
    kinds = _literal_alias("edge/access.py", "DecisionKind")
    kinds |= _module_strings("door/controller.py")
    kinds |= _keyword_constants(("edge", "door", "sync"), "kind")
    kinds |= _first_args("edge/api", "audit")
    member_kinds = _literal_alias("contract/messages.py", "MemberKind")  # `kind=` of members, not events
    return {k for k in kinds if k.isidentifier()} - member_kinds


def methods() -> set[str]:
    return _literal_alias("edge/access.py", "Method")


def reasons() -> set[str]:
    words = _module_strings("edge/access.py", skip={"SNAPSHOT_VERSION"})
    words |= _module_strings("edge/two_factor.py")
    words |= _module_strings(
        "recognizer/scoring.py", skip={"MODEL_DLIB", "DEFAULT_PRESET", "IDENTIFY", "VERIFY"}
    )
    words |= _module_strings("recognizer/qr_check.py")
    words |= _module_strings("recognizer/qr_token.py", skip={"TOKEN_PREFIX"})
    words |= {v for v in _module_strings("recognizer/results.py")}
    words |= _keyword_constants(("edge", "recognizer", "sync", "door"), "reason") - {""}
    words |= _camera_reasons()
    from recognizer.results import Decision

    words |= {d.value for d in Decision}
    return {w for w in words if w.isidentifier() and w.islower()}
