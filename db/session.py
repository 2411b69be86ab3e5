"""Where the database is, how to connect, one transaction per user action, and migrations.

Nothing connects at import time: :func:`make_engine` builds an engine from a URL when asked, and
:func:`default_sessions` caches one session factory per URL for the processes that need a long-lived one
(the dashboard, the worker).

>>> with session_scope() as session:            # doctest: +SKIP
...     job = store.enqueue_job(session, input_id, "jiep", params)
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DATA_ENV = "INTRINSIC_LAB_DATA"
URL_ENV = "DATABASE_URL"
SQLITE_FILENAME = "intrinsic_lab.sqlite"
#: How long an SQLite connection waits for another writer before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def data_dir() -> Path:
    """The data folder (database file and artifacts): ``$INTRINSIC_LAB_DATA``, else ``./data``."""
    return Path(os.environ.get(DATA_ENV) or "data").resolve()


def database_url() -> str:
    """``$DATABASE_URL`` if set, else an SQLite file in the data folder."""
    url = os.environ.get(URL_ENV)
    if url:
        return url
    return f"sqlite:///{data_dir() / SQLITE_FILENAME}"


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # WAL lets the dashboard read while a worker writes; busy_timeout makes concurrent writers wait for each
    # other instead of failing; SQLite leaves foreign keys off unless asked on every connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a power cut may lose the last commit only
    cursor.close()


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """A new engine for ``url`` (default: :func:`database_url`). SQLite files get their folder created."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects returned from a finished session_scope stay readable (pages render them).
    return sessionmaker(bind=engine, expire_on_commit=False)


_default_lock = threading.Lock()
_default_sessions: dict[str, sessionmaker[Session]] = {}


def default_sessions(url: str | None = None) -> sessionmaker[Session]:
    """One cached session factory per URL for this process (built on first use, never at import)."""
    url = url or database_url()
    with _default_lock:
        if url not in _default_sessions:
            _default_sessions[url] = make_sessions(make_engine(url))
        return _default_sessions[url]


@contextmanager
def session_scope(sessions: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back if it raises."""
    session = (sessions or default_sessions())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- migrations ---------------------------------------------------------------------------------------------

def alembic_config(url: str | None = None):
    """An Alembic config built in code, so migrations run from any working directory."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: ini interpolation would mangle '%' in escaped passwords.
    config.attributes["url"] = url or database_url()
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (a new SQLite file and its folder are created)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def masked_url(url: str | None = None) -> str:
    """The URL with any password hidden, for logs and status lines."""
    return make_url(url or database_url()).render_as_string(hide_password=True)
