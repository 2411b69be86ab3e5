"""Choosing which trained weights a learned method runs with, from the Decompose page's backend."""

from dashboard import backend, catalog
from dashboard.uploads import UploadedFile, prepare_input
from db.models import Job
from db.session import session_scope
from engine.registry import InputKind, get_method


def test_weight_choices_follow_the_declared_sets():
    names = [name for name, _ in catalog.weight_choices(get_method("cgintrinsics"))]
    assert names[:2] == ["mit", "synthetic"] and "official" in names  # the shipped set first: it is the default
    assert catalog.weight_choices(get_method("jiep")) == []  # not learned
    assert [n for n, _ in catalog.weight_choices(get_method("retinexnet"))][:2] == ["project", "official"]


def test_chosen_weights_are_stored_with_the_job(sessions, photo_png):
    prepared = prepare_input([UploadedFile("photo.png", photo_png)], InputKind.IMAGE)
    spec = get_method("cgintrinsics")
    submission = backend.submit(sessions, prepared, [(spec, {})], weights={"cgintrinsics": "official"})
    again = backend.submit(sessions, prepared, [(spec, {})], weights={"cgintrinsics": "synthetic"})
    with session_scope(sessions) as session:
        first, second = (session.get(Job, i) for i in (*submission.job_ids, *again.job_ids))
        # Different weights are different jobs, never a re-used result.
        assert (first.weights, second.weights) == ("official", "synthetic") and first.id != second.id


def test_locally_trained_retinexnet_is_picked_alike_on_decompose_cli_and_benchmarks(data_dir, tmp_path):
    """Weights installed by ``python -m engine train retinexnet … --install`` are one more choice everywhere."""
    import shutil

    from engine.benchmark.runner import weights_of
    from engine.examples import method_example
    from engine.registry import run_method
    from engine.train.loop import install_weights
    from engine.weights import ASSETS_WEIGHTS

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    weights = shutil.copy(ASSETS_WEIGHTS / "retinexnet.safetensors", run_dir / "mine.safetensors")
    card = run_dir / "mine.md"
    card.write_text("# a local run\n")
    install_weights("retinexnet", "mine", weights, card, run_dir)
    spec = get_method("retinexnet")
    assert "mine" in dict(catalog.weight_choices(spec))  # Decompose's selectbox
    assert spec.weights[0] == "project" and "mine" in spec.weights  # the default stays the shipped set
    assert weights_of(spec, "mine") == "mine" and weights_of(spec, None) == "project"  # benchmarks
    result, _, _ = run_method("retinexnet", method_example(spec), device="cpu", weights="mine")  # the CLI's --weights
    assert result.info["weights"]["source"] == "cache" and result.info["weights"]["weight_set"] == "retinexnet/mine"
