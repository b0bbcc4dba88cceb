"""Loading a process's TOML configuration: find the file, read it, validate it, name the bad key.

The station (`edge.config`) and the centre (`central.config`) each have one typed pydantic model;
this module is the part around it they share. Unknown keys are refused (`Section` forbids extras):
a typo such as `treshold` must stop the process at start, not silently leave the default in force.
Every error is a `ConfigError` whose message names the file and the offending key, so an operator
reading the journal knows what to fix without reading code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the offending key."""


class Section(BaseModel):
    """Base of every configuration section: unknown keys refused, immutable, defaults validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def describe_validation_error(error: ValidationError, source: str, example: str) -> str:
    """One line per problem, each naming the dotted key (`mqtt.port: ...`)."""
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; see {example})")
        else:
            lines.append(f"  {key}: {item['msg']} (got {_shown(item.get('input'))})")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    """The offending value for the message, cut short (a config can hold a pasted megabyte)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def validate_config(model: type[ModelT], data: Mapping[str, Any], source: str, example: str) -> ModelT:
    """`model` validated from a parsed TOML mapping, or `ConfigError` naming every bad key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source, example)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; `ConfigError` when it is unreadable, not UTF-8 or not TOML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None


def find_config(
    path: Path | None, *, env: Mapping[str, str] | None, env_var: str, default_name: str
) -> Path | None:
    """Which file to read: `path`, else `$env_var`, else `./default_name` if present, else None."""
    env = os.environ if env is None else env
    if path is None and env.get(env_var):
        path = Path(env[env_var])
    if path is None and Path(default_name).is_file():
        path = Path(default_name)
    return path


def rebased(path: Path | None, base: Path) -> Path | None:
    """`path` taken relative to `base` (the config file's folder) unless it is absolute or unset.

    Relative paths inside a file are relative to that file's folder, so a config works the same
    whatever directory systemd or an operator starts the process from.
    """
    if path is None or path.is_absolute():
        return path
    return base / path
