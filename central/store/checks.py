"""Input checks the store functions share: each raises `ValidationError` naming the field."""

from __future__ import annotations

import re
from collections.abc import Iterable

from common.errors import ValidationError

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_GROUPS = 32


def identifier(value: object, field: str) -> str:
    """A contract id: 1-64 of A-Za-z0-9 . _ - (and not "." or "..")."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value) or value in (".", ".."):
        raise ValidationError(f"{field} must be 1 to 64 of A-Z a-z 0-9 . _ - (got {str(value)[:80]!r})")
    return value


def text(value: object, field: str, max_length: int, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ValidationError(f"{field} must be 1 to {max_length} characters")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise ValidationError(f"{field} must not contain control characters")
    return value.strip()


def names(values: Iterable[object], field: str, *, max_items: int = MAX_GROUPS) -> list[str]:
    """A list of short names (groups, services), de-duplicated, order kept."""
    out: list[str] = []
    for value in values:
        checked = text(value, field, 64)
        assert checked is not None
        if checked not in out:
            out.append(checked)
    if len(out) > max_items:
        raise ValidationError(f"{field}: at most {max_items} entries")
    return out
