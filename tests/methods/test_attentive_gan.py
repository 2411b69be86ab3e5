"""Attentive GAN: the official generator's layout and inference details, the gen.pkl converter (on a synthetic file
with the official keys and shapes), the residual identity, tiling, the runner, the losses and a tiny training run."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import WeightsUnavailableError
from engine.methods import attentive_gan as ag
from engine.ops.tiling import tile_starts
from engine.registry import MethodInput, Role, RunContext, get_method

#: official-weights.md §1: key → shape, a sample of the table
OFFICIAL_SAMPLE = {
    "det_conv0.0.weight": (32, 4, 3, 3), "det_conv3.2.weight": (32, 32, 3, 3), "conv_g.0.weight": (32, 64, 3, 3),
    "det_conv_mask.0.weight": (1, 32, 3, 3), "conv1.0.weight": (64, 4, 5, 5), "conv2.0.weight": (128, 64, 3, 3),
    "conv4.0.weight": (256, 128, 3, 3), "diconv4.0.weight": (256, 256, 3, 3), "deconv1.0.weight": (256, 128, 4, 4),
    "deconv2.0.weight": (128, 64, 4, 4), "conv10.0.weight": (32, 64, 3, 3), "outframe1.0.weight": (3, 256, 3, 3),
    "outframe2.0.weight": (3, 128, 3, 3), "output.0.weight": (3, 32, 3, 3), "output.0.bias": (3,),
}


def _official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.05 for k, s in ag.official_shapes().items()}


def test_official_layout_keys_shapes_and_count():
    shapes = ag.official_shapes()
    assert len(shapes) == 70
    assert sum(int(np.prod(s)) for s in shapes.values()) == 6_244_362
    for key, shape in OFFICIAL_SAMPLE.items():
        assert shapes[key] == shape, key
    keys = list(shapes)
    assert all(keys[i].endswith(".weight") and keys[i + 1] == keys[i][:-6] + "bias" for i in range(0, 70, 2))


def test_attention_map_has_no_sigmoid_and_deconv_pads_then_pools():
    torch.manual_seed(0)
    g = ag.AttentiveGenerator(4, 8).eval()
    with torch.no_grad():
        g.det_conv_mask[0].bias.fill_(-3.0)
        masks, f1, f2, out = g(torch.rand(1, 3, 16, 20))
    assert len(masks) == 4 and float(masks[-1].max()) < 0  # a sigmoid would keep it in (0, 1)
    assert f1.shape[-2:] == (4, 5) and f2.shape[-2:] == (8, 10) and out.shape[-2:] == (16, 20)
    # deconv: ConvT 4×4 s2 p1 → ReflectionPad (left 1, top 1) → AvgPool 2×2 stride 1 → ReLU
    x = torch.randn(1, 32, 5, 6)
    conv_t = g.deconv1[0]
    y = F.conv_transpose2d(x, conv_t.weight, conv_t.bias, stride=2, padding=1)
    y = F.pad(y, (1, 0, 1, 0), mode="reflect")
    expected = F.relu(0.25 * (y[..., :-1, :-1] + y[..., 1:, :-1] + y[..., :-1, 1:] + y[..., 1:, 1:]))
    torch.testing.assert_close(g.deconv1(x), expected)
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.rand(1, 3, 18, 20))


def test_residual_generator_starts_as_the_identity():
    torch.manual_seed(0)
    g = ag.AttentiveGenerator(**ag.PROJECT_ARCH).eval()
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        masks, f1, f2, out = g(x)
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(f1, F.avg_pool2d(x, 4))


def _reference_forward(state, image):
    """The official forward written out with functional ops from the state dict alone (no module code)."""
    def conv(x, name, stride=1, dilation=1, act=F.relu):
        w, b = state[f"{name}.weight"], state[f"{name}.bias"]
        y = F.conv2d(x, w, b, stride, padding=dilation * (w.shape[-1] // 2), dilation=dilation)
        return act(y) if act else y

    def deconv(x, name):
        y = F.conv_transpose2d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride=2, padding=1)
        return F.relu(F.avg_pool2d(F.pad(y, (1, 0, 1, 0), mode="reflect"), 2, stride=1))

    n, _, h, w = image.shape
    mask = torch.full((n, 1, h, w), 0.5)
    hid = torch.zeros(n, 32, h, w)
    cell = torch.zeros(n, 32, h, w)
    for _ in range(4):
        x = conv(torch.cat([image, mask], 1), "det_conv0.0")
        for i in range(1, 6):
            x = F.relu(conv(conv(x, f"det_conv{i}.0"), f"det_conv{i}.2") + x)
        x = torch.cat([x, hid], 1)
        i_, f_ = conv(x, "conv_i.0", act=torch.sigmoid), conv(x, "conv_f.0", act=torch.sigmoid)
        g_, o_ = conv(x, "conv_g.0", act=torch.tanh), conv(x, "conv_o.0", act=torch.sigmoid)
        cell = f_ * cell + i_ * g_
        hid = o_ * torch.tanh(cell)
        mask = conv(hid, "det_conv_mask.0", act=None)
    x = conv(torch.cat([image, mask], 1), "conv1.0")
    s1 = x
    x = conv(conv(x, "conv2.0", 2), "conv3.0")
    s2 = x
    x = conv(conv(conv(x, "conv4.0", 2), "conv5.0"), "conv6.0")
    for i, d in enumerate((2, 4, 8, 16), 1):
        x = conv(x, f"diconv{i}.0", dilation=d)
    x = conv(conv(x, "conv7.0"), "conv8.0")
    x = conv(deconv(x, "deconv1.0") + s2, "conv9.0")
    x = conv(deconv(x, "deconv2.0") + s1, "conv10.0")
    return mask, conv(x, "output.0", act=None)


def test_converter_on_a_synthetic_official_file(tmp_path):
    state = _official_state()
    path = tmp_path / "gen.pkl"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # a DataParallel prefix is tolerated
    converted = ag.convert_official(path)
    assert int(converted["_meta.bgr"]) == 1 and int(converted["_meta.residual"]) == 0
    model, arch = ag.build_from_state(converted)
    assert arch == {"bgr": True, "residual": False, "att": 32, "base": 64}
    image = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        masks, _, _, out = model.eval()(image)
        ref_mask, ref_out = _reference_forward(state, image)
    torch.testing.assert_close(masks[-1], ref_mask, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-4)


def test_converter_refuses_wrong_files(tmp_path):
    state = _official_state()
    state["conv9.0.weight"] = torch.zeros(128, 128, 5, 5)
    torch.save(state, tmp_path / "wrong.pkl")
    with pytest.raises(WeightsUnavailableError, match="unexpected shapes"):
        ag.convert_official(tmp_path / "wrong.pkl")
    torch.save({"conv1.0.weight": torch.zeros(1)}, tmp_path / "other.pkl")
    with pytest.raises(WeightsUnavailableError, match="missing"):
        ag.convert_official(tmp_path / "other.pkl")

    class Evil:  # a pickled object is refused by weights_only=True, never executed
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"x": Evil()}, tmp_path / "evil.pkl")
    with pytest.raises(WeightsUnavailableError):
        ag.convert_official(tmp_path / "evil.pkl")


def test_official_import_and_run_in_bgr_with_the_crop_rule(tmp_path, monkeypatch):
    from engine.weights import import_official

    monkeypatch.setenv("INTRINSIC_LAB_DATA", str(tmp_path / "data"))
    torch.save(_official_state(1), tmp_path / "gen.pkl")
    target, provenance = import_official("attentive_gan", tmp_path / "gen.pkl")
    assert provenance["tensors"] == 72 and target.is_file()
    spec = get_method("attentive_gan")
    image = np.random.default_rng(0).random((30, 37, 3)).astype(np.float32)
    ctx = RunContext(device=torch.device("cpu"), weights="official")
    result = spec.runner()(MethodInput((image,)), spec.resolve_params({"size_rule": "crop"}), ctx)
    clean = result.layers["clean"]
    assert clean.shape == (30, 37, 3) and result.layers["attention"].shape == (4, 30, 37, 1)
    np.testing.assert_array_equal(clean[28:], image[28:])  # outside the multiple-of-4 crop: the input
    np.testing.assert_array_equal(clean[:, 36:], image[:, 36:])
    # The network saw BGR: compare with a direct call on the flipped crop.
    model, _ = ag.build_from_state(ag.convert_official(tmp_path / "gen.pkl"))
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(image[:28, :36, ::-1].transpose(2, 0, 1)))[None]
        out = model.eval()(x)[3][0].permute(1, 2, 0).numpy()[:, :, ::-1]
    np.testing.assert_allclose(clean[:28, :36], np.clip(out, 0, 1), atol=1e-5)
    assert result.info["bgr"] is True


def _reference_attention(g: ag.AttentiveGenerator, image: torch.Tensor) -> list[torch.Tensor]:
    """The ConvLSTM of methods.md §5 written out: four gate convolutions, sigmoid for i, f, o and tanh for g."""
    n, _, h, w = image.shape
    mask = torch.full((n, 1, h, w), 0.5, dtype=image.dtype)
    hidden, cell = torch.zeros(n, g.att, h, w, dtype=image.dtype), torch.zeros(n, g.att, h, w, dtype=image.dtype)
    masks = []
    for _ in range(ag.ITERATIONS):
        x = g.det_conv0(torch.cat([image, mask], 1))
        for i in range(1, 6):
            x = F.relu(getattr(g, f"det_conv{i}")(x) + x)
        x = torch.cat([x, hidden], 1)
        i_gate, f_gate, o_gate = g.conv_i(x), g.conv_f(x), g.conv_o(x)
        cell = f_gate * cell + i_gate * g.conv_g(x)
        hidden = o_gate * torch.tanh(cell)
        mask = g.det_conv_mask(hidden)
        masks.append(mask)
    return masks


@pytest.mark.parametrize("grad", [False, True])
def test_the_fused_lstm_gates_compute_the_papers_convlstm(grad):
    """One convolution and one sigmoid for all four gates (conv_g doubled, tanh(z) = 2·sigmoid(2z) − 1), in place
    at inference: the same maps and the same gradients as the four gates written out."""
    torch.manual_seed(3)
    g = ag.AttentiveGenerator(4, 8).double()  # float64: the two must agree to rounding, not to float32's
    for p in g.parameters():
        p.data.normal_(0, 0.3)
    image = torch.rand(1, 3, 20, 24, dtype=torch.float64)
    with torch.set_grad_enabled(grad):
        fused, reference = g.attention(image), _reference_attention(g, image)
    for a, b in zip(fused, reference):
        assert float((a - b).detach().abs().max()) < 1e-10
    if grad:
        ours = torch.autograd.grad(fused[-1].square().sum(), list(g.parameters()), allow_unused=True)
        theirs = torch.autograd.grad(reference[-1].square().sum(), list(g.parameters()), allow_unused=True)
        for a, b in zip(ours, theirs):
            if a is not None or b is not None:
                assert float((a - b).abs().max()) < 1e-9 * max(1.0, float(b.abs().max()))


def test_tiles_blend_without_seams():
    torch.manual_seed(0)
    g = ag.AttentiveGenerator(4, 8).eval()
    image = torch.rand(1, 3, 300, 420)
    whole_out, whole_masks = ag.derain_tensor(g, image, tile=1024)
    tiled_out, tiled_masks = ag.derain_tensor(g, image, tile=ag._MIN_TILE)
    assert len(tile_starts(420, ag._MIN_TILE, ag._HALO, ag._BLEND, align=4)) > 1
    # Away from the image border, the halo covers what matters: tiles agree with the whole image.
    assert tiled_out.shape == whole_out.shape and tiled_masks.shape == whole_masks.shape == (4, 1, 300, 420)
    assert float((tiled_out - whole_out).abs().max()) < 2e-3
    assert float((tiled_masks - whole_masks).abs().max()) < 2e-3


def test_the_cpu_tiles_a_phone_photo_from_the_memory_budget():
    """A 1-megapixel photo runs whole; a 12-megapixel one in the fewest tiles whose activations fit what the photo's
    buffers leave of the job budget, and the job check lets it through (it refused 12 MP at the former 400 B/px)."""
    from engine.limits import check_job_memory

    g = ag.AttentiveGenerator(8, 16)
    budget = 2 << 30
    assert ag.tile_plan(816, 1224, g, budget).whole
    plan = ag.tile_plan(3000, 4000, g, budget)
    assert not plan.whole and plan.rows * plan.cols <= 12
    network = plan.tile[0] * plan.tile[1] * ag.network_bytes_per_pixel(g)
    assert network + 3000 * 4000 * ag.BUFFER_BYTES_PER_PIXEL <= budget
    assert plan.work < 1.45  # halos recomputed (the former fixed 1536-px tiles: 12 tiles, 2.36× the work)
    official = ag.tile_plan(3000, 4000, ag.AttentiveGenerator(), budget)  # 4× the channels: smaller tiles
    assert official.tile[0] * official.tile[1] < plan.tile[0] * plan.tile[1]
    check_job_memory(get_method("attentive_gan"), 1, 4000, 3000)


def test_spec_outputs_and_roles():
    spec = get_method("attentive_gan")
    assert spec.task == "derain" and spec.input_kind == "image"
    roles = {o.name: o.role for o in spec.outputs}
    assert roles == {"clean": Role.CLEAN, "attention": Role.ATTENTION}
    assert spec.weights == ("project", "official")


def _shipped_or_skip():
    from engine.weights import get_weight_set

    ws = get_weight_set("attentive_gan", "project")
    if not ws.shipped_path.is_file():
        pytest.skip("shipped attentive_gan weights are not in assets/weights")
    return ws


def test_runner_with_shipped_weights_keeps_a_dry_photo(shared_dir):
    _shipped_or_skip()
    from engine.imaging import read_image
    from engine.metrics import fidelity

    photos = sorted((shared_dir / "data" / "photos" / "kodak24").glob("*.png"))
    if not photos:
        pytest.skip("no Kodak photos in the shared folder")
    image = read_image(photos[0]).pixels[:160, :200]
    spec = get_method("attentive_gan")
    result = spec.runner()(MethodInput((image,)), spec.defaults(), RunContext(device=torch.device("cpu")))
    assert result.layers["clean"].shape == image.shape
    assert result.layers["attention"].shape == (4, 160, 200, 1)
    assert fidelity.psnr(image, result.layers["clean"]) >= 32.0


def test_gan_losses_and_a_tiny_training_run(tmp_path):
    import cv2

    from engine.train.attentive_gan_recipe import drop_mask, is_validation_background
    from engine.train.loop import TrainRequest, train
    from engine.weights import load_state_dict

    photos = tmp_path / "photos"
    photos.mkdir()
    names = [f"p{i}" for i in range(40)]
    val = [n for n in names if zlib.crc32(n.encode()) % 10 == 0][:1]
    use = val + [n for n in names if n not in val][:2]
    rng = np.random.default_rng(0)
    for name in use:
        img = cv2.resize(rng.integers(0, 255, (8, 12, 3), dtype=np.uint8), (96, 64), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(photos / f"{name}.png"), img)
    assert any(is_validation_background(photos / f"{n}.png") for n in use)
    x = torch.zeros(1, 3, 2, 2)
    y = x.clone()
    y[0, 1, 0, 0] = 31 / 255
    y[0, 0, 1, 1] = 29 / 255
    assert drop_mask(x, y)[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    request = TrainRequest("attentive_gan", str(photos), steps=2, out=tmp_path / "run", device="cpu", progress=False,
                           overrides={"batch_size": 2, "crop": 32, "val_crop": 32, "val_count": 1, "val_every": 0,
                                      "workers": 1, "crops_per_render": 2, "short_side": 64})
    result = train(request)
    rows = (tmp_path / "run" / "metrics.csv").read_text()
    assert "discriminator/real" in rows and "generator/att" in rows
    state = load_state_dict(result.weights)
    assert int(state["_meta.residual"]) == 1 and not any(k.startswith("discriminator") for k in state)
    model, arch = ag.build_from_state(state)
    assert (arch["att"], arch["base"]) == (8, 16)
    assert np.isfinite(result.validation["psnr_rgb"]) and "dry_psnr" in result.validation

    # fine-tuning: init=FILE starts the generator from an export (the critic starts new), and the card says so
    from engine.train.attentive_gan_recipe import AttentiveGANRecipe

    recipe = AttentiveGANRecipe()
    tuned = recipe.build_model({**recipe.defaults, "init": str(result.weights)})
    fresh = recipe.build_model(dict(recipe.defaults))
    for key, value in tuned.generator.state_dict().items():
        assert torch.equal(value, state[key].float()), key
    assert any(not torch.equal(v, fresh.generator.state_dict()[k]) for k, v in tuned.generator.state_dict().items())
    _, card = recipe.export(tuned, {**recipe.defaults, "init": str(result.weights)})
    assert card["initialised from"] == str(result.weights)


def test_synthetic_batches_do_not_depend_on_threads_or_prefetch():
    from engine.train.attentive_gan_recipe import SyntheticRaindrops, _ThreadedStream

    rng = np.random.default_rng(0)
    bgs = [rng.integers(0, 255, (80, 120, 3), dtype=np.uint8) for _ in range(3)]
    data = SyntheticRaindrops(bgs, 100, 32, 0)
    threaded, plain = _ThreadedStream(data, 4, 0, 2, 2), _ThreadedStream(data, 4, 0, 1, 2)
    for step in (0, 1, 3, 2):  # out of order too (a resumed run)
        a, b = threaded.batch(step), plain.batch(step)
        assert a["image"].shape == (4, 3, 32, 32)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_dashboard_heat_overlay_of_an_attention_map():
    from dashboard.images import heat_overlay

    image = np.full((40, 60, 3), 128, np.uint8)
    heat = np.zeros((20, 30, 3), np.uint8)  # a map at half size, as stored maps of a tiled run may be shown
    heat[5:10, 5:10] = 255
    out = heat_overlay(image, heat)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], image[0, 0])  # zero attention: the photo shows through
    assert out[15, 15, 2] < 100 and out[15, 15, 0] >= 120  # full attention: tinted toward JET's red end


def test_perceptual_loss_is_off_by_default_and_takes_a_user_vgg16_file(tmp_path):
    from engine.train.attentive_gan_recipe import AttentiveGANRecipe

    shapes = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256)}
    state = {}
    for index, (cout, cin) in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(cout)
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of a torchvision vgg16 file is ignored
    torch.save(state, tmp_path / "vgg16.pth")
    batch = {"image": torch.rand(1, 3, 32, 32), "target": torch.rand(1, 3, 32, 32)}
    recipe = AttentiveGANRecipe()
    config = recipe.config({"vgg_weights": ""})
    recipe.begin(config)
    model = recipe.build_model(config)
    _, terms = recipe.loss(model, batch, None, "generator")
    assert "perceptual" not in terms
    config = recipe.config({"vgg_weights": str(tmp_path / "vgg16.pth")})
    recipe.begin(config)
    loss, terms = recipe.loss(model, batch, None, "generator")
    assert terms["perceptual"] > 0 and torch.isfinite(loss)
    loss.backward()
    assert model.generator.conv1[0].weight.grad is not None
    _, d_terms = recipe.loss(model, batch, None, "discriminator")
    assert set(d_terms) == {"real", "fake", "map"}
    recipe.begin(recipe.config())


def test_recipe_trains_on_heavy_drops_by_default_and_names_a_bad_preset(tmp_path):
    from engine.synth.raindrops import drop_preset
    from engine.train.attentive_gan_recipe import AttentiveGANRecipe, main

    recipe = AttentiveGANRecipe()
    assert recipe.defaults["drops"] == "heavy"
    assert recipe._options({**recipe.defaults, "dry_fraction": 0.3}) == drop_preset("heavy", dry=0.3)
    assert recipe._options({**recipe.defaults, "drops": "light"}) == drop_preset("light", dry=0.1)
    with pytest.raises(ValueError, match="unknown drop preset 'rain'"):
        recipe._options({**recipe.defaults, "drops": "rain"})
    with pytest.raises(SystemExit):  # the evaluation command offers only the named presets
        main(["--evaluate", str(tmp_path / "w.safetensors"), "--backgrounds", str(tmp_path), "--drops", "rain"])
