"""A migrated store per test and a tiny MIT-layout dataset with known ground truth."""

from __future__ import annotations

import pytest

from benchmark.tiny_data import write_tiny_mit


@pytest.fixture
def bench_store(data_dir):
    from db.artifacts import ArtifactStore
    from db.session import make_engine, make_sessions, migrate

    migrate()
    engine = make_engine()
    yield make_sessions(engine), ArtifactStore()
    engine.dispose()


@pytest.fixture
def tiny_mit(tmp_path):
    return write_tiny_mit(tmp_path / "mit")
