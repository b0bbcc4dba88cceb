"""The error bases every store raises (the station's `models`, the centre's `central.store`).

They live here, below both, because the pieces the two stores share (`common.template_cipher`)
raise them, and because callers map them the same way everywhere: a `ValidationError` is refused
input (CLI exit 2, HTTP 422), any other `StoreError` means stored data cannot be used (exit 3).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by a store: the stored data cannot be used as asked."""


class ValidationError(StoreError, ValueError):
    """Input refused before it reached the database; the message names the offending field."""
