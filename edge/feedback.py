"""Which signal the worker at the door gets for a recorded decision (pure; `door.feedback` plays it).

  granted    an entry (face, pass, two-factor, a remote opening) or an exit through a reader
  show_pass  the face was not recognised: a pass always works ("face is never the only way in")
  locked     refused because this face, member or pass is locked out (or a lockout just started)
  refused    every other refusal (expired or revoked pass, suspended member, closed, ...)

The exit button, door alarms and repeats get no signal: the person is leaving, or nobody is
waiting for an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from door.config import SIGNALS

_CREDENTIALS = frozenset({"face", "qr", "qr_face"})


def signal_for(event: Mapping[str, Any]) -> str | None:
    """The signal for a recorded event (its JSON), or None."""
    kind, method, reason = event.get("kind"), event.get("method"), event.get("reason")
    signal: str | None = None
    if kind == "entry" and (method in _CREDENTIALS or method == "remote"):
        signal = "granted"
    elif kind == "exit" and method in _CREDENTIALS:
        signal = "granted"
    elif kind == "lockout" or (kind == "refused" and reason == "lockout"):
        signal = "locked"
    elif kind == "refused" and reason == "unknown_face":
        signal = "show_pass"
    elif kind == "refused":
        signal = "refused"
    assert signal is None or signal in SIGNALS
    return signal
