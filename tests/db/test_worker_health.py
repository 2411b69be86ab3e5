"""The container health check of a worker (scripts/worker_health.py) on a real store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from db import store
from db.models import utcnow
from db.session import session_scope

REPO = Path(__file__).resolve().parents[2]


def _health(db_url: str) -> int:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "scripts/worker_health.py"], cwd=REPO, env=env, timeout=60).returncode


def test_healthy_only_with_a_recent_heartbeat_from_this_host(sessions, db_url):
    assert _health(db_url) == 1  # no worker yet
    host = socket.gethostname()
    with session_scope(sessions) as session:
        store.record_heartbeat(session, f"{host}:1:cpu", "cpu", ["jiep"])
    assert _health(db_url) == 0
    with session_scope(sessions) as session:
        store.record_heartbeat(session, f"{host}:1:cpu", "cpu", ["jiep"], now=utcnow() - timedelta(minutes=5))
    assert _health(db_url) == 1
