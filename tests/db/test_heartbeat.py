"""Worker heartbeats: recorded by a real worker loop, aged out, and ended by a clean stop."""

from __future__ import annotations

from datetime import timedelta

from db import store
from db.models import utcnow
from db.session import session_scope


def test_heartbeats_age_out_and_stop(sessions):
    now = utcnow()
    with session_scope(sessions) as session:
        store.record_heartbeat(session, "a", "cpu", ["jiep"], now=now - timedelta(seconds=60))
        store.record_heartbeat(session, "b", "cuda:0", ["jiep", "retinexnet"], now=now)
    with session_scope(sessions) as session:
        assert [w.worker_id for w in store.live_workers(session, 20, now=now)] == ["b"]
        store.record_heartbeat(session, "a", "cpu", ["jiep"], now=now)  # a beats again: one row, refreshed
        assert [w.worker_id for w in store.live_workers(session, 20, now=now)] == ["a", "b"]
        store.record_worker_stopped(session, "b")
    with session_scope(sessions) as session:
        assert [w.worker_id for w in store.live_workers(session, 20, now=now)] == ["a"]


def test_a_worker_loop_beats_then_says_it_stopped(sessions):
    from engine.worker import Worker, WorkerConfig

    worker = Worker(WorkerConfig(worker_id="beat-test", device="cpu"), sessions=sessions)
    worker._stop.set()  # a stop requested before the first poll: the loop must still leave a clean record
    worker.run()
    with session_scope(sessions) as session:
        assert store.live_workers(session, 60) == []
    Worker(WorkerConfig(worker_id="beat-test", device="cpu"), sessions=sessions).run(until_empty=True)
    with session_scope(sessions) as session:
        from db.models import WorkerRecord

        row = session.get(WorkerRecord, "beat-test")
        assert row is not None and row.device == "cpu" and "jiep" in row.methods
        assert row.stopped_at is not None and row.seen_at <= row.stopped_at
