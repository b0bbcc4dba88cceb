"""pyproject.toml uses the metadata forms current setuptools accepts without deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_license_is_an_spdx_string_and_setuptools_knows_it() -> None:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    # `license = { text = ... }` is deprecated since setuptools 77 (a warning on every build, an
    # error after 2027-02-18); the SPDX string form needs setuptools >= 77 to build.
    assert isinstance(data["project"]["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.+-]+", data["project"]["license"])
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert minimum and int(minimum.group(1)) >= 77
    assert not any("License ::" in c for c in data["project"].get("classifiers", []))
