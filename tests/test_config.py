"""Configuration: defaults work, bad keys and values stop start-up with the key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from edge.config import ConfigError, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_defaults_put_data_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, source = load_config(None, env={})
    assert source == "built-in defaults"
    assert config.storage.data_dir == tmp_path / "var"
    assert config.recognition.preset == "balanced" and config.recognition.threshold is None


def test_env_var_and_cwd_file_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yizhan.toml").write_text('[station]\nstation_id = "from-cwd"\n', encoding="utf-8")
    assert load_config(None, env={})[0].station.station_id == "from-cwd"
    other = write(tmp_path, '[station]\nstation_id = "from-env"\n')
    assert load_config(None, env={"YIZHAN_CONFIG": str(other)})[0].station.station_id == "from-env"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = sub / "y.toml"
    path.write_text(
        '[storage]\ndata_dir = "state"\nkey_file = "k/key"\n[qr]\nmax_clock_skew_s = 5\n', encoding="utf-8"
    )
    config, _ = load_config(path, env={})
    assert config.storage.data_dir == sub.resolve() / "state"
    assert config.storage.key_file == sub.resolve() / "k/key"
    assert config.qr.max_clock_skew_s == 5


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[recognition]\ntreshold = 0.5\n", "recognition.treshold: unknown key"),
        ("[recogniton]\nthreshold = 0.5\n", "recogniton: unknown key"),
        ("[recognition]\nthreshold = 5\n", "recognition.threshold"),
        ("[recognition]\nmin_margin = -0.1\n", "recognition.min_margin"),
        ('[qr]\nmax_clock_skew_s = "lots"\n', "qr.max_clock_skew_s"),
        ("[qr]\nmax_clock_skew_s = 99999\n", "qr.max_clock_skew_s"),
        ('[station]\nstation_id = "a b/c"\n', "station.station_id"),
        ('[logging]\nlevel = "LOUD"\n', "logging.level"),
        ("storage = 3\n", "storage"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert named in str(info.value)
    assert "c.toml" in str(info.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[storage\n"), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(bad, env={})


def test_example_config_is_valid_and_complete() -> None:
    import tomllib

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    data = tomllib.loads(example.read_text(encoding="utf-8"))
    config = parse_config(data, str(example))
    # Every key of every section is documented in the example.
    text = example.read_text(encoding="utf-8")

    def check(model: Any, path: str) -> None:
        nested_only = all(isinstance(value, BaseModel) for _, value in model)
        assert nested_only or f"[{path}]" in text, f"config.example.toml lacks [{path}]"
        for key, value in model:
            if isinstance(value, BaseModel):
                check(value, f"{path}.{key}")
            else:
                # Optional values are documented commented out.
                assert f"\n{key} = " in text or f"\n# {key} = " in text, (
                    f"config.example.toml lacks {path}.{key}"
                )

    for section_name, section in config:
        check(section, section_name)
