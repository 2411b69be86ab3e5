"""Public-mode store functions on SQLite and PostgreSQL: who sees what, votes, and a purge that leaves no orphan
file and no dangling row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db import sharing, store
from db.models import Input, InputOwner, Job, Output, Vote, utcnow
from db.session import session_scope


def _input(session, png: bytes, artifacts, name="a.png"):
    return store.get_or_create_input(session, [png], "image", name, 16, 16, artifacts=artifacts)


def _finished_job(session, input_id: int, artifacts, data: bytes, method="jiep") -> Job:
    job = store.enqueue_job(session, input_id, method, {"x": 1})
    job.status = "succeeded"
    key = artifacts.put(data)
    session.add(Output(job_id=job.id, layer="reflectance", artifact_key=key, kind="image", meta={}))
    session.flush()
    return job


def test_visitors_see_only_their_own_inputs_and_published_ones(sessions, artifacts, make_png):
    with session_scope(sessions) as session:
        mine = _input(session, make_png(1), artifacts)
        theirs = _input(session, make_png(2), artifacts)
        sharing.add_owner(session, mine.id, "visitor-a", keep_for=timedelta(hours=1))
        sharing.add_owner(session, theirs.id, "visitor-b", keep_for=timedelta(hours=1))
        ids = (mine.id, theirs.id)
    with session_scope(sessions) as session:
        assert sharing.can_see(session, ids[0], "visitor-a") and not sharing.can_see(session, ids[1], "visitor-a")
        assert sharing.can_see(session, ids[1], None)  # team mode / admin
        visible = set(session.scalars(select(Input.id).where(sharing.visible_filter("visitor-a"))))
        assert visible == {ids[0]}
        sharing.set_published(session, ids[1], True)
    with session_scope(sessions) as session:
        assert sharing.can_see(session, ids[1], "visitor-a")
        assert session.get(Input, ids[1]).expires_at is None  # a published example is kept


def test_purge_removes_expired_rows_and_only_their_files(sessions, artifacts, make_png):
    shared_output = make_png(30)  # the same layer bytes in an expired and a kept result
    with session_scope(sessions) as session:
        old = _input(session, make_png(10), artifacts, "old.png")
        kept = _input(session, make_png(11), artifacts, "kept.png")
        sharing.add_owner(session, old.id, "visitor-a", keep_for=timedelta(hours=1))
        sharing.add_owner(session, kept.id, "team", keep_for=None)
        old_job = _finished_job(session, old.id, artifacts, make_png(20))
        _finished_job(session, old.id, artifacts, shared_output, method="weiss")
        _finished_job(session, kept.id, artifacts, shared_output)
        sharing.record_vote(session, old.id, "retinex", "jiep", "weiss", "a", "visitor-a")
        old.expires_at = utcnow() - timedelta(minutes=1)
        old_frame, old_layer = old.frames[0], old_job.outputs[0].artifact_key
        ids = (old.id, kept.id)
    report = sharing.purge_expired(sessions, artifacts)
    assert (report.inputs, report.jobs, report.files_deleted, report.files_kept) == (1, 2, 2, 1)
    assert not artifacts.exists(old_frame) and not artifacts.exists(old_layer)
    with session_scope(sessions) as session:
        assert session.get(Input, ids[0]) is None and session.get(Input, ids[1]) is not None
        for model in (Job, Vote, InputOwner):
            column = model.input_id
            assert session.scalar(select(func.count()).select_from(model).where(column == ids[0])) == 0
        # No dangling row: every remaining reference has its file; no orphan: nothing purged is left.
        assert all(artifacts.exists(key) for key in sharing.referenced_keys(session))
        assert artifacts.exists(store.get_input(session, ids[1]).frames[0])
    assert sharing.purge_expired(sessions, artifacts).inputs == 0  # nothing left to do


def test_purge_waits_for_running_jobs_and_keeps_team_inputs(sessions, artifacts, make_png):
    with session_scope(sessions) as session:
        busy = _input(session, make_png(40), artifacts)
        team = _input(session, make_png(41), artifacts)
        sharing.add_owner(session, busy.id, "visitor-a", keep_for=timedelta(hours=1))
        store.enqueue_job(session, busy.id, "jiep", {})
        busy.expires_at = utcnow() - timedelta(minutes=1)
    assert sharing.purge_expired(sessions, artifacts).inputs == 0  # its job is still queued
    with session_scope(sessions) as session:
        assert store.get_input(session, team.id).expires_at is None


def test_votes_are_checked(sessions, artifacts, make_png):
    with session_scope(sessions) as session:
        row = _input(session, make_png(50), artifacts)
        with pytest.raises(ValueError, match="winner"):
            sharing.record_vote(session, row.id, "retinex", "jiep", "weiss", "left", "v")
        with pytest.raises(ValueError, match="two different"):
            sharing.record_vote(session, row.id, "retinex", "jiep", "jiep", "a", "v")
        sharing.record_vote(session, row.id, "retinex", "jiep", "weiss", "same", "v")
    with session_scope(sessions) as session:
        assert [(v.method_a, v.winner) for v in sharing.list_votes(session, "retinex")] == [("jiep", "same")]
