"""Fixtures of the hostile-input tests: a migrated SQLite store in a per-test data folder, test-only methods."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The test-only methods (test_die, test_echo, ...) and the worker entry script live in tests/db.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "db"))


@pytest.fixture
def artifacts(data_dir):
    from db.artifacts import ArtifactStore

    return ArtifactStore()
