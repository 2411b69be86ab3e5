"""Synthetic faces: the eos reader (on a file written here), the rasteriser (on known triangles), and, with the
Surrey Face Model from ../shared (skipped without it), exact layers, determinism and the folder round trip."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
import torch

from engine.ops.sh import shading
from engine.synth import faces as sf


def _eigen(matrix: np.ndarray) -> bytes:
    rows, cols = matrix.shape
    return struct.pack("<ii", rows, cols) + np.asarray(matrix, np.float32).T.tobytes()  # column-major


def _write_tiny_model(folder):
    """A 4-vertex, 2-triangle model in the eos layout (shape .bin + blendshapes .bin)."""
    mean = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(12, 2)))[0].astype(np.float32)
    tris = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)
    data = struct.pack("<I", 1) + _eigen(mean.reshape(-1, 1)) + _eigen(basis) + _eigen(np.array([[4.0], [1.0]]))
    data += struct.pack("<Q", 2) + tris.tobytes()
    data += struct.pack("<ii", 0, 1) + struct.pack("<ii", 0, 0) + struct.pack("<ii", 0, 1) + struct.pack("<Q", 0)
    data += struct.pack("<Q", 4) + uv.tobytes()
    (folder / sf.SHAPE_FILE).write_bytes(data)
    offsets = np.arange(12, dtype=np.float32).reshape(-1, 1)
    blend = struct.pack("<Q", 1) + struct.pack("<Q", 5) + b"smile" + _eigen(offsets)
    (folder / sf.EXPRESSION_FILE).write_bytes(blend)
    return mean, basis, tris, uv


def test_eos_reader_on_a_written_file(tmp_path):
    mean, basis, tris, uv = _write_tiny_model(tmp_path)
    model = sf.read_eos_shape_model(tmp_path / sf.SHAPE_FILE)
    assert np.allclose(model["mean"], mean) and np.allclose(model["basis"], basis)
    assert np.allclose(model["eigenvalues"], [4.0, 1.0]) and np.array_equal(model["triangles"], tris)
    assert np.allclose(model["uv"], uv)
    names, offsets = sf.read_eos_blendshapes(tmp_path / sf.EXPRESSION_FILE)
    assert names == ["smile"] and offsets.shape == (1, 12) and offsets[0, 5] == 5.0
    assert sf.find_face_model(tmp_path) == tmp_path.resolve()


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(sf.SFM_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv("INTRINSIC_LAB_SHARED", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sf, "__file__", str(tmp_path / "a" / "b" / "c" / "faces.py"))
    with pytest.raises(sf.FaceModelUnavailable, match="non-commercial"):
        sf.find_face_model()
    assert sf.main(["--n", "1", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert "Surrey Face Model" in capsys.readouterr().err


def test_rasteriser_covers_a_square_and_keeps_the_nearest_triangle():
    # a 4×4-pixel square (two triangles, counter-clockwise in y-up = clockwise on screen) at depth 0, and in front
    # of its left half a triangle at depth 1; pixel centres at +0.5
    square = torch.tensor([[1.0, 5.0, 0.0], [5.0, 5.0, 0.0], [5.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    tri = torch.tensor([[0.0, 8.0, 1.0], [3.0, 8.0, 1.0], [3.0, 0.0, 1.0]])
    screen = torch.cat([square, tri])[None]
    triangles = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    tri_id, bary = sf.rasterise(screen, triangles, 8, 8)
    covered = tri_id[0] >= 0
    assert covered[1:5, 1:5].all()
    assert tri_id[0, 2, 2] == 2  # the nearer triangle wins where both cover the pixel
    assert tri_id[0, 4, 4] in (0, 1)
    assert torch.allclose(bary.sum(-1)[0][covered], torch.ones(int(covered.sum())))
    # back-facing (reversed winding) is culled
    tri_id_back, _ = sf.rasterise(screen, triangles[:, [0, 2, 1]], 8, 8)
    assert (tri_id_back < 0).all()


@pytest.fixture(scope="module")
def renderer(shared_dir):
    try:
        model = sf.load_face_model(shared_dir / "models" / "surrey-face-model")
    except sf.FaceModelUnavailable as exc:
        pytest.skip(str(exc))
    return sf.FaceRenderer(model, size=48, device="cpu", supersample=1)


def test_renders_exact_layers(renderer):
    batch = renderer.render([3, 4])
    mask = batch["mask"]
    assert batch["image"].shape == (2, 3, 48, 48) and batch["sh"].shape == (2, 27)
    assert mask.sum() > 0.25 * 48 * 48  # the face fills much of the crop
    inside = mask.expand(-1, 3, -1, -1) > 0
    assert torch.allclose((batch["albedo"] * batch["shading"])[inside], batch["diffuse"][inside], atol=1e-5)
    assert (batch["image"] >= batch["diffuse"].clamp(max=1) - 1e-6)[inside].all()  # the highlight only adds
    assert torch.allclose(shading(batch["normals"], batch["sh"])[inside], batch["shading"][inside], atol=1e-4)
    norms = batch["normals"].norm(dim=1)[mask[:, 0] > 0]
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    z = batch["normals"][:, 2][mask[:, 0] > 0]
    assert (z > 0).float().mean() > 0.95  # visible surfaces face the camera


def test_renders_are_a_function_of_the_seed(renderer):
    a = renderer.render([7, 8])
    b = renderer.render([8])
    c = renderer.render([8])
    assert all(torch.equal(b[k], c[k]) for k in b)
    assert torch.allclose(a["image"][1], b["image"][0], atol=1e-5)
    assert not torch.allclose(a["image"][0], a["image"][1])


def test_write_faces_and_read_them_back(renderer, tmp_path):
    out = sf.write_faces(2, tmp_path / "faces", seed=5, size=48, model=renderer.model, log=lambda *_: None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "non-commercial" in manifest["licence"] and manifest["n"] == 2
    folder = sf.FaceFolder(out)
    sample = folder[1]
    direct = sf.FaceRenderer(renderer.model, size=48).render([6])
    assert torch.allclose(sample["sh"], direct["sh"][0], atol=1e-5)
    assert torch.allclose(sample["image"], direct["image"][0], atol=1 / 255 + 1e-6)
    m = sample["mask"] > 0
    assert torch.allclose(sample["normals"][:, m[0]], direct["normals"][0][:, m[0]], atol=1e-3)
    # the Faces benchmark adapter reads the same folder (crop, mask and normals)
    from engine.datasets.faces import Faces

    item = Faces().load(out, "face_0000006")
    assert item.truth["normals"].shape == (48, 48, 3) and item.mask.sum() > 0


def test_cast_shadows_darken_the_image_only(renderer):
    shadowed = sf.FaceRenderer(renderer.model, size=48, device="cpu", supersample=1, cast_shadows=1.0)
    seeds = list(range(20, 28))
    a, b = renderer.render(seeds), shadowed.render(seeds)
    for key in ("albedo", "shading", "diffuse", "normals", "sh", "mask"):  # the targets do not change
        assert torch.equal(a[key], b[key]), key
    inside = a["mask"].expand(-1, 3, -1, -1) > 0
    assert (b["shadowed"] <= a["diffuse"] + 1e-6)[inside].all()  # a shadow only takes light away
    assert (b["image"] <= a["image"] + 1e-6)[inside].all()
    darker = (a["diffuse"] - b["shadowed"]).sum(1) > 0.05  # clearly shadowed pixels
    assert darker.sum() > 0.01 * inside[:, 0].sum()  # noses, brows and eye sockets cast shadows
    assert darker.float().mean() < 0.35 * inside[:, 0].float().mean()  # but most of the face stays lit
    assert torch.allclose(renderer.render([21])["image"], a["image"][1:2], atol=1e-5)  # without shadows: as before
    assert (sf.FaceRenderer(renderer.model, size=48, supersample=1, cast_shadows=1.0).sample(20).shadow[0])
    with pytest.raises(ValueError, match="probability"):
        sf.FaceRenderer(renderer.model, size=48, cast_shadows=1.5)


def test_hard_shadows_relight_from_the_side_with_exact_targets(renderer):
    soft = sf.FaceRenderer(renderer.model, size=48, device="cpu", supersample=1, cast_shadows=1.0)
    hard = sf.FaceRenderer(renderer.model, size=48, device="cpu", supersample=1, cast_shadows=1.0, hard_shadows=1.0)
    seeds = list(range(30, 38))
    for seed in seeds:
        a, b = soft.sample(seed), hard.sample(seed)
        assert torch.equal(a.identity, b.identity) and torch.equal(a.texture, b.texture)  # only the light changes
        (d, colour), *rest = b.lights
        assert abs(math.degrees(math.asin(float(d[0]) / float(torch.linalg.norm(d[[0, 2]]))))) >= 45 - 1e-3
        assert float(colour.mean()) >= 0.8 - 1e-6 and b.shadow[0] and 0.3 <= b.shadow[1] <= 1.0
        ambient = b.sh - sum(sf.directional_sh(dk, ck) for dk, ck in b.lights)  # the targets stay exact SH
        level = float(ambient[0::9].mean()) * math.pi / math.sqrt(4 * math.pi)
        assert 0.08 - 1e-4 <= level <= 0.25 + 1e-4
    x, y = soft.render(seeds), hard.render(seeds)
    for batch in (x, y):
        assert (batch["shadowed"] <= batch["diffuse"] + 1e-6).all()

    def depth(batch):  # the mean share of light a cast shadow takes away, where it takes at least 5 %
        inside = batch["mask"][:, 0] > 0
        lost = 1 - batch["shadowed"].sum(1) / batch["diffuse"].sum(1).clamp(min=1e-6)
        shadowed = inside & (lost > 0.05)
        return float(lost[shadowed].mean()), float(shadowed.sum() / inside.sum())

    (soft_depth, soft_area), (hard_depth, hard_area) = depth(x), depth(y)
    assert hard_depth > soft_depth + 0.1 and hard_area > soft_area, (soft_depth, hard_depth, soft_area, hard_area)
    with pytest.raises(ValueError, match="probability"):
        sf.FaceRenderer(renderer.model, size=48, hard_shadows=-0.1)


def test_a_frontal_light_casts_no_shadow_and_a_side_light_does(renderer):
    """Shadow geometry: light from the camera sees every visible point; light from the side puts the nose's shadow
    on the cheek away from it."""
    params = renderer.sample(31)
    front = dataclasses.replace(params, lights=((torch.tensor([0.0, 0.0, 1.0]), torch.ones(3)),), shadow=(True, 1.0),
                                yaw=0.0, pitch=0.0, roll=0.0)
    side = dataclasses.replace(front, lights=((torch.tensor([0.94, 0.0, 0.34]), torch.ones(3)),))
    vis = {}
    for name, p in (("front", front), ("side", side)):
        out = renderer.render_params([p])
        vis[name] = out["shadowed"], out["diffuse"], out["mask"]
    shadowed, diffuse, mask = vis["front"]
    differs = ((diffuse - shadowed).sum(1) > 0.02) & (mask[:, 0] > 0)
    assert differs.sum() <= 0.01 * (mask > 0).sum()  # (a stray pixel where the map's sampling aliases)
    shadowed, diffuse, mask = vis["side"]
    lost = ((diffuse - shadowed).sum(1)[0] > 0.05) & (mask[0, 0] > 0)
    cols = lost.nonzero()[:, 1].float()
    assert lost.sum() > 5 and cols.mean() < 24  # the light comes from image right: the shadows fall to the left


def _test_photos() -> list[torch.Tensor]:
    """Two small 'photographs' made here: a checkerboard with stripes and a noise field (no data folder needed)."""
    gen = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = (((x // 8 + y // 8) % 2) * 0.6 + 0.2 + 0.1 * torch.sin(x / 2.0)).float()
    return [checker.expand(3, -1, -1).clone(), torch.rand(3, 64, 64, generator=gen)]


def _with_photos(renderer, seeds, **options):
    """The same faces rendered plain and with photo options: (plain batch, photo batch, the photo renderer)."""
    photo = sf.FaceRenderer(renderer.model, size=48, device="cpu", supersample=1, photos=_test_photos(), **options)
    return renderer.render(seeds), photo.render(seeds), photo


def test_photo_backgrounds_change_the_background_only(renderer):
    a, b, photo = _with_photos(renderer, list(range(40, 44)), photo_backgrounds=1.0)
    for key in ("albedo", "shading", "diffuse", "normals", "sh", "mask"):  # every target as before
        assert torch.equal(a[key], b[key]), key
    face = a["mask"].expand(-1, 3, -1, -1) > 0
    assert torch.equal(a["image"][face], b["image"][face])  # the face itself is untouched
    changed = (a["image"] - b["image"]).abs().sum(1) > 0.02
    assert changed.float().mean() > 0.15  # much of the background is now the photo (hair and neck stay)
    # the photo's high frequencies are there: the checkerboard's and the noise's edges, not a smooth field
    outside = (a["mask"][:, 0, :, 1:] == 0) & (a["mask"][:, 0, :, :-1] == 0)

    def edges(image):  # mean horizontal change between neighbouring background pixels
        return float((image[..., 1:] - image[..., :-1]).abs().sum(1)[outside].mean())

    assert edges(b["image"]) > 2 * edges(a["image"])
    assert torch.allclose(photo.render([41])["image"], b["image"][1:2], atol=1e-5)  # still a function of the seed


def test_albedo_detail_is_in_the_albedo_target_and_nowhere_else(renderer):
    seeds = list(range(50, 54))
    a, b, detail = _with_photos(renderer, seeds, albedo_detail=1.0)
    for key in ("normals", "sh", "mask", "shading"):  # geometry and light as before
        assert torch.equal(a[key], b[key]), key
    inside = a["mask"].expand(-1, 3, -1, -1) > 0
    ratio = (b["albedo"][inside] / a["albedo"][inside].clamp(min=1e-3))
    assert float((ratio - 1).abs().mean()) > 0.03  # the skin carries the photo's detail...
    assert float(ratio.min()) > 0.45 and float(ratio.max()) < 1.6  # ...as a bounded modulation, not a new picture
    # the image is albedo × shading with the new albedo: the detail is reflectance, exactly
    assert torch.allclose((b["albedo"] * b["shading"])[inside], b["diffuse"][inside], atol=1e-5)
    for seed in seeds:  # the photo draws have their own generator: every other draw is the same
        p, q = renderer.sample(seed), detail.sample(seed)
        assert torch.equal(p.identity, q.identity) and torch.equal(p.sh, q.sh) and p.specular == q.specular


def test_photo_options_are_checked(renderer, tmp_path):
    with pytest.raises(ValueError, match="probability"):
        sf.FaceRenderer(renderer.model, size=48, photos=_test_photos(), albedo_detail=1.5)
    with pytest.raises(ValueError, match="need photos"):
        sf.FaceRenderer(renderer.model, size=48, photo_backgrounds=0.5)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        sf.FaceRenderer(renderer.model, size=48, photos=[torch.rand(64, 64)], photo_backgrounds=0.5)
    with pytest.raises(ValueError, match="no readable photographs"):
        sf.load_face_photos(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # the CLI refuses the share without a folder, before rendering
        sf.main(["--n", "1", "--out", str(tmp_path / "o"), "--photo-backgrounds", "0.5"])
    assert exit_info.value.code == 2 and not (tmp_path / "o").exists()


def test_write_faces_with_photos_records_them(renderer, tmp_path):
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(_test_photos()):
        cv2.imwrite(str(photos / f"p{i}.png"), (p.permute(1, 2, 0).numpy() * 255).astype("uint8"))
    out = sf.write_faces(2, tmp_path / "faces", seed=60, size=48, model=renderer.model, log=lambda *_: None,
                         photo_dir=photos, photo_backgrounds=1.0, albedo_detail=1.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["photo_backgrounds"] == 1.0 and manifest["albedo_detail"] == 1.0
    assert f"--photos {photos}" in manifest["command"] and "--albedo-detail 1" in manifest["command"]
    assert len(sf.FaceFolder(out)) == 2
