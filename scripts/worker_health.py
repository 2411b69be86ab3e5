"""Container health check of a job worker: healthy when a worker on this host sent a heartbeat within the last
60 seconds (workers beat every few seconds, busy or idle). Exit status 0 = healthy, 1 = not."""

import socket
import sys
from datetime import timedelta

from sqlalchemy import select

from db.models import WorkerRecord, utcnow
from db.session import default_sessions, session_scope

with session_scope(default_sessions()) as session:
    since = utcnow() - timedelta(seconds=60)
    host = socket.gethostname()
    alive = session.scalars(select(WorkerRecord.worker_id).where(
        WorkerRecord.worker_id.like(f"{host}:%"), WorkerRecord.seen_at >= since,
        WorkerRecord.stopped_at.is_(None))).first()
sys.exit(0 if alive else 1)
