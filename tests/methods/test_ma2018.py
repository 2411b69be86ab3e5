"""Ma et al. 2018: the network and runner, the multi-light data adapter and pair stream, the losses (what each one
rewards and punishes), and a tiny training run whose albedo does not collapse to a constant."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.methods.ma2018 import SPEC, Ma2018Net, decompose, model_from_state, pad_to_multiple, run
from engine.registry import MethodInput, OutputKind, Role, RunContext, Task
from engine.train.ma2018_recipe import Ma2018Recipe, ma2018_losses
from engine.train.multilight import PairStream, apply_photometric, load_multilight_folder

CPU = torch.device("cpu")


def _srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def toy_scene(rng, size=48, lightings=4):
    """Piecewise-constant colour albedo under `lightings` smooth directional shadings with a moving shadow band."""
    albedo = np.full((size, size, 3), 0.5, np.float32)
    for _ in range(6):
        y, x = rng.integers(0, size - 8, 2)
        albedo[y:y + rng.integers(6, 20), x:x + rng.integers(6, 20)] = rng.uniform(0.15, 0.95, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    frames = []
    for k in range(lightings):
        angle = 2 * np.pi * k / lightings + rng.uniform(0, 0.5)
        shading = 0.35 + 0.6 * np.clip(0.5 + 0.5 * (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * 2,
                                       0, 1)
        band = (np.abs(xx - (k + 0.5) / lightings) < 0.06)
        shading = np.where(band, shading * 0.5, shading)
        frames.append((albedo * shading[..., None]).astype(np.float32))
    return albedo, frames


def write_multilight_folder(root: Path, rng, scenes=3, size=48) -> dict:
    truth = {}
    for i in range(scenes):
        albedo, frames = toy_scene(rng, size)
        folder = root / f"scene{i}"
        folder.mkdir(parents=True)
        for k, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"light{k:02d}.png"),
                        np.round(_srgb(frame[..., ::-1] / 0.95) * 255).astype(np.uint8))
        cv2.imwrite(str(folder / "reflectance.png"), np.round(_srgb(albedo[..., ::-1]) * 255).astype(np.uint8))
        cv2.imwrite(str(folder / "mask.png"), np.full((size, size), 255, np.uint8))
        truth[folder.name] = (albedo, frames)
    return truth


# --- network and runner -----------------------------------------------------------------------------------------

def test_registered_as_a_single_image_intrinsic_method_with_three_roles():
    assert SPEC.task == Task.INTRINSIC and SPEC.input_kind.value == "image" and SPEC.learned
    roles = {o.name: (o.role, o.kind) for o in SPEC.outputs}
    assert roles == {"albedo": (Role.REFLECTANCE, OutputKind.IMAGE), "shading": (Role.SHADING, OutputKind.GREY),
                     "assignment": (Role.ATTENTION, OutputKind.GREY)}


def test_network_starts_with_an_exact_half_split_of_the_log_image():
    net = Ma2018Net(width=4).eval()
    x = torch.rand(2, 3, 32, 40) * 0.9 + 0.05
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 3, 30, 40))
    out = net(x)
    assert out["log_albedo"].shape == (2, 3, 32, 40) and out["log_shading"].shape == (2, 1, 32, 40)
    assert torch.allclose(out["mask"], torch.full_like(out["mask"], 0.5))
    # A·S reconstructs the grey part of the normalised linear image exactly at initialisation
    recon = out["log_albedo"].mean(1, keepdim=True) + out["log_shading"]
    assert torch.allclose(recon, out["log_image"].mean(1, keepdim=True), atol=1e-5)
    padded, size = pad_to_multiple(torch.rand(1, 3, 21, 30))
    assert padded.shape[-2:] == (24, 32) and size == (21, 30)


def test_runner_gives_three_layers_at_input_size_from_an_explicit_weights_file(tmp_path):
    from engine.weights import save_state_dict

    torch.manual_seed(0)
    net = Ma2018Net(width=4)
    path = tmp_path / "tiny.safetensors"
    save_state_dict({k: v.half() for k, v in net.state_dict().items()}, path)
    image = np.random.default_rng(1).random((37, 50, 3)).astype(np.float32)
    params = SPEC.resolve_params({"max_side": 32})
    result = run(MethodInput(frames=(image,)), params, RunContext(device=CPU, weights=str(path)))
    assert result.layers["albedo"].shape == (37, 50, 3)
    assert result.layers["shading"].shape == (37, 50, 1) and result.layers["assignment"].shape == (37, 50, 1)
    assert all(np.isfinite(v).all() for v in result.layers.values())
    assert 0 <= result.layers["assignment"].min() and result.layers["assignment"].max() <= 1
    # ratio mode: albedo · shading is the (normalised) image, up to the two display scales
    from engine.imaging import srgb_to_linear

    layers = decompose(image, model_from_state(net.state_dict()), CPU, 32, "ratio")
    linear = srgb_to_linear(image) / srgb_to_linear(image).max()
    np.testing.assert_allclose(layers["albedo"] * layers["shading"], linear, rtol=1e-3, atol=1e-4)


def test_bad_parameters_are_rejected_by_name():
    from engine.errors import ParameterError

    with pytest.raises(ParameterError, match="albedo_output"):
        SPEC.resolve_params({"albedo_output": "magic"})
    with pytest.raises(ParameterError, match="max_side"):
        SPEC.resolve_params({"max_side": 4})


# --- data --------------------------------------------------------------------------------------------------------

def test_multilight_folder_loads_scenes_selects_by_name_and_keeps_labels_only_where_asked(tmp_path, rng):
    truth = write_multilight_folder(tmp_path / "ml", rng)
    scenes = load_multilight_folder(tmp_path / "ml", exclude=["scene2"], labelled=["scene1"])
    assert [s.name for s in scenes] == ["scene0", "scene1"]
    assert scenes[0].frames.shape == (4, 48, 48, 3) and scenes[0].reflectance is None and not scenes[0].labelled
    assert scenes[1].labelled and scenes[1].reflectance.shape == (48, 48, 3)
    # sRGB 8-bit frames come back linear with one common scale per scene (ratios between lightings kept)
    a, frames = truth["scene0"]
    ratio = scenes[0].frames[1].mean() / scenes[0].frames[0].mean()
    assert abs(ratio - frames[1].mean() / frames[0].mean()) < 0.02


def test_multilight_folder_reads_16_bit_frames_as_linear(tmp_path, rng):
    folder = tmp_path / "lin" / "obj"
    folder.mkdir(parents=True)
    frames = [rng.uniform(0.1, 0.5, (16, 16, 3)).astype(np.float32) for _ in range(2)]
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"light{k}.png"), np.round(f[..., ::-1] * 65535).astype(np.uint16))
    scene = load_multilight_folder(tmp_path / "lin", use_mask=False)[0]
    np.testing.assert_allclose(scene.frames, np.stack(frames) / np.stack(frames).max(), atol=1e-4)


def test_pair_stream_is_deterministic_aligned_and_draws_negatives_from_other_scenes(tmp_path, rng):
    write_multilight_folder(tmp_path / "ml", rng)
    scenes = load_multilight_folder(tmp_path / "ml")
    stream = PairStream(scenes, batch_size=6, seed=3, crop=32, noise=0.0, exposure=(1.0, 1.0))
    a, b = stream.batch(5), PairStream(scenes, 6, 3, crop=32, noise=0.0, exposure=(1.0, 1.0)).batch(5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image1"].shape == (6, 3, 32, 32) and a["mask"].shape == (6, 1, 32, 32)
    assert float(a["same_scene_negative"].sum()) == 0
    assert not torch.equal(stream.batch(6)["image1"], a["image1"])
    # the two photos of a pair are cut at the same place: with lightings that only scale the scene, their linear
    # ratio is one constant per pair
    from engine.train.multilight import Scene

    albedo = rng.uniform(0.1, 0.9, (40, 50, 3)).astype(np.float32)
    uniform = Scene("u", np.stack([albedo * s for s in (0.3, 0.6, 0.9)]), np.ones((40, 50), np.float32))
    other = Scene("v", np.stack([albedo[::-1] * s for s in (0.5, 1.0)]), np.ones((40, 50), np.float32))
    pairs = apply_photometric(PairStream([uniform, other], 4, 1, crop=24, noise=0.0, exposure=(1.0, 1.0)).batch(0))
    lin = lambda x: torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)  # noqa: E731
    ratio = lin(pairs["image1"]) / lin(pairs["image2"])
    spread = ratio.flatten(1).std(1) / ratio.flatten(1).mean(1)
    assert float(spread.max()) < 0.02


# --- losses ------------------------------------------------------------------------------------------------------

class _Fixed(torch.nn.Module):
    """A stand-in network that returns a given decomposition of each input (by a function of the log image)."""

    def __init__(self, split):
        super().__init__()
        self.split = split

    def forward(self, srgb):
        from engine.methods.ma2018 import normalise_input

        _, linear = normalise_input(srgb)
        li = torch.log(linear.clamp(min=1e-4))
        la, ls = self.split(li)
        return {"log_albedo": la, "log_shading": ls, "mask": torch.full_like(ls, 0.5), "log_image": li}


def _batch(tmp_path, rng):
    write_multilight_folder(tmp_path / "ml", rng)
    return PairStream(load_multilight_folder(tmp_path / "ml"), 4, 0, crop=32, noise=0.0, exposure=(1, 1)).batch(0)


def test_collapse_to_a_constant_albedo_is_penalised_only_by_the_embedding_negatives(tmp_path, rng):
    batch = _batch(tmp_path, rng)
    config = {**Ma2018Recipe.defaults, "w_sup": 0.0}
    # the invariant answer: albedo = chromaticity only (grey part white), shading = the image's intensity
    collapsed = _Fixed(lambda li: (li - li.mean(1, keepdim=True), li.mean(1, keepdim=True)))
    _, parts = ma2018_losses(collapsed, batch, config)
    assert parts["rec"] < 1e-5 and parts["cross"] < 0.05 and parts["embed_pos"] < 1e-8  # consistency can't tell
    assert parts["embed_neg"] == pytest.approx(config["embed_margin"], rel=1e-4)  # ... the negatives can
    image_as_albedo = _Fixed(lambda li: (li, torch.zeros_like(li[:, :1])))  # albedo = image: not consistent
    _, parts_image = ma2018_losses(image_as_albedo, batch, config)
    assert parts_image["cross"] > 5 * parts["cross"] and parts_image["embed_neg"] < parts["embed_neg"]


def test_semi_supervised_term_is_zero_for_the_true_albedo_and_needs_labels(tmp_path, rng):
    write_multilight_folder(tmp_path / "ml", rng)
    scenes = load_multilight_folder(tmp_path / "ml", labelled=["scene0", "scene1", "scene2"])
    batch = PairStream(scenes, 3, 0, crop=32, noise=0.0, exposure=(1, 1)).batch(0)
    config = dict(Ma2018Recipe.defaults)
    truth = torch.log(batch["albedo"].clamp(min=1e-4))
    n = batch["image1"].shape[0]

    def split(li):  # the true albedo for each pair image; shading the rest of the image
        la = torch.cat([truth, truth, li[2 * n:]], 0) if li.shape[0] == 3 * n else truth
        return la, li.mean(1, keepdim=True) - la.mean(1, keepdim=True)

    _, parts = ma2018_losses(_Fixed(split), batch, config)
    assert parts["sup"] < 5e-3
    _, wrong = ma2018_losses(_Fixed(lambda li: (li, torch.zeros_like(li[:, :1]))), batch, config)
    assert wrong["sup"] > 20 * parts["sup"]
    batch["labelled"] = torch.zeros_like(batch["labelled"])
    _, unlabelled = ma2018_losses(_Fixed(lambda li: (li, torch.zeros_like(li[:, :1]))), batch, config)
    assert unlabelled["sup"] == 0.0


# --- a tiny training run -----------------------------------------------------------------------------------------

def test_tiny_training_run_keeps_albedo_variance_and_beats_its_start(tmp_path, rng):
    """40 steps on three toy scenes: the losses fall and the albedo keeps its variance (no white-albedo collapse)."""
    truth = write_multilight_folder(tmp_path / "ml", rng, scenes=3)
    torch.manual_seed(0)
    recipe = Ma2018Recipe()
    config = recipe.config({"width": 4, "crop": 32, "batch_size": 4, "lr": 3e-3, "noise": 0.0})
    recipe.begin(config)
    model = recipe.build_model(config)
    scenes, _ = recipe.make_datasets(tmp_path / "ml", 0, config)
    stream = recipe.batch_stream(scenes, 0, config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config["lr"])
    losses = []
    for step in range(40):
        loss, parts = recipe.loss(model, stream.batch(step), None, "main")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-8:]) < 0.92 * np.mean(losses[:4])
    albedo_true, frames = truth["scene0"]
    layers = decompose(_srgb(frames[0]).astype(np.float32), model.eval(), CPU, 64, "network")
    log_grey = np.log(layers["albedo"].mean(axis=2))
    true_std = np.log(albedo_true.mean(axis=2)).std()
    assert log_grey.std() > 0.25 * true_std  # a collapsed (constant) albedo has std 0
    # the albedo of two lightings of the scene agree better than the two photos do
    other = decompose(_srgb(frames[2]).astype(np.float32), model, CPU, 64, "network")
    centred = lambda x: np.log(x.mean(axis=2)) - np.log(x.mean(axis=2)).mean()  # noqa: E731
    photo_gap = np.abs(centred(frames[0]) - centred(frames[2])).mean()
    assert np.abs(centred(layers["albedo"]) - centred(other["albedo"])).mean() < photo_gap


# --- engine.synth under several lightings -------------------------------------------------------------------------

def test_rendered_scenes_under_k_lightings_become_training_scenes(tmp_path):
    from engine.synth import SyntheticDataset
    from engine.train.multilight import scenes_from_synthetic

    scenes = scenes_from_synthetic(SyntheticDataset(1, 32, 2, base_seed=5), 1, labelled_fraction=1.0)
    assert scenes[0].frames.shape == (2, 32, 32, 3) and scenes[0].labelled and scenes[0].reflectance is not None
    with pytest.raises(ValueError, match="at least 2 lightings"):
        scenes_from_synthetic(SyntheticDataset(1, 32, 1, base_seed=5), 1)


def test_shipped_weights_decompose_an_mit_object_when_available(shared_dir):
    from engine.errors import WeightsUnavailableError
    from engine.weights import resolve_weights

    try:
        resolve_weights("ma2018", None)
    except WeightsUnavailableError as exc:
        pytest.skip(str(exc))
    from engine.datasets.base import read_float
    from engine.imaging import linear_to_srgb
    from engine.metrics import intrinsic

    obj = shared_dir / "data" / "mit-intrinsic" / "paper1"
    image = read_float(obj / "diffuse.png")
    mask = read_float(obj / "mask.png")[..., 0] > 0.5
    result = run(MethodInput(frames=(linear_to_srgb(image / image.max()),)), SPEC.resolve_params({}),
                 RunContext(device=CPU))
    score = intrinsic.lmse(read_float(obj / "reflectance.png"), result.layers["albedo"], mask)
    assert score < 0.2  # the all-zero albedo scores 1


# --- the multi-image teacher (w_teacher, this project's addition) ------------------------------------------------

def _centred_log(x, mask):
    log = np.log(np.clip(x, 1e-4, None))
    return (log - log[mask].mean(axis=0)) * mask[..., None]


def test_multi_image_albedo_recovers_a_piecewise_constant_albedo_without_ground_truth(rng):
    from engine.train.multilight import multi_image_albedo

    albedo, frames = toy_scene(rng, size=48, lightings=6)
    mask = np.ones((48, 48), bool)
    mask[:, :2] = False  # a masked border is left at 0 and not used
    estimate = multi_image_albedo(np.stack(frames), mask, threshold=0.2)
    assert estimate.shape == albedo.shape and np.all(estimate[~mask] == 0) and np.all(estimate[mask] > 0)
    error = np.abs(_centred_log(estimate, mask) - _centred_log(albedo, mask))[mask].mean()
    single = np.abs(_centred_log(frames[0], mask) - _centred_log(albedo, mask))[mask].mean()
    assert error < 0.05 and error < 0.2 * single  # the shading and the moving shadow are gone
    unthresholded = multi_image_albedo(np.stack(frames), mask, threshold=0.0)  # keeps the smooth shading's slope
    assert np.abs(_centred_log(unthresholded, mask) - _centred_log(albedo, mask))[mask].mean() > error


def test_teacher_term_pulls_towards_the_multi_image_albedo_and_w_teacher_0_turns_it_off(tmp_path, rng):
    write_multilight_folder(tmp_path / "ml", rng)
    recipe = Ma2018Recipe()
    config = recipe.config({"w_teacher": 1.0, "crop": 32, "batch_size": 3, "noise": 0.0})
    scenes = recipe.load_scenes(tmp_path / "ml", 0, config)
    assert all(s.teacher is not None and s.reflectance is None for s in scenes)  # no ground truth read
    batch = PairStream(scenes, 3, 0, crop=32, noise=0.0, exposure=(1, 1)).batch(0)
    assert float(batch["has_teacher"].sum()) == 3
    teacher = torch.log(batch["teacher"].clamp(min=1e-4))
    n = batch["image1"].shape[0]

    def split(li):
        la = torch.cat([teacher, teacher, li[2 * n:]], 0)
        return la, li.mean(1, keepdim=True) - la.mean(1, keepdim=True)

    _, parts = ma2018_losses(_Fixed(split), batch, config)
    _, wrong = ma2018_losses(_Fixed(lambda li: (li, torch.zeros_like(li[:, :1]))), batch, config)
    assert parts["teacher"] < 5e-3 and wrong["teacher"] > 20 * parts["teacher"]
    paper = Ma2018Recipe()
    plain = paper.load_scenes(tmp_path / "ml", 0, paper.config({"w_teacher": 0.0}))
    assert all(s.teacher is None for s in plain)  # w_teacher = 0: no teacher computed
    plain_batch = PairStream(plain, 3, 0, crop=32, noise=0.0, exposure=(1, 1)).batch(0)
    assert float(plain_batch["has_teacher"].sum()) == 0
    _, off = ma2018_losses(_Fixed(lambda li: (li, torch.zeros_like(li[:, :1]))), plain_batch,
                           {**config, "w_teacher": 0.0})
    assert off["teacher"] == 0.0


def test_grey_shading_albedo_carries_the_scene_colour_and_leaves_a_grey_shading(rng):
    from engine.train.multilight import grey_shading_albedo

    albedo, frames = toy_scene(rng, size=32, lightings=3)
    mask = np.ones((32, 32), bool)
    skewed = albedo * np.array([3.0, 0.5, 1.2], np.float32)  # a teacher is known up to one scale per channel
    fixed = grey_shading_albedo(np.stack(frames), skewed, mask)
    chroma = lambda a: a / a.sum(axis=-1, keepdims=True)  # noqa: E731
    assert np.allclose(chroma(fixed), chroma(albedo), atol=1e-5)  # the true colour is back (grey light here)
    shading = np.stack(frames).mean(axis=0) / fixed
    assert np.allclose(shading, shading.mean(axis=-1, keepdims=True), rtol=1e-4)


def test_albedo_swap_composites_are_one_scenes_albedo_under_another_scenes_two_lightings(tmp_path, rng):
    """swap=1: every pair is scene i's teacher albedo × scene j's frames ÷ j's teacher albedo, j ≠ i, under two of
    j's lightings; the teacher target is i's albedo, nothing is labelled, and with exact teachers the composite's
    shading is exactly a shading of scene j (so image ÷ target is the same in both photos up to j's light change)."""
    truth = write_multilight_folder(tmp_path / "ml", rng, scenes=3, size=40)
    recipe = Ma2018Recipe()
    config = recipe.config({"w_teacher": 1.0, "labelled": "scene0,scene1,scene2"})
    scenes = recipe.load_scenes(tmp_path / "ml", 0, config)
    for s in scenes:  # exact teachers make the composite checkable
        s.teacher = (truth[s.name][0] * np.array([2.0, 1.0, 0.5], np.float32)).astype(np.float32)
    stream = PairStream(scenes, 4, 0, crop=32, noise=0.0, exposure=(1, 1), swap=1.0)
    batch = stream.batch(0)
    assert float(batch["labelled"].sum()) == 0 and float(batch["albedo"].abs().sum()) == 0
    assert float(batch["has_teacher"].sum()) == 4
    for b in range(4):
        m = batch["mask"][b, 0].numpy() > 0
        assert m.mean() > 0.5
        shading1 = (batch["image1"][b] / batch["teacher"][b].clamp(min=1e-6)).numpy()[:, m]
        shading2 = (batch["image2"][b] / batch["teacher"][b].clamp(min=1e-6)).numpy()[:, m]
        # grey shadings (the toy light is white), not the teacher's skewed channel scales (skew 4× apart)
        assert np.allclose(shading1, shading1.mean(axis=0, keepdims=True), rtol=2e-2)  # 8-bit frames
        assert not np.allclose(shading1, shading2, rtol=1e-2)  # two different lightings
    assert torch.equal(stream.batch(0)["image1"], batch["image1"])  # deterministic
    plain = PairStream(scenes, 4, 0, crop=32, noise=0.0, exposure=(1, 1)).batch(0)
    assert float(plain["labelled"].sum()) == 4  # swap=0 (the default): the scenes as they are
