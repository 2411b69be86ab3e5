"""SfSNet: architecture against the official layout, the Caffe HDF5 converter on a synthetic file, SH shading, the
normal convention, relighting, detection and the full-photo runner (tiny random-weight networks, small images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import NoFaceError, ParameterError, WeightsUnavailableError
from engine.methods import sfsnet as sf
from engine.ops.sh import directional_sh, lit_sphere, sh_basis, shading
from engine.registry import MethodInput, Role, Task, get_method, run_method


def _has_dlib() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


needs_dlib = pytest.mark.skipif(not _has_dlib(), reason="dlib (dlib-bin) is not installed")


# --- architecture and the official layout ---------------------------------------------------------------------------

def _official_blob_shapes() -> dict[str, list[tuple[int, ...]]]:
    """The official layer → blob shapes table of official-weights.md §2, written out independently."""
    bn = lambda c: [(c,), (c,), (1,)]  # noqa: E731
    shapes = {"conv1": [(64, 3, 7, 7), (64,)], "bn1": bn(64), "conv2": [(128, 64, 3, 3), (128,)], "bn2": bn(128),
              "conv3": [(128, 128, 3, 3), (128,)]}
    for p in ("n", "a"):
        for k in range(1, 6):
            shapes.update({f"{p}bn{k}": bn(128), f"{p}conv{k}": [(128, 128, 3, 3), (128,)],
                           f"{p}bn{k}r": bn(128), f"{p}conv{k}r": [(128, 128, 3, 3), (128,)]})
        shapes.update({f"{p}bn6r": bn(128), f"{p}up6": [(128, 1, 4, 4)], f"{p}conv6": [(128, 128, 1, 1), (128,)],
                       f"{p}bn6": bn(128), f"{p}conv7": [(64, 128, 3, 3), (64,)], f"{p}bn7": bn(64),
                       f"{p.upper()}conv0": [(3, 64, 1, 1), (3,)]})
    shapes.update({"lconv1": [(128, 384, 1, 1), (128,)], "lbn1": bn(128), "fc_light": [(27, 128), (27,)]})
    return shapes


def test_full_width_network_matches_the_official_layout():
    shapes = _official_blob_shapes()
    assert len(shapes) == 62
    assert [name for name, _, _ in sf.official_layers()] == list(shapes)
    total = sum(math.prod(s) for blobs in shapes.values() for s in blobs)
    assert total == 3_427_518  # official-weights.md §2: values incl. BN statistics
    ours = sf.SfSNet(1.0).state_dict()
    ours_total = sum(v.numel() for k, v in ours.items() if not k.endswith("num_batches_tracked"))
    n_bn = sum(1 for _, kind, _ in sf.official_layers() if kind == "bn")
    assert ours_total + 2 * 128 * 16 + n_bn == total  # + the two fixed upsampling kernels + BN scale factors


def test_network_output_shapes_and_bn_has_no_affine():
    net = sf.SfSNet(width=0.125).eval()
    n, a, light = net(torch.rand(2, 3, 128, 128))
    assert n.shape == a.shape == (2, 3, 128, 128) and light.shape == (2, 27)
    assert all(not m.affine for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not any("up" in k for k in net.state_dict())  # the fixed upsampling is not a weight


def test_fixed_upsampling_is_bilinear_inside():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    up = torch.nn.functional.conv_transpose2d(x, sf.bilinear_kernel(1), stride=2, padding=1)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


# --- the official converter ---------------------------------------------------------------------------------------

def _write_official_h5(path, drop: str | None = None, bad_shape: str | None = None, seed: int = 0):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name, blobs in _official_blob_shapes().items():
            if name == drop:
                continue
            g = data.create_group(name)
            for i, shape in enumerate(blobs):
                if name == bad_shape and i == 0:
                    shape = (shape[0] + 1,) + shape[1:]
                if name.endswith("up6"):
                    value = sf.bilinear_kernel(shape[0]).numpy()
                elif len(blobs) == 3 and i == 2:
                    value = np.array([2.0], np.float32)  # the BatchNorm scale factor
                elif len(blobs) == 3 and i == 1:
                    value = rng.uniform(0.5, 2.0, shape).astype(np.float32)
                else:
                    value = rng.normal(0, 0.05, shape).astype(np.float32)
                g.create_dataset(str(i), data=value)
        data.create_group("train_only_loss")  # unknown layers are ignored, as Caffe does


def test_converter_reads_a_synthetic_caffe_h5(tmp_path):
    path = tmp_path / "SfSNet.caffemodel.h5"
    _write_official_h5(path)
    state = sf.convert_official(path)
    import h5py

    with h5py.File(path, "r") as f:
        assert torch.allclose(state["normal.blocks.2.bn2.running_mean"],
                              torch.from_numpy(f["data/nbn3r/0"][()]) / 2.0)
        assert torch.allclose(state["lbn1.running_var"], torch.from_numpy(f["data/lbn1/1"][()]) / 2.0)
        assert torch.equal(state["albedo.conv0.weight"], torch.from_numpy(f["data/Aconv0/0"][()]))
        assert torch.equal(state["fc_light.bias"], torch.from_numpy(f["data/fc_light/1"][()]))
    model = sf.model_from_state(state)
    assert model.width == 1.0
    with torch.no_grad():
        out = sf.predict(model, torch.rand(1, 3, 128, 128))
    assert torch.isfinite(out["normals"]).all() and out["sh"].shape == (1, 27)


def test_converter_refuses_incomplete_or_misshapen_files(tmp_path):
    missing, misshapen = tmp_path / "missing.h5", tmp_path / "bad.h5"
    _write_official_h5(missing, drop="abn4")
    _write_official_h5(misshapen, bad_shape="nconv7")
    with pytest.raises(WeightsUnavailableError, match="abn4"):
        sf.convert_official(missing)
    with pytest.raises(WeightsUnavailableError, match="nconv7"):
        sf.convert_official(misshapen)
    not_h5 = tmp_path / "not.h5"
    not_h5.write_bytes(b"hello")
    with pytest.raises(WeightsUnavailableError):
        sf.convert_official(not_h5)


def test_weights_import_cli_path(tmp_path, monkeypatch):
    from engine.weights import import_official, load_state_dict

    monkeypatch.setenv("INTRINSIC_LAB_DATA", str(tmp_path / "data"))
    path = tmp_path / "SfSNet.caffemodel.h5"
    _write_official_h5(path)
    target, provenance = import_official("sfsnet", path)
    assert provenance["converter"] == "engine.methods.sfsnet:convert_official"
    assert sf.model_from_state(load_state_dict(target)).width == 1.0


# --- SH shading, conventions, relighting -----------------------------------------------------------------------

def test_directional_light_gives_the_clamped_cosine_approximation():
    d = torch.tensor([0.3, 0.5, 0.8])
    d = d / d.norm()
    sh = directional_sh(d, torch.ones(3))[None]
    lit = shading(d.view(1, 3, 1, 1), sh)[0, :, 0, 0]
    dark = shading(-d.view(1, 3, 1, 1), sh)[0, :, 0, 0]
    # Σ_l A_l (2l+1)/(4π) P_l(±1): 1/4 + 1/2 + 5/16 toward the light, 1/4 − 1/2 + 5/16 away from it
    assert torch.allclose(lit, torch.full((3,), 1.0625), atol=1e-5)
    assert torch.allclose(dark, torch.full((3,), 0.0625), atol=1e-5)


def test_sh_basis_order_and_constants():
    n = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    h = sh_basis(n)[0, :, 0, 0]
    assert h[0] == pytest.approx(math.pi / math.sqrt(4 * math.pi))
    assert h[1] == pytest.approx((2 * math.pi / 3) * math.sqrt(3 / (4 * math.pi)))  # z term second
    assert h[2] == pytest.approx(0.0) and h[3] == pytest.approx(0.0)
    assert h[4] == pytest.approx((math.pi / 4) * 0.5 * math.sqrt(5 / (4 * math.pi)) * 2)


def test_normal_encoding_round_trip_and_convention():
    n = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    back, _ = sf.decode(sf.encode_normals(n), torch.zeros(2, 3, 4, 4))
    assert torch.allclose(back, n, atol=1e-5)
    # the lit sphere: a light from image right brightens the right half (x right, y up, z toward the camera)
    image = lit_sphere(directional_sh(sf.light_direction(70, 0), torch.ones(3)), 32)[0].mean(0)
    assert image[:, 20:].mean() > 2 * image[:, :12].mean()
    image = lit_sphere(directional_sh(sf.light_direction(0, 70), torch.ones(3)), 32)[0].mean(0)
    assert image[:12].mean() > 2 * image[20:].mean()  # light from above: the top (first rows) is brighter


def test_relight_follows_the_preset_direction():
    n, _ = __import__("engine.ops.sh", fromlist=["sphere_normals"]).sphere_normals(32)
    albedo = torch.full((1, 3, 32, 32), 0.6)
    sh = directional_sh(sf.light_direction(0, 0), torch.full((3,), 0.7))[None]
    sh[:, 0::9] += 0.3 * math.sqrt(4 * math.pi) / math.pi
    left = sf.relight(albedo, n[None], sh, "left")[0].mean(0)
    right = sf.relight(albedo, n[None], sh, "right")[0].mean(0)
    assert left[:, :12].mean() > left[:, 20:].mean() and right[:, 20:].mean() > right[:, :12].mean()
    with pytest.raises(ValueError, match="preset"):
        sf.relight(albedo, n[None], sh, "sideways")


# --- the runner ---------------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_weights(tmp_path):
    from engine.weights import save_state_dict

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_state_dict(sf.SfSNet(width=0.125).state_dict(), path)
    return str(path)


def test_spec_is_registered_as_a_face_method():
    spec = get_method("sfsnet")
    assert spec.task == Task.FACE and spec.input_kind.value == "face"
    roles = {o.name: o.role for o in spec.outputs}
    assert roles["normals"] == Role.NORMALS and roles["albedo"] == Role.REFLECTANCE
    assert roles["shading"] == Role.SHADING and roles["lighting"] == Role.LIGHTING
    assert roles["sh"] == Role.LIGHTING and roles["reconstruction"] == Role.RECONSTRUCTION
    with pytest.raises(ParameterError, match="relight"):
        spec.resolve_params({"relight": "sideways"})


def test_runner_on_a_whole_crop(tiny_weights, rng):
    image = rng.uniform(0.2, 0.8, (96, 96, 3)).astype(np.float32)
    result, ctx, _ = run_method("sfsnet", MethodInput(frames=(image,)), {"crop_mode": "whole", "relight": "left"},
                                device="cpu", weights=tiny_weights)
    layers = result.layers
    assert layers["normals"].shape == (96, 96, 3) and layers["albedo"].shape == (96, 96, 3)
    centre = layers["normals"][48, 48]
    assert abs(np.linalg.norm(centre) - 1) < 1e-4
    assert layers["lighting"].shape == (128, 128, 3) and layers["faces"].shape == (1, 128, 7 * 128, 3)
    assert len(result.values["sh"]) == 27 and np.asarray(result.values["sh_all_faces"]).shape == (1, 27)
    assert result.values["face_boxes"] == [[0.0, 0.0, 96.0, 96.0]]
    assert "relit" in layers


@needs_dlib
def test_no_face_is_a_clear_error(tiny_weights):
    image = np.full((300, 400, 3), 0.5, np.float32)
    with pytest.raises(NoFaceError, match="no face found"):
        run_method("sfsnet", MethodInput(frames=(image,)), {}, device="cpu", weights=tiny_weights)


@needs_dlib
def test_detects_and_pastes_back_faces_of_a_real_photo(tiny_weights, shared_dir):
    from engine.imaging import read_image

    image = read_image(shared_dir / "data/faces/real-photos/face_01.png").pixels
    boxes = sf.detect_faces(image)
    assert boxes, "dlib found no face in face_01.png"
    result, _, _ = run_method("sfsnet", MethodInput(frames=(image,)), {"output_max_side": 4096}, device="cpu",
                              weights=tiny_weights)
    x0, y0, x1, y1 = result.values["face_boxes"][0]
    h, w = image.shape[:2]
    assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
    normals = result.layers["normals"]
    cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
    assert np.linalg.norm(normals[cy, cx]) == pytest.approx(1.0, abs=1e-3)  # inside the face
    outside = np.ones((h, w), bool)
    for face in result.info["faces"]:
        cx_, cy_, side = face["crop"]
        outside[max(0, int(cy_ - side / 2) - 2):int(cy_ + side / 2) + 2,
                max(0, int(cx_ - side / 2) - 2):int(cx_ + side / 2) + 2] = False
    assert outside.any() and np.abs(normals[outside]).max() == 0.0  # no face there: zero normals


def test_crop_extraction_pads_at_the_border():
    image = np.zeros((50, 50, 3), np.float32)
    image[:, :25] = 1.0
    crop = sf.extract_crop(image, 5, 25, 40, size=16)
    assert crop.shape == (16, 16, 3) and crop[:, :4].min() > 0.99


@pytest.mark.cuda
def test_predict_on_cuda_matches_cpu(cuda_device):
    torch.manual_seed(0)
    net = sf.SfSNet(width=0.125).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        cpu = sf.predict(net, x)["normals"]
        gpu = sf.predict(net.to(cuda_device), x.to(cuda_device))["normals"].cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3)


def test_training_recipe_runs_two_steps_on_rendered_faces(tmp_path, shared_dir):
    from engine.synth.faces import FaceModelUnavailable, find_face_model
    from engine.train.loop import TrainRequest, train
    from engine.weights import load_state_dict

    try:
        find_face_model(shared_dir / "models" / "surrey-face-model")
    except FaceModelUnavailable as exc:
        pytest.skip(str(exc))
    result = train(TrainRequest(method="sfsnet", data=None, steps=2, out=tmp_path / "run", device="cpu",
                                overrides={"width": 0.125, "batch_size": 2, "size": 64, "val_faces": 2,
                                           "render_device": "cpu"}, progress=False))
    assert np.isfinite(result.final_loss) and 0 <= result.validation["normal_mean_deg"] <= 180
    state = load_state_dict(result.weights)
    assert state["conv1.weight"].dtype == torch.float16  # exported as float16
    assert sf.model_from_state(state).width == 0.125
    assert "non-commercial" in result.card.read_text()


def test_training_recipe_takes_photo_backgrounds_and_skin_detail(tmp_path, shared_dir):
    import cv2

    from engine.synth.faces import FaceModelUnavailable, find_face_model
    from engine.train.loop import TrainRequest, train

    try:
        find_face_model(shared_dir / "models" / "surrey-face-model")
    except FaceModelUnavailable as exc:
        pytest.skip(str(exc))
    base = {"width": 0.125, "batch_size": 2, "size": 64, "val_faces": 2, "render_device": "cpu",
            "photo_backgrounds": 0.5, "albedo_detail": 0.5}
    with pytest.raises(ValueError, match="photo_dir"):  # the shares without photographs: refused, not ignored
        train(TrainRequest(method="sfsnet", data=None, steps=1, out=tmp_path / "none", device="cpu",
                           overrides=base, progress=False))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photos / "noise.png"), rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    result = train(TrainRequest(method="sfsnet", data=None, steps=2, out=tmp_path / "run", device="cpu",
                                overrides={**base, "photo_dir": str(photos)}, progress=False))
    assert np.isfinite(result.final_loss)
    card = result.card.read_text()
    assert "50% in front of photo crops" in card and "1 photographs from" in card


@needs_dlib
def test_auto_mode_takes_a_small_square_crop_whole(tiny_weights):
    image = np.full((128, 128, 3), 0.5, np.float32)
    result, _, _ = run_method("sfsnet", MethodInput(frames=(image,)), {"relight": "none"}, device="cpu",
                              weights=tiny_weights)
    assert result.values["face_boxes"] == [[0.0, 0.0, 128.0, 128.0]] and "relit" not in result.layers
    with pytest.raises(NoFaceError):
        run_method("sfsnet", MethodInput(frames=(image,)), {"crop_mode": "detect"}, device="cpu",
                   weights=tiny_weights)


def test_shipped_weights_recover_normals_of_rendered_faces(shared_dir):
    from engine.metrics.angular import normal_errors
    from engine.synth.faces import FaceModelUnavailable, FaceRenderer, load_face_model

    try:
        model = load_face_model(shared_dir / "models" / "surrey-face-model")
    except FaceModelUnavailable as exc:
        pytest.skip(str(exc))
    net, _ = sf._load(None, torch.device("cpu"))  # the default (shipped) weight set, sha256-checked
    batch = FaceRenderer(model, size=128, supersample=1).render(range(40_000_000, 40_000_004))
    with torch.no_grad():
        normals = sf.predict(net, batch["image"])["normals"]
    stats = normal_errors(batch["normals"].permute(0, 2, 3, 1).reshape(-1, 1, 3).numpy(),
                          normals.permute(0, 2, 3, 1).reshape(-1, 1, 3).numpy(),
                          batch["mask"].reshape(-1, 1).numpy())
    assert stats["mean"] < 25.0, stats  # the card reports 10.5° on 128 held-out faces


def test_light_directionality_of_the_evaluation_script():
    """scripts/sfsnet_evaluate.py's |L1|/|L0|: 0 for an ambient light, √3 for one directional light (its radiance
    coefficients are c·Y_k(d): |Y_1(d)| / Y_00 = √(3/4π) / √(1/4π)), whatever its direction and colour; a mix of
    the two lies between."""
    from helpers.scripts import load_script

    module = load_script("sfsnet_evaluate")
    ambient = torch.zeros(1, 27)
    ambient[0, 0::9] = torch.tensor([0.8, 0.7, 0.6])
    assert float(module.directionality(ambient)[0]) == 0.0
    directions = torch.nn.functional.normalize(torch.tensor([[0.3, 0.5, 0.8], [-0.9, 0.1, 0.4]]), dim=1)
    one = directional_sh(directions, torch.tensor([[1.0, 0.5, 0.2], [0.3, 0.3, 0.9]]))
    torch.testing.assert_close(module.directionality(one), torch.full((2,), math.sqrt(3), dtype=torch.float64))
    mixed = float(module.directionality(one[:1] + ambient)[0])
    assert 0.0 < mixed < math.sqrt(3)
