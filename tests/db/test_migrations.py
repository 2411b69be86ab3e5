"""The Alembic migrations: they build exactly the models' schema, and go down and up again, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from db.models import Base
from db.session import alembic_config, current_revision, downgrade, head_revision, make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
TABLES = {"inputs", "jobs", "outputs", "metrics"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_first_revision_is_the_root_later_migrations_build_on():
    # Later migrations (e.g. the benchmark tables) declare down_revision = "0001_initial".
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert scripts.get_revision("0001_initial").down_revision is None
    assert scripts.get_bases() == ["0001_initial"]
    assert len(scripts.get_heads()) == 1, "migrations have branched: give the newer one the right down_revision"


def test_head_revision_builds_exactly_the_models_tables(empty_db_url):
    migrate(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    engine = make_engine(empty_db_url)
    declared = set(Base.metadata.tables)

    def ours(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in declared

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": ours})
            diff = compare_metadata(context, Base.metadata)
        indexes = {i["name"] for i in inspect(engine).get_indexes("jobs")}
        foreign_keys = {fk["referred_table"] for fk in inspect(engine).get_foreign_keys("outputs")}
    finally:
        engine.dispose()
    assert diff == [], f"the migrations and db/models.py disagree: {diff}"
    assert {"ix_jobs_status_created_at", "ix_jobs_method_created_at", "ix_jobs_input_method_params"} <= indexes
    assert foreign_keys == {"jobs"}


def test_upgrade_to_head_downgrade_to_base_and_up_again(empty_db_url):
    assert current_revision(empty_db_url) is None
    migrate(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    assert TABLES <= _tables(empty_db_url)
    downgrade(empty_db_url, "base")
    assert current_revision(empty_db_url) is None
    assert _tables(empty_db_url) <= {"alembic_version"}
    migrate(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    assert TABLES <= _tables(empty_db_url)


def test_python_m_db_migrate_works_from_any_folder(empty_db_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": empty_db_url, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "db", "migrate"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert head_revision() in done.stdout
    status = subprocess.run([sys.executable, "-m", "db", "status"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "0 queued" in status.stdout and "inputs:   0" in status.stdout
    assert "password" not in status.stdout


def test_default_database_is_a_sqlite_file_in_the_data_folder(data_dir):
    from db.session import database_url

    assert database_url() == f"sqlite:///{data_dir / 'intrinsic_lab.sqlite'}"
    migrate()
    assert (data_dir / "intrinsic_lab.sqlite").is_file()
    engine = make_engine()
    try:
        with engine.connect() as connection:
            pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                       for name in ("journal_mode", "foreign_keys", "busy_timeout")}
    finally:
        engine.dispose()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30_000}


def test_migration_0003_builds_the_workers_table_of_the_models(empty_db_url):
    migrate(empty_db_url)
    engine = make_engine(empty_db_url)

    def workers_only(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table == "workers"

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": workers_only})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"migration 0003_workers and db/models.py disagree: {diff}"
    downgrade(empty_db_url, "0002_benchmarks")
    assert "workers" not in _tables(empty_db_url)
