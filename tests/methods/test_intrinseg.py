"""IntrinSeg: the authors' key layout (official-weights.md §3), heads, pre-processing, the converter on a synthetic
checkpoint, the runner's outputs, and the training recipe's losses and data (the Grosse LMSE loss is the metric)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import WeightsUnavailableError
from engine.methods import intrinseg as isg
from engine.train import intrinsic_data as idata


def _official_state(seed: int = 0, batches_tracked: bool = True, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict with the authors' 273 keys and shapes (official-weights.md §3), built from the table there."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv_bn(name: str, conv: int, c_out: int, c_in: int):
        state[f"{prefix}{name}.{conv}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * 0.05
        state[f"{prefix}{name}.{conv}.bias"] = torch.randn(c_out, generator=gen) * 0.05
        bn = f"{prefix}{name}.{conv + 1}"
        state[f"{bn}.weight"] = 1 + 0.1 * torch.randn(c_out, generator=gen)
        state[f"{bn}.bias"] = 0.1 * torch.randn(c_out, generator=gen)
        state[f"{bn}.running_mean"] = 0.1 * torch.randn(c_out, generator=gen)
        state[f"{bn}.running_var"] = 1 + torch.rand(c_out, generator=gen)
        if batches_tracked:
            state[f"{bn}.num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)

    for i, (o, c) in enumerate([(16, 3), (32, 16), (64, 32), (128, 64), (256, 128), (256, 256)]):
        conv_bn(f"conv{i}", 0, o, c)
    for t in range(3):
        for conv in (0, 3, 6, 9):
            conv_bn(f"mid.{t}", conv, 256, 256)
    for level, (o, c) in enumerate([(256, 1024), (128, 1024), (64, 512), (32, 256), (16, 128)]):
        for t in range(3):
            conv_bn(f"deconv{level}.{t}", 0, o, c)
    for t, c_out in enumerate((3, 3, 16)):
        conv_bn(f"output.{t}", 0, 16, 64)
        conv_bn(f"output.{t}", 3, c_out, 16)
    return state


def test_full_width_network_has_the_authors_273_keys_in_their_order():
    theirs = _official_state()
    ours = isg.IntrinSegNet(width=1.0).state_dict()
    assert len(theirs) == len(ours) == isg.OFFICIAL_KEYS == 273
    assert sum(1 for k in ours if not k.endswith("num_batches_tracked")) == 234
    assert list(ours) == list(theirs)  # conv0…conv5, mid.0-2, deconv0.0 … deconv4.2, output.0-2
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    floats = sum(v.numel() for k, v in ours.items() if not k.endswith("num_batches_tracked"))
    assert floats == 19_895_598


def test_every_head_ends_in_batchnorm_and_relu_and_softmax_only_in_eval():
    net = isg.IntrinSegNet(width=0.125)
    for head in net.output:
        assert isinstance(head[-3], nn.Conv2d) and isinstance(head[-2], nn.BatchNorm2d)
        assert isinstance(head[-1], nn.ReLU)
    assert [h[-3].out_channels for h in net.output] == [3, 3, 16]
    x = torch.rand(2, 3, 64, 96)
    _, _, scores = net.train()(x)
    scores = scores.detach()
    assert float(scores.min()) >= 0 and not torch.allclose(scores.sum(1), torch.ones(2, 64, 96))
    albedo, shading, probs = net.eval()(x)
    assert albedo.shape == shading.shape == (2, 3, 64, 96) and probs.shape == (2, 16, 64, 96)
    assert torch.allclose(probs.sum(1), torch.ones(2, 64, 96), atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 60, 96))


def test_decoder_concatenates_three_tasks_with_the_skip():
    net = isg.IntrinSegNet(width=1.0)
    assert net.deconv0[0][0].in_channels == 1024 and net.deconv1[2][0].in_channels == 3 * 256 + 256
    assert net.deconv4[1][0].in_channels == 3 * 32 + 32 and net.output[0][0].in_channels == 3 * 16 + 16
    assert isinstance(net.deconv2[0][3], nn.Upsample) and net.deconv2[0][3].mode == "bilinear"
    assert net.conv0[0].stride == (1, 1) and all(getattr(net, f"conv{i}")[0].stride == (2, 2) for i in range(1, 6))


def test_prepare_scales_by_the_image_maximum_and_optionally_truncates_to_8_bits():
    x = torch.tensor([0.1, 0.2, 0.4]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    torch.testing.assert_close(isg.prepare(x), x / 0.4)
    q = isg.prepare(x * 0.9, quantise=True)
    torch.testing.assert_close(q, torch.floor(x / 0.4 * 255) / 255)


def test_network_size_official_and_aspect():
    assert isg.network_size(1000, 3000, "official", 512) == (480, 352)
    assert isg.network_size(384, 512, "aspect", 512) == (384, 512)
    h, w = isg.network_size(3000, 4000, "aspect", 512)
    assert (h, w) == (384, 512) and h % 32 == 0 and w % 32 == 0
    assert isg.network_size(20, 20, "aspect", 512) == (32, 32)


def test_converter_loads_a_synthetic_official_checkpoint(tmp_path):
    state = _official_state(seed=3)
    path = tmp_path / "final.checkpoint"
    torch.save(state, path)
    converted = isg.convert_official(path)
    net = isg.model_from_state(converted)
    assert net.width == 1.0
    for key in ("conv0.0.weight", "mid.2.9.weight", "deconv4.1.1.running_var", "output.2.3.bias"):
        assert torch.equal(net.state_dict()[key], state[key])
    # Without num_batches_tracked (older PyTorch) and with a DataParallel prefix it still loads.
    lean = {k: v for k, v in _official_state(seed=3, prefix="module.").items() if "num_batches" not in k}
    torch.save(lean, path)
    assert torch.equal(isg.convert_official(path)["output.1.4.weight"], state["output.1.4.weight"])
    wrong = dict(state)
    wrong["output.2.3.weight"] = torch.zeros(18, 16, 3, 3)  # 18 raw garden IDs instead of 16 classes
    torch.save(wrong, path)
    with pytest.raises(WeightsUnavailableError, match="output.2.3.weight"):
        isg.convert_official(path)
    missing = dict(state)
    missing.pop("mid.1.3.weight")
    torch.save(missing, path)
    with pytest.raises(WeightsUnavailableError, match="not the IntrinSeg checkpoint"):
        isg.convert_official(path)


def test_decompose_returns_layers_at_the_input_size():
    net = isg.IntrinSegNet(width=0.125).eval()
    image = np.random.default_rng(0).random((70, 150, 3)).astype(np.float32)
    for mode in ("aspect", "official"):
        out = isg.decompose(image, net, torch.device("cpu"), mode, max_side=128)
        assert out["albedo"].shape == out["shading"].shape == (70, 150, 3)
        assert out["labels"].shape == (70, 150) and out["labels"].dtype == np.uint8
        assert out["confidence"].shape == (70, 150, 1) and float(out["confidence"].max()) <= 1
        assert out["class_probability"].shape == (16,) and abs(out["class_probability"].sum() - 1) < 1e-4


def test_legend_names_the_synth_classes_with_distinct_colours():
    from engine.synth import CLASS_NAMES

    legend = isg.legend()
    assert [e["name"] for e in legend] == list(CLASS_NAMES) and len(legend) == 16
    assert len({e["colour"] for e in legend}) == 16


def test_spec_declares_roles_and_runs_through_the_registry(tmp_path):
    from engine.registry import MethodInput, OutputKind, Role, Task, get_method, run_method
    from engine.weights import save_state_dict

    spec = get_method("intrinseg")
    assert spec.task == Task.INTRINSIC and spec.learned
    roles = {o.name: o.role for o in spec.outputs}
    assert roles["albedo"] == Role.REFLECTANCE and roles["shading"] == Role.SHADING
    assert roles["segmentation"] == Role.SEGMENTATION and spec.output("segmentation").kind == OutputKind.LABELS
    assert roles["confidence"] == Role.CONFIDENCE
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_state_dict(isg.IntrinSegNet(width=0.125).state_dict(), path)
    image = np.random.default_rng(1).random((40, 56, 3)).astype(np.float32)
    result, _, _ = run_method("intrinseg", MethodInput(frames=(image,)), {"max_side": 64}, device="cpu",
                              weights=str(path))
    assert result.layers["albedo"].shape == (40, 56, 3) and result.layers["segmentation"].shape == (40, 56)
    assert len(result.values["class_confidence"]) == 16 and len(result.info["legend"]) == 16


# --- recipe: losses and data --------------------------------------------------------------------------------------

def test_lmse_loss_is_the_benchmark_metric():
    from engine.metrics.intrinsic import lmse

    rng = np.random.default_rng(0)
    truth = rng.random((60, 80)) + 0.1
    estimate = truth * (1 + 0.3 * rng.standard_normal((60, 80))) + 0.05
    mask = np.ones((60, 80))
    mask[:, :15] = 0
    to_t = lambda a: torch.from_numpy(a).float()[None, None]  # noqa: E731
    ours = float(idata.lmse_loss(to_t(estimate), to_t(truth), to_t(mask)))
    assert ours == pytest.approx(lmse(truth, estimate, mask), rel=1e-4)
    assert float(idata.lmse_loss(to_t(truth * 3), to_t(truth), to_t(mask))) == pytest.approx(0, abs=1e-6)
    g = to_t(estimate).requires_grad_()
    idata.lmse_loss(g, to_t(truth), to_t(mask)).backward()
    assert torch.isfinite(g.grad).all() and float(g.grad.abs().sum()) > 0


def test_joint_scale_invariant_loss_sees_a_colour_cast_that_the_per_channel_one_forgives():
    rng = np.random.default_rng(1)
    truth = torch.from_numpy(rng.random((2, 3, 24, 32)) + 0.1).float()
    mask = torch.ones(2, 1, 24, 32)
    cast = truth * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)  # a yellow albedo predicted orange
    brighter = truth * 2.5  # the same colours at another overall scale
    assert float(idata.si_loss(cast, truth, mask)) == pytest.approx(0, abs=1e-6)
    assert float(idata.si_loss(cast, truth, mask, joint=True)) > 0.05
    assert float(idata.si_loss(brighter, truth, mask, joint=True)) == pytest.approx(0, abs=1e-6)
    grey = truth[:, :1].expand(-1, 3, -1, -1)  # a grey truth (MIT shading) broadcast to three channels
    assert float(idata.si_loss(grey * 0.5, grey, mask, joint=True)) == pytest.approx(0, abs=1e-6)


def test_channel_shuffle_keeps_each_decomposition_exact():
    torch.manual_seed(0)
    albedo, shading = torch.rand(16, 3, 8, 8), torch.rand(16, 3, 8, 8) + 0.1
    grey = torch.rand(16, 1, 8, 8)
    batch = {"image": albedo * shading, "albedo": albedo, "shading": shading, "mask": grey}
    out = idata.shuffle_channels(batch, 0.5)
    assert torch.allclose(out["image"], out["albedo"] * out["shading"])  # same permutation for all three
    assert out["mask"] is grey  # single-channel layers untouched
    moved = [not torch.equal(out["image"][i], batch["image"][i]) for i in range(16)]
    assert 2 <= sum(moved) <= 14  # about half the samples, each a true permutation of the channels
    for i in range(16):
        assert sorted(out["albedo"][i, :, 0, 0].tolist()) == sorted(albedo[i, :, 0, 0].tolist())
    assert idata.shuffle_channels(batch, 0.0) is batch


def test_white_balance_makes_the_light_grey_and_keeps_albedo_and_the_product():
    torch.manual_seed(0)
    albedo = torch.rand(3, 3, 16, 16) * 0.9 + 0.05
    light = torch.tensor([[0.7, 0.9, 1.3], [1.2, 1.0, 0.6], [1.0, 1.0, 1.0]])[:, :, None, None]
    shading = (torch.rand(3, 1, 16, 16) * 0.8 + 0.1) * light  # coloured sky, warm lamp, white light
    linear = albedo * shading
    srgb = torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    mask = torch.ones(3, 1, 16, 16)
    mask[:, :, :4] = 0  # the gain is measured inside the mask only
    out = idata.white_balance({"image": srgb, "albedo": albedo, "shading": shading, "mask": mask})
    assert out["albedo"] is albedo
    mean = (out["shading"] * mask).sum((2, 3)) / mask.sum((2, 3))
    assert torch.allclose(mean, mean.mean(1, keepdim=True).expand_as(mean), rtol=1e-5)  # grey light on average
    decoded = torch.where(out["image"] <= 0.04045, out["image"] / 12.92, ((out["image"] + 0.055) / 1.055) ** 2.4)
    assert torch.allclose(decoded, albedo * out["shading"], atol=1e-5)  # still image = albedo × shading
    assert torch.allclose(out["image"][2], srgb[2], atol=1e-5)  # a white light is left alone
    grey = {"image": srgb, "albedo": albedo, "shading": shading[:, :1], "mask": mask}
    assert idata.white_balance(grey) is grey  # MIT's one-channel shading: nothing to balance


def test_chroma_loss_sees_only_colour():
    rng = np.random.default_rng(2)
    truth = torch.from_numpy(rng.random((2, 3, 24, 32)) + 0.05).float()
    mask = torch.ones(2, 1, 24, 32)
    assert float(idata.chroma_loss(truth * 3.0, truth, mask)) == pytest.approx(0, abs=1e-6)  # scale is free
    shade = torch.from_numpy(rng.random((2, 1, 24, 32)) + 0.1).float()
    assert float(idata.chroma_loss(truth * shade, truth, mask)) == pytest.approx(0, abs=1e-6)  # so is shading
    cast = truth * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1)
    grey = truth.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    assert float(idata.chroma_loss(cast, truth, mask)) > 0.01
    assert float(idata.chroma_loss(grey, truth, mask)) > 0.005  # a washed-out albedo costs too
    outside = mask.clone()
    outside[:, :, :, 16:] = 0
    wrong_outside = torch.where(outside.bool().expand_as(truth), truth, cast)
    assert float(idata.chroma_loss(wrong_outside, truth, outside)) == pytest.approx(0, abs=1e-6)
    pred = cast.clone().requires_grad_(True)
    idata.chroma_loss(pred, truth, mask).backward()
    assert torch.isfinite(pred.grad).all() and float(pred.grad.abs().sum()) > 0


def test_masked_cross_entropy_ignores_unlabelled_pixels():
    scores = torch.zeros(2, 16, 4, 4)
    scores[0, 3] = 10.0
    labels = torch.full((2, 4, 4), 3, dtype=torch.long)
    seg_mask = torch.zeros(2, 1, 4, 4)
    seg_mask[0] = 1
    assert float(idata.masked_cross_entropy(scores, labels, seg_mask)) < 1e-3
    assert float(idata.masked_cross_entropy(scores, labels, torch.zeros_like(seg_mask))) == 0.0


def test_folds_cover_the_ten_objects_once():
    held = [o for fold in idata.FOLDS for o in fold]
    assert sorted(held) == sorted(idata.MIT_OBJECTS) and len(idata.FOLDS) == 5


def test_mit_samples_and_holdout(shared_dir):
    root = shared_dir / "data" / "mit-intrinsic"
    train, held = idata.mit_training_objects({"mit_dir": str(root), "fold": 0})
    assert held == ("apple", "box") and "apple" not in train and len(train) == 8
    data = idata.MITSamples(root, ["teabag2"], use_lights=True, scales=(0.5,))
    assert len(data) == 11  # diffuse + ten lights
    sample = data[3]
    assert sample["image"].shape == sample["albedo"].shape == sample["shading"].shape
    assert float(sample["seg_mask"].sum()) == 0 and float(sample["mask"].mean()) > 0.1
    assert float(sample["image"].max()) == pytest.approx(1.0)


def test_tiny_training_run_exports_weights_and_resumes(tmp_path):
    import json

    from engine.cli import main
    from engine.weights import load_state_dict

    run = tmp_path / "run"
    args = ["train", "intrinseg", "--data", "synthetic", "--device", "cpu", "--out", str(run),
            "--set", "synthetic_scenes=2", "--set", "render_size=48", "--set", "crop=32", "--set", "batch_size=2",
            "--set", "width=0.0625", "--set", "val_scenes=1", "--set", "lightings=1", "--set", "warmup=1",
            "--set", "checkpoint_every=1"]
    assert main([*args, "--steps", "2"]) == 0
    weights = load_state_dict(run / "export" / "intrinseg-trained.safetensors")
    assert weights["conv0.0.weight"].shape == (4, 3, 3, 3)
    assert "seg_accuracy" in (run / "validation.csv").read_text()
    # The cosine schedule's learning rate is stored as a plain float, so the checkpoint loads with weights_only and
    # the run resumes (a NumPy scalar there once made every IntrinSeg checkpoint unloadable).
    assert main([*args, "--steps", "3"]) == 0
    assert json.loads((run / "run.json").read_text())["resumed_from_step"] == 2


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda_device):
    torch.manual_seed(0)
    net = isg.IntrinSegNet(width=0.125).eval()
    image = np.random.default_rng(2).random((64, 96, 3)).astype(np.float32)
    cpu = isg.decompose(image, net, torch.device("cpu"), "aspect", 96)
    gpu = isg.decompose(image, net.to(cuda_device), cuda_device, "aspect", 96)
    np.testing.assert_allclose(gpu["albedo"], cpu["albedo"], atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(gpu["class_probability"], cpu["class_probability"], atol=1e-4)


def test_photographic_scene_style_adds_clutter_and_keeps_classic_unchanged():
    from engine.synth.scene import sample_scene

    classic = sample_scene(11)
    assert [o.label for o in sample_scene(11, style="classic").objects] == [o.label for o in classic.objects]
    counts = [len(sample_scene(s, style="photographic").objects) for s in range(12)]
    assert max(counts) > 6 and min(counts) >= 3  # classic scenes have 2–6 objects
    rooms = [sample_scene(s, style="photographic") for s in range(12)]
    indoor = [sc for sc in rooms if sc.room]
    assert indoor and all(len(sc.lightings[0].point_positions) >= 1 for sc in indoor)  # lamps indoors
    assert all(len(sc.lightings[0].point_positions) == 0 for sc in rooms if not sc.room)
    with pytest.raises(ValueError, match="style"):
        sample_scene(1, style="cartoon")


def test_shipped_weights_verify_and_run_by_name():
    from engine.registry import MethodInput, get_method, run_method
    from engine.weights import resolve_weights

    assert get_method("intrinseg").weights[0] == "mit"
    resolved = resolve_weights("intrinseg", "mit")
    assert resolved.source in ("shipped", "cache")
    image = np.random.default_rng(3).random((48, 80, 3)).astype(np.float32)
    result, _, _ = run_method("intrinseg", MethodInput(frames=(image,)), {"max_side": 64}, device="cpu")
    assert result.info["weights"]["sha256"] == resolved.sha256 and result.info["network_width"] == 0.5
    assert np.all(np.isfinite(result.layers["albedo"])) and int(result.layers["segmentation"].max()) < 16


def test_mit_albedo_swap_composites_are_exact_and_mix_two_objects(tmp_path):
    """mit_swap: extra MIT items that are one object's reflectance × another object's shading, cut to a common size;
    image = albedo × shading holds exactly (in linear light, up to the image's own scale); deterministic; the real
    samples come first and are unchanged."""
    from benchmark.tiny_data import write_tiny_mit
    from engine.datasets.mit import BARRON_TRAIN
    from engine.imaging import srgb_to_linear

    root = write_tiny_mit(tmp_path / "mit", count=3, side=32)
    names = list(BARRON_TRAIN[:3])
    plain = idata.MITSamples(root, names, use_lights=False)
    mixed = idata.MITSamples(root, names, use_lights=False, swap=0.5, seed=4)
    assert len(mixed) == 2 * len(plain) and mixed.n_swap == len(plain)
    assert torch.equal(mixed[0]["image"], plain[0]["image"])
    reflectances = [idata.load_mit_object(root, n, lights=False)["reflectance"] for n in names]
    colours = set()
    for k in range(len(plain), len(mixed)):
        item = mixed[k]
        m = item["mask"][0] > 0
        assert m.sum() > 50
        linear = srgb_to_linear(item["image"].double())
        product = (item["albedo"] * item["shading"]).double()
        ratio = (linear[:, m] / product[:, m].clamp(min=1e-6))
        assert torch.allclose(ratio, ratio.mean(), rtol=1e-3)  # exact decomposition, one scale
        albedo = item["albedo"][:, m].mean(1).numpy()
        source = min(range(3), key=lambda i: np.abs(reflectances[i].reshape(-1, 3) - albedo).min())
        colours.add(source)
        assert torch.equal(mixed[k]["image"], item["image"])  # deterministic
    assert len(colours) >= 2  # albedos drawn from several objects
