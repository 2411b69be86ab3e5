"""Fixtures of the store tests: every store test runs against SQLite (a temporary file) and PostgreSQL.

PostgreSQL comes from ``TEST_DATABASE_URL`` (``make test`` starts a throw-away server with
``scripts/pg-test-server.sh`` and sets it); each test gets a fresh database on that server, dropped afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.artifacts import ArtifactStore
from db.session import make_engine, make_sessions, migrate

# The test-only methods and the worker entry script live beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

PG_ENV = "TEST_DATABASE_URL"


def _fresh_postgres_database(server_url: str):
    name = f"intrinsic_lab_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request, data_dir, monkeypatch):
    """The URL of an empty database of each backend; DATABASE_URL points at it (for worker processes)."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{data_dir / 'test.sqlite'}", None
    else:
        server = os.environ.get(PG_ENV)
        if not server:
            pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server (`make test` starts one with "
                        f"scripts/pg-test-server.sh when Debian's postgresql package is installed)")
        url, drop = _fresh_postgres_database(server)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    if drop is not None:
        drop()


@pytest.fixture
def db_url(empty_db_url):
    """A migrated database of each backend."""
    migrate(empty_db_url)
    return empty_db_url


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture
def artifacts(data_dir) -> ArtifactStore:
    return ArtifactStore(data_dir / "artifacts")


@pytest.fixture
def make_png():
    """``make_png(seed, size=16)``: a small random 8-bit PNG (each seed a different file)."""
    from engine.imaging import encode_png

    def make(seed: int, size: int = 16) -> bytes:
        rng = np.random.default_rng(seed)
        return encode_png(rng.uniform(0.05, 0.95, (size, size, 3)).astype(np.float32), bit_depth=8)

    return make
