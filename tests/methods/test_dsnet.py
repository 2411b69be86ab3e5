"""DS-Net: network shapes and HypNet's mean handling, the official npz converter (synthetic file with the official
keys, shapes and TF layouts, checked against a channels-last reference of the TF graph), the safe npz reader, patches
and the weighted median, the runner's outputs and its bad-input messages, the phone-photo path, the recipe's folds,
locus, patch stream and winner-takes-all loss, one tiny training run, and the bright-pixels baseline."""

from __future__ import annotations

import json
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import InputKindError, WeightsUnavailableError
from engine.methods import dsnet
from engine.registry import MethodInput, Role, get_method, run_method
from engine.train import dsnet_recipe as recipe

SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared"))
INTEL_TAU = SHARED / "data" / "color-constancy" / "intel-tau-imx135"


# --- network ---------------------------------------------------------------------------------------------------------

def test_shapes_and_parameter_counts_match_the_official_networks():
    net = dsnet.DSNet()
    hyps, logits = net(torch.randn(5, 2, 44, 44))
    assert hyps.shape == (5, 2, 2) and logits.shape == (5, 2)
    assert sum(p.numel() for p in net.hypnet.parameters()) == 2_639_748  # official-weights.md §4
    assert sum(p.numel() for p in net.selnet.parameters()) == 1_590_402


def test_hypnet_is_equivariant_to_a_uv_shift_and_selnet_is_not_mean_subtracted():
    torch.manual_seed(0)
    net = dsnet.DSNet().eval()
    uv = torch.randn(4, 2, 44, 44) * 0.1
    shift = torch.tensor([0.3, -0.2])
    with torch.no_grad():
        a, la = net(uv)
        b, lb = net(uv + shift[None, :, None, None])
    torch.testing.assert_close(b, a + shift, atol=1e-5, rtol=0)  # mean subtracted, then added back
    assert not torch.allclose(la, lb)


def test_int8_export_round_trips_closely():
    torch.manual_seed(0)
    net = dsnet.DSNet().eval()
    state = dsnet.quantize_state(net.state_dict())
    assert state["hypnet.branches.0.fc1.weight_int8"].dtype == torch.int8 and "hypnet.trunk.conv1.bias" in state
    back = dsnet.model_from_state(state)
    uv = torch.randn(8, 2, 44, 44) * 0.2
    with torch.no_grad():
        (h0, l0), (h1, l1) = net(uv), back(uv)
    assert (h0 - h1).abs().max() < 0.02 * h0.abs().max() and (l0 - l1).abs().max() < 0.02 * l0.abs().max()


def test_uv_round_trip_and_weighted_median():
    rgb = torch.tensor([[0.6, 0.7, 0.3]])
    back = dsnet.uv_to_rgb(dsnet.rgb_to_uv(rgb))
    torch.testing.assert_close(back, rgb / 0.7, atol=1e-5, rtol=1e-5)
    assert dsnet.weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])) == 2.0
    assert dsnet.weighted_median(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.1, 5.0])) == 3.0


def test_patch_grid_is_flush_and_skips_black_and_clipped_patches():
    assert dsnet.patch_offsets(50, 4).tolist() == [0, 4, 6]
    assert dsnet.patch_offsets(44, 4).tolist() == [0]
    image = np.full((52, 52, 3), 0.5, np.float32)
    invalid = np.zeros((52, 52), bool)
    assert len(dsnet.extract_patches(image, invalid, 4)["weights"]) == 9
    image[0, 0, 1] = 0.0  # a black pixel: only patches that do not cover (0, 0)
    invalid[51, 51] = True  # a clipped pixel
    found = dsnet.extract_patches(image, invalid, 4)
    assert len(found["weights"]) == 9 - 2
    assert not any(y == 0 and x == 0 for y, x in zip(found["ys"], found["xs"]))
    assert found["patches"].shape[1:] == (3, 44, 44)


# --- official converter -----------------------------------------------------------------------------------------------

_SHAPES = {"base/conv1": (8, 8, 2, 128), "base/conv2": (4, 4, 128, 256)}


def _official_params(net: str, rng: np.random.Generator) -> OrderedDict:
    heads = ["b0", "b1"] if net == "hypnet" else ["b0"]
    shapes = dict(_SHAPES)
    for h in heads:
        shapes[f"head/{h}/fc1"] = (4096, 256)
        shapes[f"head/{h}/fc2"] = (256, 2)
    return OrderedDict((f"{net}/{k}", [(rng.standard_normal(s) * 0.05).astype(np.float32),
                                       (rng.standard_normal(s[-1]) * 0.05).astype(np.float32)])
                       for k, s in shapes.items())


def _write_official(folder: Path, seed: int = 0) -> tuple[OrderedDict, OrderedDict]:
    rng = np.random.default_rng(seed)
    hyp, sel = _official_params("hypnet", rng), _official_params("selnet", rng)
    np.savez(folder / "hypnet_4000000.npz", params=hyp, update_params=OrderedDict())
    np.savez(folder / "selnet_4000000.npz", params=sel, update_params=OrderedDict())
    return hyp, sel


def _tf_reference(params: OrderedDict, prefix: str, uv_nhwc: np.ndarray, heads: list[str], sub_mean: bool):
    """The TF graph written channels-last: conv (HWIO, VALID), ReLU, flatten NHWC, fc (in, out)."""
    x = torch.from_numpy(uv_nhwc)
    mean = x.mean((1, 2), keepdim=True)
    if sub_mean:
        x = x - mean
    for name, stride in (("conv1", 4), ("conv2", 2)):
        w, b = (torch.from_numpy(a) for a in params[f"{prefix}/base/{name}"])
        x = F.relu(F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, stride=stride).permute(0, 2, 3, 1))
    flat = x.reshape(x.shape[0], -1)  # NHWC order: (h·4 + w)·256 + c
    outs = []
    for h in heads:
        w1, b1 = (torch.from_numpy(a) for a in params[f"{prefix}/head/{h}/fc1"])
        w2, b2 = (torch.from_numpy(a) for a in params[f"{prefix}/head/{h}/fc2"])
        out = F.relu(flat @ w1 + b1) @ w2 + b2
        outs.append(out + mean[:, 0, 0] if sub_mean else out)
    return torch.stack(outs, 1)


def test_official_converter_matches_the_channels_last_graph(tmp_path):
    hyp, sel = _write_official(tmp_path)
    state = dsnet.convert_official(tmp_path / "hypnet_4000000.npz")
    net = dsnet.model_from_state(state)
    uv = np.random.default_rng(1).standard_normal((3, 44, 44, 2)).astype(np.float32) * 0.3
    with torch.no_grad():
        hyps, logits = net(torch.from_numpy(uv).permute(0, 3, 1, 2).contiguous())
    ref_h = _tf_reference(hyp, "hypnet", uv, ["b0", "b1"], True)
    ref_s = _tf_reference(sel, "selnet", uv, ["b0"], False)[:, 0]
    torch.testing.assert_close(hyps, ref_h, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, ref_s, atol=1e-4, rtol=1e-4)
    assert dsnet.convert_official(tmp_path).keys() == state.keys()  # a folder works too


def test_official_converter_refuses_wrong_files(tmp_path):
    hyp, _ = _write_official(tmp_path)
    (tmp_path / "selnet_4000000.npz").unlink()
    with pytest.raises(WeightsUnavailableError, match="missing selnet_4000000.npz"):
        dsnet.convert_official(tmp_path / "hypnet_4000000.npz")
    hyp["hypnet/head/b1/fc2"][0] = np.zeros((256, 3), np.float32)
    np.savez(tmp_path / "hypnet_4000000.npz", params=hyp, update_params=OrderedDict())
    np.savez(tmp_path / "selnet_4000000.npz", params=_official_params("selnet", np.random.default_rng(0)),
             update_params=OrderedDict())
    with pytest.raises(WeightsUnavailableError, match=r"hypnet/head/b1/fc2 has weight \(256, 3\)"):
        dsnet.convert_official(tmp_path)


def test_weights_import_cli_path_stores_a_loadable_set(tmp_path, monkeypatch):
    from engine.weights import import_official, load_weights

    monkeypatch.setenv("INTRINSIC_LAB_DATA", str(tmp_path / "data"))
    _write_official(tmp_path)
    target, provenance = import_official("dsnet", tmp_path / "hypnet_4000000.npz")
    assert provenance["converter"] == "engine.methods.dsnet:convert_official" and target.is_file()
    state, resolved = load_weights("dsnet", "official")
    assert resolved.source == "cache" and dsnet.model_from_state(state) is not None


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_npz_reader_never_runs_pickled_code(tmp_path):
    path = tmp_path / "hypnet_1.npz"
    np.savez(path, params=np.array(_Evil(), dtype=object))
    with pytest.raises(WeightsUnavailableError, match="refusing to load"):
        dsnet.read_official_npz(path)


# --- runner -----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from engine.weights import save_state_dict

    torch.manual_seed(0)
    net = dsnet.DSNet()
    net.reference_white.copy_(torch.tensor([0.6, 0.75, 0.3]) / np.linalg.norm([0.6, 0.75, 0.3]))
    path = tmp_path_factory.mktemp("w") / "dsnet-test.safetensors"
    save_state_dict(net.state_dict(), path)
    return str(path)


def _scene(h=64, w=96, light=(0.6, 0.75, 0.3), seed=0):
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(0.1, 0.9, (h // 8, w // 8, 3)).repeat(8, 0).repeat(8, 1)
    return (albedo * np.asarray(light) * 0.8 + 0.01).astype(np.float32)


def test_runner_outputs_and_roles(tiny_weights):
    spec = get_method("dsnet")
    roles = {o.name: o.role for o in spec.outputs}
    assert roles == {"illuminant": Role.ILLUMINANT, "white_balanced": Role.WHITE_BALANCED,
                     "confidence": Role.CONFIDENCE, "patch_estimates": Role.OTHER}
    image = _scene()
    result, ctx, _ = run_method("dsnet", MethodInput(frames=(image,)), {"stride": 8}, device="cpu",
                                weights=tiny_weights)
    ill = np.asarray(result.values["illuminant"])
    assert ill.shape == (3,) and np.linalg.norm(ill) == pytest.approx(1.0) and np.all(ill > 0)
    assert result.layers["white_balanced"].shape == image.shape
    assert result.layers["confidence"].shape == (64, 96, 1) and result.layers["patch_estimates"].shape == image.shape
    assert result.info["input_encoding"] == "linear raw" and result.info["approximation"] is None
    assert result.info["patches_used"] == 4 * 8  # rows 0, 8, 16, 20 × cols 0, 8, …, 48, 52
    # the white-balanced image is the input divided by the estimate (strongest channel unchanged)
    gains = ill.max() / ill
    np.testing.assert_allclose(result.layers["white_balanced"], image * gains, rtol=1e-5)


def test_large_inputs_are_downscaled_to_the_working_side(tiny_weights):
    image = cv2.resize(_scene(), (480, 320), interpolation=cv2.INTER_NEAREST)
    result, _, _ = run_method("dsnet", MethodInput(frames=(image,)), {"working_side": 96, "stride": 8},
                              device="cpu", weights=tiny_weights)
    assert result.info["working_size"] == "96×64" and result.info["working_scale"] == pytest.approx(0.2)
    assert result.layers["confidence"].shape == (320, 480, 1)


def test_phone_jpeg_is_linearised_and_labelled_an_approximation(tiny_weights):
    photo = (np.round(_scene(light=(0.5, 0.5, 0.5)) ** (1 / 2.2) * 255) / 255).astype(np.float32)  # 8-bit
    result, _, _ = run_method("dsnet", MethodInput(frames=(photo,)), {"stride": 8}, device="cpu",
                              weights=tiny_weights)
    assert "approximation" in result.info["approximation"] and result.info["input_encoding"].startswith("srgb")
    assert "approximation" in get_method("dsnet").output("white_balanced").meaning
    with pytest.raises(InputKindError, match="8-bit file .* not a linear raw image"):
        run_method("dsnet", MethodInput(frames=(photo,)), {"input": "raw"}, device="cpu", weights=tiny_weights)


@pytest.mark.parametrize("make,message", [
    (lambda: np.zeros((64, 64, 3), np.float32), "all black"),
    (lambda: np.ones((64, 64, 3), np.float32), "every pixel is saturated"),
    (lambda: np.repeat(_scene(64, 64)[..., :1], 3, axis=2), "greyscale"),
    (lambda: _scene(64, 64)[..., :1], "1-channel"),
])
def test_bad_inputs_get_one_clear_message(tiny_weights, make, message):
    with pytest.raises(InputKindError, match=message):
        dsnet.check_input(make(), 0.98)
    if make().shape[-1] == 3:
        with pytest.raises(InputKindError, match=message):
            run_method("dsnet", MethodInput(frames=(make(),)), None, device="cpu", weights=tiny_weights)


def test_no_usable_patch_is_a_clear_message(tiny_weights):
    image = _scene(64, 64)
    image[::20, ::20] = 1.0  # clipped pixels everywhere
    with pytest.raises(InputKindError, match="no usable 44×44 patch"):
        run_method("dsnet", MethodInput(frames=(image,)), None, device="cpu", weights=tiny_weights)


@pytest.mark.cuda
def test_cuda_matches_cpu(tiny_weights):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    image = _scene()
    a, _, _ = run_method("dsnet", MethodInput(frames=(image,)), {"stride": 8}, device="cpu", weights=tiny_weights)
    b, _, _ = run_method("dsnet", MethodInput(frames=(image,)), {"stride": 8}, device="cuda", weights=tiny_weights)
    np.testing.assert_allclose(a.values["illuminant"], b.values["illuminant"], atol=1e-3)


def test_shipped_weights_verify():
    from engine.weights import get_weight_set, load_state_dict, resolve_weights

    ws = get_weight_set("dsnet", "intel-tau")
    if not ws.shipped_path.is_file():
        pytest.skip("shipped weights not present")
    resolved = resolve_weights("dsnet", "intel-tau")  # checks the declared sha256
    net = dsnet.model_from_state(load_state_dict(resolved.path))
    white = net.reference_white.numpy()
    assert np.linalg.norm(white) == pytest.approx(1.0, abs=1e-4) and white[1] == white.max()  # IMX135: green-heavy


# --- recipe ---------------------------------------------------------------------------------------------------------

def test_folds_partition_the_items():
    items = [f"img{i}" for i in range(10)]
    held = []
    for k in range(5):
        train, val = recipe.fold_split(items, 5, k, 0)
        assert len(val) == 2 and not set(train) & set(val) and len(train) == 8
        held += val
    assert sorted(held) == sorted(items)
    assert recipe.fold_split(items, 5, -1, 0) == (sorted(items), sorted(items))


def test_locus_draws_lie_along_the_fitted_line():
    truths = np.array([[0.7, 0.65, 0.28], [0.6, 0.74, 0.3], [0.43, 0.79, 0.43], [0.57, 0.73, 0.37]])
    locus = recipe.Locus(truths, margin=0.1, spread=0.0)
    drawn = locus.draw(500, torch.Generator().manual_seed(0)).double()
    uv = dsnet.rgb_to_uv(drawn).numpy()
    across = (uv - locus.mean) @ locus.normal
    along = (uv - locus.mean) @ locus.direction
    assert np.abs(across).max() <= locus.spread * 5 + 1e-6
    assert along.min() >= locus.t_range[0] - 1e-6 and along.max() <= locus.t_range[1] + 1e-6


def test_winner_takes_all_only_trains_the_winning_branch():
    hyps = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    logits = torch.zeros(1, 2, requires_grad=True)
    hyp_loss, sel_loss, winner = recipe.hypnet_selnet_loss(hyps, logits, torch.tensor([[0.9, 0.8]]))
    (hyp_loss + sel_loss).backward()
    assert int(winner) == 1
    assert torch.all(hyps.grad[0, 0] == 0) and torch.all(hyps.grad[0, 1] != 0)
    assert logits.grad[0, 1] < 0  # the winner's logit is pushed up


def _tiny_cc_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    lights = [(0.6, 0.75, 0.3), (0.5, 0.8, 0.35), (0.7, 0.65, 0.28)]
    for i in range(n):
        raw = _scene(64, 96, lights[i % 3], seed=i)
        cv2.imwrite(str(folder / f"s{i}.png"), np.round(raw[..., ::-1] * 65535).astype(np.uint16))
        (folder / f"s{i}_metadata.json").write_text(json.dumps({"illuminant_color_raw": list(lights[i % 3])}))
    return folder


def test_patch_stream_is_deterministic_and_reilluminates(tmp_path):
    r = recipe.DSNetRecipe()
    config = r.config({"fold": 0, "folds": 3, "batch_size": 6, "canvas": 96, "stream_device": "cpu"})
    r.begin(config)
    train, val = r.make_datasets(_tiny_cc_folder(tmp_path / "cc"), 0, config)
    assert len(val) == 1 and len(train.kinds) == 2
    stream = r.batch_stream(train, 0, config)
    a, b = stream.batch(3), stream.batch(3)
    assert a["uv"].shape == (6, 2, 44, 44) and a["target"].shape == (6, 2)
    torch.testing.assert_close(a["uv"], b["uv"])
    assert not torch.allclose(a["uv"], stream.batch(4)["uv"])
    # a patch's mean chroma follows the drawn illuminant: white-balanced scene × light
    light_uv = a["target"]
    assert torch.all((a["uv"].mean((2, 3)) - light_uv).abs() < 1.5)


def test_dihedral_patches_are_the_same_crops_in_all_eight_orientations(tmp_path):
    folder = _tiny_cc_folder(tmp_path / "cc")
    batches = {}
    for dihedral in (0, 1):
        r = recipe.DSNetRecipe()
        config = r.config({"fold": 0, "folds": 3, "batch_size": 32, "canvas": 96, "stream_device": "cpu",
                           "noise": 0.0, "dihedral": dihedral})
        r.begin(config)
        train, _ = r.make_datasets(folder, 0, config)
        batches[dihedral] = r.batch_stream(train, 0, config).batch(5)
    plain, turned = batches[0], batches[1]
    torch.testing.assert_close(plain["target"], turned["target"])  # same crops, same lights: only orientation differs
    seen = set()
    for p, t in zip(plain["uv"], turned["uv"]):
        orientations = [p, p.flip(1), p.transpose(1, 2), p.flip(1).transpose(1, 2), p.flip(2), p.flip(2).flip(1),
                        p.flip(2).transpose(1, 2), p.flip(2).flip(1).transpose(1, 2)]
        match = [k for k, o in enumerate(orientations) if torch.equal(o, t)]
        assert match, "a dihedral patch is not an orientation of the plain one"
        seen.add(match[0] % 4)
    assert seen == {0, 1, 2, 3}  # vertical flips and transpositions both occur, alone and together


def test_one_tiny_training_run_exports_and_loads(tmp_path):
    from engine.train.loop import TrainRequest, train

    data = _tiny_cc_folder(tmp_path / "cc")
    result = train(TrainRequest(method="dsnet", data=str(data), steps=2, out=tmp_path / "run", device="cpu",
                                progress=False, overrides={"batch_size": 4, "canvas": 96, "val_stride": 16,
                                                           "fold": 0, "folds": 3, "stream_device": "cpu"}))
    assert result.weights.is_file() and "angular_mean" in result.validation
    from engine.weights import load_state_dict

    state = load_state_dict(result.weights)
    assert state["hypnet.trunk.conv1.weight_int8"].dtype == torch.int8  # the default export is int8
    net = dsnet.model_from_state(state)
    expected = np.mean([[0.6, 0.75, 0.3], [0.5, 0.8, 0.35]], axis=0)  # fold 0 trains on two of the three
    assert np.allclose(sorted(net.reference_white.numpy()), sorted(expected / np.linalg.norm(expected)), atol=0.1)
    assert "dsnet" in result.card.read_text()


# --- bright pixels baseline ------------------------------------------------------------------------------------------

def test_bright_pixels_uses_the_brightest_unclipped_pixels():
    image = np.full((50, 50, 3), 0.1, np.float32) * np.array([1.0, 0.2, 0.3], np.float32)
    image[:2, :] = np.array([0.5, 0.6, 0.2])  # 4 % of the pixels: the bright ones
    image[10, 10] = [1.0, 1.0, 1.0]  # clipped: ignored
    result, _, _ = run_method("baseline_bright_pixels", MethodInput(frames=(image,)), {"percent": 3.0}, device="cpu")
    expected = np.array([0.5, 0.6, 0.2]) / np.linalg.norm([0.5, 0.6, 0.2])
    np.testing.assert_allclose(result.values["illuminant"], expected, atol=1e-6)
    grey_world, _, _ = run_method("baseline_grey_world", MethodInput(frames=(image,)), None, device="cpu")
    assert not np.allclose(grey_world.values["illuminant"], expected, atol=1e-2)


@pytest.mark.skipif(not INTEL_TAU.is_dir(), reason="../shared colour-constancy data not available")
def test_bright_pixels_beats_white_patch_on_intel_tau():
    from engine.datasets import get_adapter
    from engine.metrics.angular import illuminant_error

    adapter = get_adapter("color-constancy")
    errors = {"baseline_bright_pixels": [], "baseline_white_patch": []}
    for item in adapter.item_ids(INTEL_TAU, "all")[:4]:
        sample = adapter.load(INTEL_TAU, item)
        for name in errors:
            result, _, _ = run_method(name, MethodInput(frames=sample.frames), None, device="cpu")
            errors[name].append(illuminant_error(sample.truth["illuminant"], result.values["illuminant"]))
    assert np.mean(errors["baseline_bright_pixels"]) < np.mean(errors["baseline_white_patch"])


# --- the colour-constancy adapter -----------------------------------------------------------------------------------

def test_colour_constancy_adapter_ignores_a_readme_beside_intel_tau_metadata(tmp_path):
    from engine.datasets import get_adapter

    folder = _tiny_cc_folder(tmp_path / "cc")
    (folder / "README.txt").write_text("INTEL-TAU subset\nthree images\n")
    adapter = get_adapter("color-constancy")
    adapter.validate(folder)
    sample = adapter.load(folder, "s1")
    assert sample.colour_space == "linear" and sample.truth["illuminant"] == pytest.approx([0.5, 0.8, 0.35])
    assert sample.frames[0].dtype == np.float32 and sample.frames[0].max() <= 1.0


@pytest.mark.parametrize("step", [4, 8, 12, 16])
def test_dense_selnet_equals_selnet_on_each_patch(step):
    torch.manual_seed(0)
    net = dsnet.DSNet().eval()
    uv = torch.randn(1, 2, 44 + 2 * step + 3, 44 + 3 * step + 1) * 0.3
    with torch.no_grad():
        dense = net.selnet.dense(uv, step)
        assert dense.shape == (2, 3, 4)
        for i in range(3):
            for j in range(4):
                patch = uv[:, :, step * i:step * i + 44, step * j:step * j + 44]
                torch.testing.assert_close(dense[:, i, j], net.selnet(patch)[0], atol=1e-4, rtol=1e-4)


def test_dense_and_per_patch_estimates_agree(tiny_weights):
    from engine.weights import load_state_dict

    net = dsnet.model_from_state(load_state_dict(tiny_weights))
    image = _scene(70, 100)
    invalid = np.zeros(image.shape[:2], bool)
    a = dsnet.estimate(net, image, invalid, torch.device("cpu"), stride=8, dense=True)
    b = dsnet.estimate(net, image, invalid, torch.device("cpu"), stride=8, dense=False)
    assert len(a["weights"]) == 4 * 8  # includes patches flush with the border, off the grid
    np.testing.assert_allclose(a["illuminant"], b["illuminant"], atol=1e-5)
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-4)
