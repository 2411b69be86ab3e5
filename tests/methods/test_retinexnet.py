"""RetinexNet: TF 'SAME' semantics on odd sizes, the losses, training steps, the official DecomNet conversion,
tiling, the runner with shipped weights, and CPU/GPU agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.device import autocast
from engine.methods import retinexnet as rn
from engine.ops.tiling import same_padding
from engine.train import retinexnet_recipe as recipe

OFFICIAL = "weights/retinexnet-official"


def _reference_same_conv(x, conv, stride):
    """TF 'SAME' written out by hand: out = ceil(in / s), total pad = (out − 1)·s + k − in, the odd one after."""
    k = conv.weight.shape[-1]
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), conv.weight, conv.bias, stride)


@pytest.mark.parametrize("size", [(7, 9), (8, 10), (13, 6), (1, 5)])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (9, 1), (1, 1), (3, 2)])
def test_same_conv_matches_explicit_padding(size, kernel, stride):
    torch.manual_seed(0)
    conv = rn.SameConv2d(2, 3, kernel, stride)
    x = torch.randn(1, 2, *size)
    out = conv(x)
    assert out.shape[-2:] == tuple(-(-s // stride) for s in size)
    torch.testing.assert_close(out, _reference_same_conv(x, conv, stride))


def test_stride2_padding_is_asymmetric_on_even_sizes():
    assert same_padding(8, 3, 2) == (0, 1)  # TF pads after only; PyTorch's padding=1 would pad both sides
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(6, 9, 1) == (4, 4)
    # With a kernel picking the top-left tap, output row 0 must read input row 0 (no padding row before it).
    conv = rn.SameConv2d(1, 1, 3, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
        conv.bias.zero_()
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    torch.testing.assert_close(conv(x)[0, 0], torch.tensor([[1.0, 3.0], [9.0, 11.0]]))


def test_nearest_resize_to_skip_size_picks_floor_of_scaled_index():
    x = torch.arange(7.0).view(1, 1, 1, 7)
    ref = torch.zeros(1, 1, 1, 13)
    expected = torch.tensor([float(np.floor(j * 7 / 13)) for j in range(13)])
    torch.testing.assert_close(rn.resize_like(x, ref)[0, 0, 0], expected)


@pytest.mark.parametrize("size", [(9, 11), (17, 6), (33, 35)])
def test_networks_keep_any_size(size):
    torch.manual_seed(0)
    model = rn.RetinexNet().eval()
    with torch.no_grad():
        r, i, delta, enhanced = model(torch.rand(1, 3, *size))
    assert r.shape == (1, 3, *size) and i.shape == delta.shape == (1, 1, *size)
    assert 0 < float(r.min()) and float(r.max()) < 1 and 0 < float(i.min()) and float(i.max()) < 1
    torch.testing.assert_close(enhanced, r * delta)


def test_relightnet_matches_the_authors_concatenation_on_odd_sizes():
    torch.manual_seed(0)
    net = rn.RelightNet().eval()
    r, i = torch.rand(1, 3, 21, 13), torch.rand(1, 1, 21, 13)
    with torch.no_grad():
        x0 = net.conv0(torch.cat([r, i], 1))
        x1 = F.relu(_reference_same_conv(x0, net.down[0], 2))
        x2 = F.relu(_reference_same_conv(x1, net.down[1], 2))
        x3 = F.relu(_reference_same_conv(x2, net.down[2], 2))
        def up(x, ref):
            return F.interpolate(x, size=ref.shape[-2:], mode="nearest")

        d1 = F.relu(net.up[0](up(x3, x2))) + x2
        d2 = F.relu(net.up[1](up(d1, x1))) + x1
        d3 = F.relu(net.up[2](up(d2, x0))) + x0
        expected = net.output(net.fusion(torch.cat([up(d1, d3), up(d2, d3), d3], 1)))
        torch.testing.assert_close(net(r, i), expected, atol=1e-5, rtol=1e-5)


def test_gradient_matches_the_authors_kernel_offsets():
    x = torch.tensor([[1.0, 2.0, 4.0], [0.0, 3.0, 9.0], [5.0, 5.0, 1.0]]).view(1, 1, 3, 3)
    # x-direction: |in[i+1, j+1] − in[i+1, j]|, zero beyond the bottom/right border.
    expected_x = torch.tensor([[3.0, 6.0, 9.0], [0.0, 4.0, 1.0], [0.0, 0.0, 0.0]])
    expected_y = torch.tensor([[1.0, 5.0, 0.0], [2.0, 8.0, 0.0], [5.0, 1.0, 0.0]])
    torch.testing.assert_close(recipe.gradient(x, "x")[0, 0], expected_x)
    torch.testing.assert_close(recipe.gradient(x, "y")[0, 0], expected_y)


def test_smoothness_is_zero_for_flat_illumination_and_relaxed_at_reflectance_edges():
    reflectance = torch.rand(1, 3, 8, 8)
    assert float(recipe.smoothness(torch.zeros(1, 1, 8, 8), reflectance)) == 0.0
    # A flat non-zero illumination only pays at the last row/column, where TF's zero padding makes an edge.
    edge = recipe.gradient(torch.full((1, 1, 8, 8), 0.5), "x")[0, 0]
    assert float(edge[:, :-1].abs().max()) == 0.0 and float(edge[:-1, -1].min()) == 0.5
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    plain = recipe.smoothness(ramp, torch.full((1, 3, 8, 8), 0.5))
    edged = recipe.smoothness(ramp, torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8) * 4)
    assert float(edged) < float(plain)


def _synthetic_pairs(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    high = F.avg_pool2d(torch.rand(n, 3, size, size, generator=g), 5, 1, 2)
    low = high * 0.15 + 0.01 * torch.rand(n, 3, size, size, generator=g)
    return low, high


def _needs_native_bfloat16(precision):
    from engine.device import native_bfloat16

    if precision == torch.bfloat16 and not native_bfloat16(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 or AMX)")


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("phase", ["decom", "relight"])
def test_a_few_training_steps_reduce_the_loss(phase, precision):
    _needs_native_bfloat16(precision)
    torch.manual_seed(0)
    model = rn.RetinexNet()
    low, high = _synthetic_pairs()
    params = recipe.RECIPE.trainable_parameters(model, recipe.Phase(phase))
    frozen = [p.clone() for p in (model.relight if phase == "decom" else model.decom).parameters()]
    optimiser = torch.optim.Adam(params, lr=1e-3)
    fn = recipe.decom_loss if phase == "decom" else recipe.relight_loss
    losses = []
    for _ in range(8):
        with autocast("cpu", precision):
            loss, terms = fn(model, low, high)
        assert loss.dtype == torch.float32  # losses stay float32 under autocast
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
    other = model.relight if phase == "decom" else model.decom
    assert all(torch.equal(a, b) for a, b in zip(frozen, other.parameters()))


def test_networks_start_from_tensorflows_default_initialisation():
    # tf.layers.conv2d: Glorot-uniform kernels, zero biases (what the authors trained from).
    torch.manual_seed(0)
    for name, conv in rn.RetinexNet().named_modules():
        if isinstance(conv, torch.nn.Conv2d):
            out_c, in_c, kh, kw = conv.weight.shape
            bound = (6.0 / ((in_c + out_c) * kh * kw)) ** 0.5
            assert torch.count_nonzero(conv.bias) == 0, name
            assert 0.9 * bound < float(conv.weight.detach().abs().max()) <= bound, name


def test_recipe_lr_schedule_and_split_are_the_papers():
    config = recipe.RECIPE.config()
    assert (config["lr"], config["batch_size"], config["patch_size"]) == (1e-3, 16, 48)
    phase = recipe.Phase("decom")
    assert recipe.RECIPE.lr_factor(199, 1000, config, phase) == 1.0
    assert recipe.RECIPE.lr_factor(200, 1000, config, phase) == pytest.approx(0.1)
    pairs = [(f"{i}.png", f"{i}.png") for i in range(20)]
    train, val = recipe.split_pairs(pairs, 5, seed=0)
    assert len(val) == 5 and len(train) == 15 and not set(val) & set(train)
    assert recipe.split_pairs(pairs, 5, seed=0) == (train, val)
    modes = {tuple(recipe.augment(np.arange(4).reshape(2, 2), m).ravel()) for m in range(8)}
    assert len(modes) == 8  # the 8 dihedral transforms are distinct


def test_exposure_jitter_rescales_only_the_low_patch_in_linear_light():
    from engine.imaging import srgb_to_linear

    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.3, (40, 40, 3)).astype(np.float32)
    high = rng.uniform(0.2, 0.9, (40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(recipe.rescale_exposure(low, 1.0), low, atol=1e-5)
    doubled = srgb_to_linear(recipe.rescale_exposure(low, 2.0))
    np.testing.assert_allclose(doubled, np.minimum(2 * srgb_to_linear(low), 1), atol=1e-5)
    gains = []
    for seed in range(40):
        plain = recipe.random_patch_pair(low, high, 16, np.random.default_rng(seed))
        jittered = recipe.random_patch_pair(low, high, 16, np.random.default_rng(seed), exposure_jitter=2.0)
        torch.testing.assert_close(jittered["high"], plain["high"])  # same crop and transform, target untouched
        ratio = srgb_to_linear(jittered["low"].numpy()) / np.maximum(srgb_to_linear(plain["low"].numpy()), 1e-6)
        gains.append(float(np.median(ratio)))
    assert 0.5 - 1e-3 <= min(gains) and max(gains) <= 2.0 + 1e-3
    assert min(gains) < 0.8 and max(gains) > 1.25  # both darker and brighter re-exposures occur


def _whole_and_tiled(height, width):
    torch.manual_seed(0)
    model = rn.RetinexNet().eval()
    image = F.avg_pool2d(torch.rand(1, 3, height, width), 5, 1, 2)
    return rn.enhance_tensor(model, image, tile=1024), rn.enhance_tensor(model, image, tile=160)


def test_tiles_match_the_whole_image_without_seams():
    whole, tiled = _whole_and_tiled(248, 208)  # multiples of 8: tiles sit on the whole image's stride-8 grid
    for name in whole:
        torch.testing.assert_close(tiled[name], whole[name], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(251, 203), (170, 229)])
def test_tiles_reproduce_the_whole_image_on_odd_sizes(size):
    # Odd sizes shift TF's stride-2 grid and make the nearest resizes drift; tiles must follow the whole image.
    whole, tiled = _whole_and_tiled(*size)
    for name in whole:
        torch.testing.assert_close(tiled[name], whole[name], atol=1e-5, rtol=0)


def test_channels_last_tiles_match_the_default_layout():
    torch.manual_seed(0)
    model = rn.RetinexNet().eval()
    image = torch.rand(1, 3, 171, 229)
    whole = rn.enhance_tensor(model, image, tile=1024)
    model = model.to(memory_format=torch.channels_last)  # what the runner uses
    tiled = rn.enhance_tensor(model, image.contiguous(memory_format=torch.channels_last), tile=160)
    for name in whole:
        torch.testing.assert_close(tiled[name], whole[name], atol=1e-5, rtol=0)


def test_tile_geometry_matches_interpolate_and_padding():
    geometry = rn.TileGeometry(301, 417, 0, 0)
    assert geometry.size(3) == (38, 53)
    assert geometry.down_padding(0) == (1, 1) and geometry.down_padding(2) == (0, 1)  # 76×105 at level 2
    x = torch.rand(1, 2, 76, 105)  # level 2 of 301×417
    ref = torch.zeros(1, 1, 301, 417)
    torch.testing.assert_close(geometry.resize(x, 2, ref, 0), F.interpolate(x, size=(301, 417), mode="nearest"))


def test_tf_names_map_to_every_parameter():
    targets = {v for v in rn.TF_TO_TORCH.values()}
    modules = {k.rsplit(".", 1)[0] for k in rn.RetinexNet().state_dict()}
    assert targets == modules
    assert rn.tf_name_to_torch("DecomNet/recon_layer/kernel") == "decom.recon.weight"
    assert rn.tf_name_to_torch("RelightNet/conv2d_7/bias") == "relight.fusion.bias"
    assert rn.tf_name_to_torch("DecomNet/recon_layer/kernel/AdamOptimizer") is None
    assert rn.tf_name_to_torch("beta1_power") is None


def test_official_decom_reconstructs_a_lol_image(shared_dir):
    from engine.imaging import read_image, to_tensor

    state = rn.convert_official(shared_dir / OFFICIAL)
    decom, relight = rn.split_state(state)
    assert relight == {}  # the Relight data file is not available; its older copy in Decom/ is not taken
    assert decom["shallow.weight"].shape == (64, 4, 9, 9)
    net = rn.DecomNet()
    net.load_state_dict(decom)
    low = read_image(shared_dir / "data/lol/our485/low/102.png").pixels[100:260, 200:440]
    with torch.no_grad():
        r, i = net.eval()(to_tensor(low))
    mae = float((r * i - to_tensor(low)).abs().mean())
    assert mae < 0.01
    assert float(r.mean()) > 2 * float(low.mean())  # reflectance is the brightened, lighting-free layer


def test_relight_converter_finds_the_full_network_in_the_index(shared_dir):
    from engine.convert.tf_checkpoint import list_variables

    names = rn._complete_set(list_variables(shared_dir / OFFICIAL / "Relight"), "relight")
    assert names is not None and len(names) == 18
    assert names["relight.fusion.weight"] == "RelightNet/conv2d_7/kernel"
    assert names["relight.down.0.weight"] == "RelightNet/conv2d_1/kernel"
    # The Decom checkpoint's RelightNet is an older, different network: never taken.
    assert rn._complete_set(list_variables(shared_dir / OFFICIAL / "Decom"), "relight") is None
    # A fabricated Relight checkpoint with these names and shapes converts with the HWIO → OIHW transpose.
    rng = np.random.default_rng(0)
    tensors = {tf: rng.standard_normal(list_variables(shared_dir / OFFICIAL / "Relight")[tf].shape).astype(np.float32)
               for tf in names.values()}
    state = rn.remap_tf_tensors(tensors)
    model = rn.RelightNet()
    model.load_state_dict({k[len("relight."):]: v for k, v in state.items()})
    np.testing.assert_array_equal(model.fusion.weight.detach().numpy(),
                                  tensors["RelightNet/conv2d_7/kernel"].transpose(3, 2, 0, 1))


def test_cpu_and_gpu_agree(cuda_device):
    torch.manual_seed(0)
    model = rn.RetinexNet().eval()
    image = torch.rand(1, 3, 37, 53)
    cpu = rn.enhance_tensor(model, image, tile=1024)
    gpu = rn.enhance_tensor(model.to(cuda_device), image.to(cuda_device), tile=1024)
    for name in cpu:
        torch.testing.assert_close(gpu[name], cpu[name], atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("size", [(45, 61), (171, 229)])
def test_bfloat16_inference_stays_close_to_float32(size, data_dir):
    _needs_native_bfloat16(torch.bfloat16)
    model, _ = rn.load_model("project", torch.device("cpu"))
    image = torch.from_numpy(_dark_photo(*size).transpose(2, 0, 1).copy())[None]
    exact = rn.enhance_tensor(model, image)
    fast = rn.enhance_tensor(model, image, precision=torch.bfloat16)
    tiled = rn.enhance_tensor(model, image, tile=rn._MIN_TILE, precision=torch.bfloat16)
    for name in exact:
        assert fast[name].dtype == torch.float32  # output layers leave autocast
        difference = (fast[name] - exact[name]).abs()
        assert float(difference.mean()) < 0.01 and float(difference.max()) < 0.08, name
        torch.testing.assert_close(tiled[name], fast[name], atol=0.03, rtol=0)


def test_runner_records_and_checks_its_precision(data_dir):
    from engine.errors import ParameterError
    from engine.registry import MethodInput, run_method

    image = _dark_photo(24, 30)
    result, _, _ = run_method("retinexnet", MethodInput(frames=(image,)), {"precision": "float32"}, device="cpu")
    assert result.info["precision"] == "float32"
    auto, _, _ = run_method("retinexnet", MethodInput(frames=(image,)), device="cpu")
    from engine.device import native_bfloat16
    assert auto.info["precision"] == ("bfloat16" if native_bfloat16(torch.device("cpu")) else "float32")
    if not native_bfloat16(torch.device("cpu")):
        with pytest.raises(ParameterError, match="no native bfloat16"):
            run_method("retinexnet", MethodInput(frames=(image,)), {"precision": "bfloat16"}, device="cpu")


def _dark_photo(height=45, width=61, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    albedo = np.stack([0.3 + 0.6 * (xx > 0.4), 0.5 + 0.3 * (yy > 0.5), 0.4 + 0.0 * xx], axis=-1)
    light = 0.08 + 0.1 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.4) ** 2) / 0.1)
    image = albedo * light[..., None] + rng.normal(0, 0.005, (height, width, 3))
    return np.clip(image, 0, 1).astype(np.float32)


def test_runner_with_shipped_weights_enhances_a_dark_photo(data_dir):
    from engine.registry import MethodInput, get_method, run_method

    image = _dark_photo()
    result, ctx, params = run_method("retinexnet", MethodInput(frames=(image,)), device="cpu")
    layers = result.layers
    assert "weights" not in params and not params["denoise"]  # weights are chosen by name, never a parameter
    assert result.info["weights"]["source"] == "shipped"
    assert {o.name for o in get_method("retinexnet").outputs} == set(layers)
    assert layers["reflectance"].shape == (45, 61, 3) and layers["illumination"].shape == (45, 61, 1)
    reconstruction = layers["reflectance"] * layers["illumination"]
    assert float(np.abs(reconstruction - image).mean()) < 0.03  # 0.006-0.013 on LOL crops; the official: 0.004
    assert float(layers["enhanced"].mean()) > 2.5 * float(image.mean())
    denoised, _, _ = run_method("retinexnet", MethodInput(frames=(image,)), {"denoise": True}, device="cpu")
    smooth = lambda r: float(np.abs(np.diff(r, axis=1)).mean())  # noqa: E731
    assert smooth(denoised.layers["reflectance"]) < smooth(layers["reflectance"])


def test_official_weights_import_and_run(shared_dir, data_dir):
    from engine.registry import MethodInput, run_method
    from engine.weights import import_official

    path, provenance = import_official("retinexnet", shared_dir / OFFICIAL)
    assert path.is_file() and provenance["tensors"] == 14
    image = _dark_photo(33, 40)
    result, _, _ = run_method("retinexnet", MethodInput(frames=(image,)), device="cpu", weights="official")
    assert result.info["weights"]["weight_set"] == "retinexnet/official"
    assert result.info["relight_weights"]["weight_set"] == "retinexnet/project"
    reconstruction = result.layers["reflectance"] * result.layers["illumination"]
    assert float(np.abs(reconstruction - image).mean()) < 0.01


def test_one_output_pixel_sees_53_by_53_input_pixels():
    """The receptive field the model card quotes (DecomNet's 9×9 + six 3×3, then RelightNet's stride-8 U): what
    limits RelightNet to local exposure decisions."""
    torch.manual_seed(0)
    model = rn.RetinexNet().eval()
    image = torch.rand(1, 3, 256, 256, requires_grad=True)
    _, _, delta, _ = model(image)
    delta[0, 0, 128, 128].backward()
    rows, cols = torch.nonzero(image.grad.abs().sum((0, 1)), as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (53, 53)


def test_tile_resize_keeps_the_channels_last_layout_and_the_values():
    """A tile's nearest resize gathers on the NHWC view of a channels-last tensor: same values as on NCHW, and the
    result stays channels-last (an NCHW result made every later convolution of a tile reorder: 25 % slower)."""
    from engine.ops.tiling import TileGeometry

    geometry = TileGeometry(101, 203, 16, 48)
    low = torch.rand(1, 8, 20, 40)
    ref = torch.zeros(1, 8, 45, 77)
    nchw = geometry.resize(low, 2, ref, 0)
    cl = geometry.resize(low.contiguous(memory_format=torch.channels_last), 2, ref, 0)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nchw, cl)
