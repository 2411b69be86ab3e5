"""Public mode without a browser: visitors cannot reach each other's results by id, limits hold under a burst,
the admin login, and the human-preference leaderboard's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import access, backend, preference, results
from dashboard.uploads import UploadedFile, prepare_input
from engine.imaging import encode_png
from engine.registry import InputKind, get_method


def _upload(seed: int, size: int = 32):
    rng = np.random.default_rng(seed)
    png = encode_png(rng.uniform(0.1, 0.9, (size, size, 3)).astype(np.float32), bit_depth=8)
    return prepare_input([UploadedFile(f"photo {seed}.png", png)], InputKind.IMAGE)


JIEP = [(get_method("jiep"), {})]
LIMITS = access.Limits(jobs_per_hour=5, concurrent_jobs=2, megapixels=0.01, frames=2, upload_mb=1.0)


def test_a_visitor_cannot_read_another_visitors_result_by_guessing(sessions):
    alice = backend.submit(sessions, _upload(1), JIEP, visitor="alice-token-0123456789", limits=LIMITS)
    job_id, input_id = alice.job_ids[0], alice.input_id
    assert [j.id for j in backend.job_views(sessions, [job_id], visitor="alice-token-0123456789")] == [job_id]
    bob = "bob-token-0123456789ab"
    assert backend.job_views(sessions, [job_id], visitor=bob) == []
    assert backend.input_view(sessions, input_id, visitor=bob) is None
    assert backend.gallery(sessions, visitor=bob) == [] and backend.gallery(sessions, visitor=bob, input_id=input_id) == []
    with pytest.raises(KeyError):
        results.result_zip(sessions, job_id, visitor=bob)
    with pytest.raises(KeyError):
        results.input_zip(sessions, input_id, visitor=bob)
    # Bob uploading the very same file gets his own access to it, not a view of Alice's.
    again = backend.submit(sessions, _upload(1), JIEP, visitor=bob, limits=LIMITS)
    assert again.input_id == input_id and backend.input_view(sessions, input_id, visitor=bob) is not None
    # An admin publishes an example: now every visitor sees it.
    results.publish(sessions, input_id)
    assert backend.input_view(sessions, input_id, visitor="carol-token-0123456789") is not None


def test_limits_hold_under_a_scripted_burst(sessions):
    visitor = "burst-token-0123456789"
    accepted, refused = [], []
    for seed in range(10, 20):  # ten different photos as fast as the store takes them
        try:
            accepted.append(backend.submit(sessions, _upload(seed), JIEP, visitor=visitor, limits=LIMITS))
        except access.LimitError as exc:
            refused.append(str(exc))
    assert len(accepted) == LIMITS.concurrent_jobs
    assert refused and all("at most 2 at a time" in m for m in refused)
    # Another visitor is not starved by the first one's burst.
    backend.submit(sessions, _upload(99), JIEP, visitor="other-token-0123456789", limits=LIMITS)
    with pytest.raises(access.LimitError, match="MP"):
        backend.submit(sessions, _upload(5, size=128), JIEP, visitor="big-token-0123456789ab", limits=LIMITS)


def test_hourly_limit(sessions):
    limits = access.Limits(jobs_per_hour=1, concurrent_jobs=10, megapixels=1.0)
    backend.submit(sessions, _upload(30), JIEP, visitor="hour-token-0123456789", limits=limits)
    with pytest.raises(access.LimitError, match="per hour"):
        backend.submit(sessions, _upload(31), JIEP, visitor="hour-token-0123456789", limits=limits)


def test_admin_login(monkeypatch):
    monkeypatch.setenv(access.MODE_ENV, "public")
    monkeypatch.delenv(access.ADMIN_SECRET_ENV, raising=False)
    assert access.admin_login("anything") is None  # no secret configured: nobody is admin
    monkeypatch.setenv(access.ADMIN_SECRET_ENV, "correct horse")
    assert access.admin_login("correct hors") is None and access.admin_login("") is None
    until = access.admin_login("correct horse", now=1000.0, limits=access.Limits(admin_session_minutes=10))
    assert until == 1600.0
    assert access.is_admin(until, now=1599.0) and not access.is_admin(until, now=1600.0)
    assert not access.is_admin(None)
    monkeypatch.setenv(access.MODE_ENV, "team")
    assert access.is_admin(None)  # a team lab has no admin wall
    monkeypatch.setenv(access.MODE_ENV, "pubic")
    with pytest.raises(ValueError, match="team.*public"):
        access.public_mode()


def test_visitor_tokens():
    token = access.new_visitor_token()
    assert access.valid_token(token) and token != access.new_visitor_token()
    for bad in (None, "", "short", "x" * 65, "a" * 20 + "<script>"):
        assert not access.valid_token(bad)


def test_bradley_terry_ranks_the_preferred_method_first_with_intervals():
    votes = [("a", "b", "a")] * 8 + [("a", "b", "b")] * 2 + [("b", "c", "a")] * 7 + [("b", "c", "same")] * 3
    rows = preference.standings(votes, resamples=100)
    assert [r.method for r in rows] == ["a", "b", "c"]
    assert all(r.low <= r.score <= r.high for r in rows)
    assert abs(sum(r.score for r in rows)) < 1e-6  # centred on the mean
    a = next(r for r in rows if r.method == "a")
    assert (a.votes, a.wins) == (10, 8.0)
    # Two methods judged the same every time score the same.
    tied = preference.standings([("x", "y", "same")] * 5, resamples=20)
    assert tied[0].score == pytest.approx(tied[1].score, abs=1e-6)
    assert preference.standings([]) == []
