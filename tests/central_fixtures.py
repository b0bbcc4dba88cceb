"""Fixtures for the centre: the same tests run on SQLite and on a real PostgreSQL.

`central_db` is parametrized over both databases: a test that takes it (or `central_config`, which
points a configuration at it) runs twice, `[sqlite]` and `[postgresql]`. Each test gets its own
freshly migrated database: on PostgreSQL a copy of a template database migrated once per session
(CREATE DATABASE ... TEMPLATE, a file copy), on SQLite a copy of a migrated file. `central_db_url`
gives an empty database instead, for the migration tests.

Registered in conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_server import PgServer, start_postgres
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig, parse_config
from central.store.database import open_engine, session_factory, upgrade

DATABASES = ("sqlite", "postgresql")


@dataclass
class CentralDb:
    kind: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Per kind, where a migrated database to copy lives (filled on first use)."""
    return {"folder": tmp_path_factory.mktemp("central-templates")}


def _empty_url(kind: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'central.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.url(server.create_database())


@pytest.fixture(params=DATABASES)
def central_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each kind."""
    url = _empty_url(request.param, request, tmp_path)
    drop = _dropper(request, url)
    yield url
    drop()


def _dropper(request: pytest.FixtureRequest, url: str) -> Callable[[], None]:
    """What drops the test's PostgreSQL database after it (a SQLite file goes with tmp_path)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return lambda: None
    server: PgServer = request.getfixturevalue("pg_server")
    name = parsed.database
    return lambda: server.drop_database(name)


@pytest.fixture(params=DATABASES)
def central_db(
    request: pytest.FixtureRequest, tmp_path: Path, _migrated_templates: dict[str, object]
) -> Iterator[CentralDb]:
    """A freshly migrated database of each kind, private to the test."""
    kind = request.param
    folder = _migrated_templates["folder"]
    assert isinstance(folder, Path)
    if kind not in _migrated_templates:
        _migrated_templates[kind] = _make_template(kind, request, folder)
    template = _migrated_templates[kind]
    if kind == "sqlite":
        assert isinstance(template, Path)
        target = tmp_path / "central.db"
        shutil.copyfile(template, target)
        url = f"sqlite:///{target}"
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        assert isinstance(template, str)
        url = server.url(server.create_database(template=template))
    drop = _dropper(request, url)
    engine = open_engine(make_url(url))
    try:
        yield CentralDb(kind, url, engine, session_factory(engine))
    finally:
        engine.dispose()
        drop()


def _make_template(kind: str, request: pytest.FixtureRequest, folder: Path) -> Path | str:
    if kind == "sqlite":
        path = folder / "template.db"
        url = f"sqlite:///{path}"
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        name = server.create_database()
        url = server.url(name)
    engine = open_engine(make_url(url))
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # a template database must have no open connections when copied
    return path if kind == "sqlite" else name


@pytest.fixture
def central_config(central_db: CentralDb, tmp_path: Path) -> CentralConfig:
    """A configuration whose database is `central_db` and whose data lives in `tmp_path`."""
    return parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "database": {"url": central_db.url},
            "mqtt": {"enabled": False},
            "web": {"login_backoff_s": 0.0},
        },
        "test",
    )
