"""`yizhan calibrate --faces DIR`: the door's operating point measured on a station's own people.

The presets were measured on our labelled faces; a station's staff are other faces, often all from
one population. Calibrating runs the very procedure behind the presets
(`recognizer.calibration.choose_operating_point`, settings of the chosen preset) on photos the
deployer labelled (people/<id>/*, unknown/*; see `edge.faceset`) with the configured face model and
the station's own pipelines, and writes:

- the operating point file (JSON): the policy's numbers, how they were chosen, and the figures
  measured with it on those photos (members let in / asked for the pass, false accepts, with Wilson
  intervals; in-sample, i.e. the numbers reproduce exactly), plus the leave-identity-out estimate
  (each person judged by numbers chosen without them: what to expect for a new face);
- the config lines that make the station use it: `[recognition] operating_point = "<file>"`.

The file holds numbers only, never encodings: staff faces stay where they are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recognizer.calibration import (
    PRESET_SETTINGS,
    CalibrationError,
    Choice,
    Roster,
    Sample,
    by_identity,
    choose_operating_point,
    enrollable,
    leave_identity_out,
    policies_by_identity,
    run_trials,
    summarise,
)
from recognizer.scoring import ScoringPolicy

FORMAT = "yizhan-operating-point"
FORMAT_VERSION = 1


class OperatingPointError(ValueError):
    """An operating point file that cannot be used; the message names the file and why."""


def trial_rosters(samples: Sequence[Sample]) -> list[Roster]:
    """Everyone enrolled (strangers are the impostors), and each person alone (everyone else is)."""
    members = tuple(sorted(i for i, items in by_identity(samples).items() if enrollable(items)))
    return [Roster("all", members)] + [Roster(f"only:{m}", (m,)) for m in members]


def measure(samples: Sequence[Sample], policy: ScoringPolicy, *, sizes: Sequence[int]) -> dict[str, Any]:
    """The figures of `policy` on `samples` (`trial_rosters`), per enrolment size."""
    rosters = trial_rosters(samples)
    out: dict[str, Any] = {}
    for size in sizes:
        outcomes = run_trials(samples, rosters, lambda _identity: policy, size=size, frames=policy.min_frames)
        out[str(size)] = summarise(outcomes)
    return out


def calibrate(
    samples: Sequence[Sample],
    *,
    model: str,
    preset: str = "balanced",
    sizes: Sequence[int] = (1, 3),
) -> dict[str, Any]:
    """Choose the operating point on `samples` and measure it (in sample and leave-identity-out)."""
    settings = PRESET_SETTINGS[preset]
    choice: Choice = choose_operating_point(
        samples,
        settings,
        model=model,
        name=f"calibrated-{preset}",
        description=f"calibrated on the station's own labelled faces with the {preset!r} settings",
    )
    policy = choice.policy
    lio = leave_identity_out(samples, settings, model=model, name=policy.name)
    policy_for = policies_by_identity(lio)
    members = tuple(sorted(i for i, items in by_identity(samples).items() if enrollable(items)))
    held_out: dict[str, Any] = {}
    for size in sizes:
        outcomes = run_trials(
            samples, trial_rosters(samples), policy_for, size=size, frames=settings.min_frames
        )
        held_out[str(size)] = summarise(outcomes)
    return {
        "policy": policy,
        "choice": choice.details,
        "measured": measure(samples, policy, sizes=sizes),
        "leave_identity_out": held_out,
        "identities": len(by_identity(samples)),
        "members": len(members),
    }


def operating_point_json(result: dict[str, Any], *, faces: Path, photos: int) -> dict[str, Any]:
    policy: ScoringPolicy = result["policy"]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "faces": str(faces),
        "photos": photos,
        "identities": result["identities"],
        "members": result["members"],
        "policy": policy.to_json(),
        "choice": result["choice"],
        "measured": result["measured"],
        "leave_identity_out": result["leave_identity_out"],
    }


def write_operating_point(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (a half-written file must never be what the door loads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_operating_point(path: Path, *, model: str) -> ScoringPolicy:
    """The policy in an operating point file, refused when it is not one or is for another model."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OperatingPointError(
            f"{path}: cannot read the operating point ({exc.strerror or exc})"
        ) from None
    except ValueError as exc:
        raise OperatingPointError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise OperatingPointError(f"{path}: not a yizhan operating point (written by `yizhan calibrate`)")
    if document.get("version") != FORMAT_VERSION:
        raise OperatingPointError(
            f"{path}: operating point version {document.get('version')!r} is not supported"
        )
    data = document.get("policy")
    if not isinstance(data, dict):
        raise OperatingPointError(f"{path}: no policy in the operating point")
    try:
        policy = ScoringPolicy.from_json(data)
    except (TypeError, ValueError) as exc:
        raise OperatingPointError(f"{path}: the operating point's numbers are not usable: {exc}") from None
    if policy.model != model:
        raise OperatingPointError(
            f"{path}: measured for face model {policy.model!r}, the station uses {model!r}: calibrate again"
        )
    return policy


def config_snippet(path: Path) -> str:
    return f'[recognition]\noperating_point = "{path}"\n'


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What the installer reads: the numbers and the figures behind them."""
    policy = document["policy"]
    lines = [
        f"operating point for {policy['model']} from {document['identities']} people "
        f"({document['members']} enrollable), {document['photos']} photos:",
        f"  face alone under {policy['accept_distance']} over {policy['min_frames']} agreeing frames; "
        f"asks for the pass up to {policy['grey_distance']}",
        f"  enrolment: same person <= {policy['same_person_distance']}, lookalike <= "
        f"{policy['lookalike_distance']}, review <= {policy['review_distance']}",
    ]
    for label, key in (("on these photos", "measured"), ("leave-one-person-out", "leave_identity_out")):
        for size, figures in document[key].items():
            part = figures["all"]
            rate = part["let_in_rate"]
            value = "-" if rate["value"] is None else f"{100 * rate['value']:.1f}%"
            low, high = rate["wilson95"]
            lines.append(
                f"  {label}, {size} photo(s): members let in {part['let_in']}/{part['genuine']} ({value}, "
                f"95% {100 * low:.1f}-{100 * high:.1f}%), asked for the pass {part['asked_for_pass']}, "
                f"false accepts {part['false_accepts']} of {part['genuine'] + part['impostor']} trials"
            )
    if document["identities"] < 20:
        lines.append(
            "  warning: fewer than 20 people: these figures rest on few pairs; label more people "
            "before trusting them"
        )
    return lines


__all__ = [
    "CalibrationError",
    "OperatingPointError",
    "calibrate",
    "config_snippet",
    "load_operating_point",
    "measure",
    "operating_point_json",
    "summary_lines",
    "write_operating_point",
]
