"""`common.config_files`: reading a TOML file and naming the bad key, for the station and the centre."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from common.config_files import ConfigError, Section, find_config, read_toml, rebased, validate_config


class Inner(Section):
    port: int = Field(1, ge=1, le=65535)


class Outer(Section):
    inner: Inner = Field(default_factory=Inner)
    name: str = "x"


def test_unknown_and_bad_keys_are_named_with_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(Outer, {"inner": {"port": 0, "prot": 1}, "nmae": "y"}, "c.toml", "example.toml")
    text = str(info.value)
    assert "invalid configuration in c.toml" in text
    assert "inner.port:" in text and "inner.prot: unknown key" in text and "nmae: unknown key" in text
    assert "see example.toml" in text


def test_a_huge_bad_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(Outer, {"name": ["x" * 100_000]}, "c.toml", "e")
    assert len(str(info.value)) < 1000


def test_sections_are_frozen() -> None:
    with pytest.raises(PydanticValidationError):
        Outer().name = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe", "not UTF-8"), (b"a = ", "not valid TOML"), (b"[a]\n[a]\n", "not valid TOML")],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_toml(path)


def test_a_missing_file_or_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml(tmp_path)


def test_which_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(None, env={}, env_var="X_CONFIG", default_name="x.toml") is None
    (tmp_path / "x.toml").write_text("", encoding="utf-8")
    assert find_config(None, env={}, env_var="X_CONFIG", default_name="x.toml") == Path("x.toml")
    assert find_config(None, env={"X_CONFIG": "/e.toml"}, env_var="X_CONFIG", default_name="x.toml") == Path(
        "/e.toml"
    )
    assert find_config(Path("a.toml"), env={"X_CONFIG": "/e"}, env_var="X_CONFIG", default_name="x") == Path(
        "a.toml"
    )


def test_relative_paths_follow_the_config_file() -> None:
    assert rebased(Path("var"), Path("/etc/yz")) == Path("/etc/yz/var")
    assert rebased(Path("/abs"), Path("/etc/yz")) == Path("/abs")
    assert rebased(None, Path("/etc/yz")) is None
