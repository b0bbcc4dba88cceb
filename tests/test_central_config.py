"""The centre's configuration: defaults that run on a laptop, every key documented, bad input named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from central.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_run_on_a_laptop_with_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    config = parse_config({"storage": {"data_dir": "d"}}, "t", tmp_path)
    assert config.storage.data_dir == tmp_path / "d"
    assert str(config.database_url) == f"sqlite:///{(tmp_path / 'd' / 'central.db').resolve()}"
    assert (config.mqtt.host, config.mqtt.port, config.web.host, config.web.port) == (
        "127.0.0.1",
        1883,
        "127.0.0.1",
        8090,
    )
    assert config.mqtt.effective_client_id(2).endswith("-2")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://yz@db/yizhan", "postgresql+psycopg"),
        ("postgres://yz@db/yizhan", "postgresql+psycopg"),
        ("postgresql+psycopg://yz@db:5433/yizhan", "postgresql+psycopg"),
        ("sqlite:////var/lib/c.db", "sqlite"),
    ],
)
def test_database_urls_are_normalised(url: str, driver: str) -> None:
    assert parse_config({"database": {"url": url}}).database_url.drivername == driver


def test_a_relative_sqlite_url_follows_the_config_file(tmp_path: Path) -> None:
    config = parse_config({"database": {"url": "sqlite:///db/c.db", "password_file": "pw"}}, "t", tmp_path)
    assert config.database_url.database == str(tmp_path / "db" / "c.db")
    assert config.database.password_file == tmp_path / "pw"


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"databse": {}}, "databse", "unknown key"),
        ({"web": {"prot": 1}}, "web.prot", "unknown key"),
        ({"web": {"port": 0}}, "web.port", "greater than or equal to 1"),
        ({"mqtt": {"port": 70000}}, "mqtt.port", ""),
        ({"mqtt": {"shared_group": "a/b"}}, "mqtt.shared_group", ""),
        ({"mqtt": {"ca_file": "ca.pem"}}, "mqtt", "tls = false"),
        ({"mqtt": {"tls": True, "cert_file": "c.pem"}}, "mqtt", "go together"),
        ({"database": {"url": "mysql://x@y/z"}}, "database.url", "not supported"),
        ({"database": {"url": "postgresql+psycopg2://x@y/z"}}, "database.url", "psycopg 3"),
        ({"database": {"url": "sqlite://"}}, "database.url", "file path"),
        ({"database": {"url": "sqlite:///:memory:"}}, "database.url", "file path"),
        ({"database": {"url": "not a url at all"}}, "database.url", "not a database URL"),
        ({"database": {"pool_size": 10**9}}, "database.pool_size", ""),
        ({"web": {"public_url": "javascript:alert(1)"}}, "web.public_url", ""),
        ({"web": {"login_lockout_s": float("nan")}}, "web.login_lockout_s", ""),
        ({"alarms": {"webhooks": [{"format": "wecom"}]}}, "alarms.webhooks.0", "exactly one of url"),
        ({"alarms": {"webhooks": [{"format": "slack", "url": "https://x"}]}}, "alarms.webhooks.0.format", ""),
        (
            {"alarms": {"webhooks": [{"format": "wecom", "url": "https://x", "urll": 1}]}},
            "alarms.webhooks.0.urll",
            "unknown key",
        ),
        (
            {"alarms": {"webhooks": [{"format": "feishu", "url": "https://x", "district": "../x"}]}},
            "alarms.webhooks.0.district",
            "",
        ),
        ({"alarms": {"email": [{"to": ["duty@x.org"]}]}}, "alarms", "needs [alarms.smtp]"),
        (
            {"alarms": {"email": [{"to": ["not an address"]}], "smtp": {"host": "h", "sender": "a@b"}}},
            "alarms.email.0.to",
            "e-mail",
        ),
        ({"sms": {"code_length": 2}}, "sms.code_length", ""),
        ({"snapshots": {"retention_days": -1}}, "snapshots.retention_days", ""),
        ({"logging": {"level": "LOUD"}}, "logging.level", ""),
        ({"storage": []}, "storage", ""),
    ],
)
def test_bad_values_are_refused_naming_the_key(data: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "c.toml")
    text = str(info.value)
    assert f"  {key}" in text and words in text and text.startswith("invalid configuration in c.toml")


def test_config_files_are_found_and_bad_files_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config, source = load_config(env={})
    assert source == "built-in defaults" and config.storage.data_dir == tmp_path / "var-central"
    path = tmp_path / "c.toml"
    path.write_text('[web]\nport = 9000\n[storage]\ndata_dir = "data"\n', encoding="utf-8")
    config, source = load_config(env={"YIZHAN_CENTRAL_CONFIG": str(path)})
    assert config.web.port == 9000 and source == str(path) and config.storage.data_dir == tmp_path / "data"
    path.write_bytes(b"[web\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_example_config_is_valid_and_complete() -> None:
    example = ROOT / "central.example.toml"
    text = example.read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text), str(example))
    assert config == parse_config({}), "the example's values must be the defaults"

    def check(model: Any, path: str) -> None:
        assert f"[{path}]" in text, f"central.example.toml lacks [{path}]"
        for key, value in model:
            if isinstance(value, BaseModel):
                check(value, f"{path}.{key}")
            else:
                assert f"\n{key} = " in text or f"\n# {key} = " in text, (
                    f"central.example.toml lacks {path}.{key}"
                )

    for name, section in config:
        check(section, name)
