"""Choosing which trained weights a learned method runs with, from the Decompose page's backend."""

from dashboard import backend, catalog
from dashboard.uploads import UploadedFile, prepare_input
from db.models import Job
from db.session import session_scope
from engine.registry import InputKind, get_method


def test_weight_choices_follow_the_declared_sets():
    names = [name for name, _ in catalog.weight_choices(get_method("cgintrinsics"))]
    assert names[0] == "synthetic" and "official" in names  # the shipped set first: it is the default
    assert catalog.weight_choices(get_method("jiep")) == []  # not learned
    assert catalog.weight_choices(get_method("retinexnet")) == []  # its own "weights" setting chooses


def test_chosen_weights_are_stored_with_the_job(sessions, photo_png):
    prepared = prepare_input([UploadedFile("photo.png", photo_png)], InputKind.IMAGE)
    spec = get_method("cgintrinsics")
    submission = backend.submit(sessions, prepared, [(spec, {})], weights={"cgintrinsics": "official"})
    again = backend.submit(sessions, prepared, [(spec, {})], weights={"cgintrinsics": "synthetic"})
    with session_scope(sessions) as session:
        first, second = (session.get(Job, i) for i in (*submission.job_ids, *again.job_ids))
        # Different weights are different jobs, never a re-used result.
        assert (first.weights, second.weights) == ("official", "synthetic") and first.id != second.id
