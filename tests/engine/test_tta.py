"""Mirror test-time augmentation (engine.ops.tta) and the three intrinsic networks that use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ParameterError
from engine.ops.tta import mirror_averaged

CPU = torch.device("cpu")


def _lopsided(x: torch.Tensor) -> dict:
    """A deliberately not mirror-equivariant 'network': a running sum along the width."""
    return {"log": x.cumsum(-1), "positive": torch.exp(x.cumsum(-1)), "scalar": x.sum()}


def test_concurrent_passes_give_the_same_answer_in_two_threads_and_restore_the_settings():
    import threading

    x = torch.randn(1, 2, 3, 5, generator=torch.Generator().manual_seed(1))
    conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    seen = []

    def net(t):
        seen.append((threading.current_thread().name, torch.is_grad_enabled(), torch.get_num_threads()))
        return {"log": conv(t).cumsum(-1)}

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            sequential = mirror_averaged(net, x, "flip")
            seen.clear()
            concurrent = mirror_averaged(net, x, "flip", concurrent=True)
        assert torch.allclose(sequential["log"], concurrent["log"], atol=1e-6)
        assert len({name for name, _, _ in seen}) == 2  # one pass in the caller's thread, one in the pool's
        assert all(not grad and threads == 1 for _, grad, threads in seen)  # no_grad carried, threads split
        assert torch.get_num_threads() == 2  # the caller's setting is back
        assert mirror_averaged(net, x, "none", concurrent=True)["log"].shape == x.shape
    finally:
        torch.set_num_threads(before)


def test_flip_is_the_mean_with_the_mirrored_pass_mirrored_back():
    x = torch.randn(1, 2, 3, 5, generator=torch.Generator().manual_seed(0))
    out = mirror_averaged(_lopsided, x, "flip", geometric=("positive",))
    back = torch.flip(torch.flip(x, (-1,)).cumsum(-1), (-1,))
    assert torch.allclose(out["log"], 0.5 * (x.cumsum(-1) + back), atol=1e-6)
    # geometric mean of positive layers == exp of the mean of their logs
    assert torch.allclose(out["positive"], torch.exp(0.5 * (x.cumsum(-1) + back)), rtol=1e-5)
    assert out["scalar"] is not None and torch.equal(out["scalar"], x.sum())  # not an image: first pass's value
    none = mirror_averaged(_lopsided, x, "none")
    assert torch.equal(none["log"], x.cumsum(-1))


def test_flip_makes_any_network_mirror_equivariant_and_leaves_an_equivariant_one_alone():
    x = torch.randn(1, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    mirrored = torch.flip(x, (-1,))
    a = mirror_averaged(lambda t: (t.cumsum(-1),), x)[0]
    b = mirror_averaged(lambda t: (t.cumsum(-1),), mirrored)[0]
    assert torch.allclose(torch.flip(a, (-1,)), b, atol=1e-6)
    symmetric = torch.nn.Conv2d(3, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        symmetric.weight.copy_(symmetric.weight + torch.flip(symmetric.weight, (-1,)))
        assert torch.allclose(mirror_averaged(symmetric, x), symmetric(x), atol=1e-6)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        mirror_averaged(_lopsided, torch.zeros(1, 1, 2, 2), "rotate")


@pytest.mark.parametrize("method", ["cgintrinsics", "intrinseg", "ma2018"])
def test_runner_default_flip_is_mirror_equivariant_and_none_is_one_pass(method):
    """With the default tta='flip' a mirrored photo gives exactly the mirrored layers (a property one pass lacks);
    'none' gives another, single-pass answer; a bad value is refused by name. The width is a multiple of every
    network's padding multiple (128), so padding does not break the symmetry; layers are compared up to scale (each
    runner normalises by a percentile, which IntrinSeg takes on a subsampled grid)."""
    from engine.registry import MethodInput, get_method, run_method

    rng = np.random.default_rng(3)
    image = np.clip(rng.random((128, 256, 3)) * np.linspace(0.2, 1.0, 256)[None, :, None], 0, 1).astype(np.float32)
    spec = get_method(method)
    role_layers = [o.name for o in spec.outputs if o.name in ("albedo", "reflectance", "shading")]

    def layers(img, tta):
        result, _, _ = run_method(method, MethodInput(frames=(np.ascontiguousarray(img),)), {"tta": tta}, device="cpu")
        return result.layers

    flip, flip_mirrored, single = layers(image, "flip"), layers(image[:, ::-1], "flip"), layers(image, "none")
    unit = lambda a: np.asarray(a, np.float64) / float(np.mean(a))  # noqa: E731  (layers are defined up to scale)
    for name in role_layers:
        assert np.allclose(unit(flip_mirrored[name]), unit(flip[name][:, ::-1]), rtol=1e-3, atol=1e-4), name
    assert any(not np.allclose(unit(single[n]), unit(flip[n]), rtol=1e-3, atol=1e-4) for n in role_layers)
    with pytest.raises(ParameterError, match="tta"):
        layers(image, "sideways")
