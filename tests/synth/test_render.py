"""The synthetic renderer's guarantees, checked on tiny renders (32-48 px) on the CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.synth import CLASS_NAMES, RenderOptions, SyntheticFolder, render_sample, sample_scene, write_dataset
from engine.synth.render import render_scene, sh_irradiance

SIZE = 40


@pytest.fixture(scope="module")
def sample():
    return render_sample(3, SIZE, lightings=2)


def test_image_is_albedo_times_shading_plus_specular(sample):
    expected = sample["albedo"][None] * sample["shading"] + sample["specular"]
    assert torch.allclose(sample["image_linear"], expected, rtol=1e-6, atol=1e-7)
    no_spec = render_sample(3, SIZE, 1, options=RenderOptions(specular=False))
    assert torch.equal(no_spec["specular"], torch.zeros_like(no_spec["specular"]))
    assert torch.allclose(no_spec["image_linear"], no_spec["albedo"][None] * no_spec["shading"], rtol=1e-6, atol=1e-7)


def test_layers_have_documented_shapes_and_ranges(sample):
    assert sample["image"].shape == (2, 3, SIZE, SIZE)
    assert sample["albedo"].shape == (3, SIZE, SIZE)
    assert 0.0 <= float(sample["albedo"].min()) and float(sample["albedo"].max()) <= 1.0
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert float(sample["shading"].min()) >= 0.0
    labels = sample["labels"]
    assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < len(CLASS_NAMES) == 16
    assert torch.equal(sample["mask"][0], (labels >= 3).float())
    assert float(sample["depth"].min()) > 0


def test_normals_are_unit_length(sample):
    assert torch.allclose(sample["normals"].norm(dim=0), torch.ones(SIZE, SIZE), atol=1e-5)


def test_floor_normals_point_up_in_world_space():
    scene = sample_scene(3)
    out = render_scene(scene, SIZE)
    floor = out["labels"] == 1
    assert floor.sum() > 20
    # Camera-space normals of a flat floor all agree (one direction) when there is no height field.
    if scene.height_amplitude == 0.0:
        n = out["normals"][:, floor]
        assert float((n - n.mean(1, keepdim=True)).abs().max()) < 1e-3


def _shadow_seed() -> int:
    for seed in range(40):
        scene = sample_scene(seed)
        if float(scene.lightings[0].sun_colour.max()) > 1.5 and scene.height_amplitude == 0.0:
            return seed
    raise AssertionError("no seed with a strong sun among the first 40")


def test_shadowed_pixels_exist_and_have_lower_shading():
    seed = _shadow_seed()
    options = RenderOptions(specular=False, camera_effects=False)
    lit = render_sample(seed, 48, options=options)
    unshadowed = render_sample(seed, 48, options=RenderOptions(specular=False, camera_effects=False, shadows=False))
    visibility = lit["sun_visibility"][0, 0]
    shadowed = visibility < 0.1
    assert int(shadowed.sum()) >= 10, "a strong sun over objects must cast shadows"
    # Exposure differs between the two renders; fully lit pixels give the ratio of the two gains.
    ratio = lit["shading"][0].sum(0) / unshadowed["shading"][0].sum(0).clamp(min=1e-8)
    gain_ratio = ratio[visibility > 0.999].median()
    assert float((ratio[shadowed] < 0.9 * gain_ratio).float().mean()) > 0.9


def test_k_lightings_share_albedo_and_differ_in_shading():
    one = render_sample(7, SIZE, lightings=1)
    three = render_sample(7, SIZE, lightings=3)
    assert torch.equal(one["albedo"], three["albedo"])
    assert torch.equal(one["labels"], three["labels"])
    for k in range(3):
        recovered = (three["image_linear"][k] - three["specular"][k]) / three["shading"][k].clamp(min=1e-6)
        valid = three["shading"][k].min(0).values > 1e-3
        assert torch.allclose(recovered[:, valid], three["albedo"][:, valid], atol=1e-4)
    assert not torch.allclose(three["shading"][0], three["shading"][1])


def test_same_seed_same_sample_and_other_seed_differs():
    a, b, c = render_sample(11, 32, 2), render_sample(11, 32, 2), render_sample(12, 32, 2)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["albedo"], c["albedo"])


def test_sh_irradiance_of_constant_sky_is_pi_times_radiance():
    coefficients = torch.zeros(9, 3)
    coefficients[0] = 1.0 / 0.282095  # radiance 1 everywhere
    normals = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
    assert torch.allclose(sh_irradiance(normals, coefficients), torch.full((50, 3), np.pi), rtol=1e-4)


def test_photo_textures_are_used(tmp_path):
    from engine.imaging import encode_png

    stripes = np.zeros((32, 32, 3), np.float32)
    stripes[:, ::4] = [1.0, 0.2, 0.1]
    (tmp_path / "tex.png").write_bytes(encode_png(stripes, bit_depth=8))
    from engine.synth.scene import load_photo_textures

    photos = load_photo_textures(tmp_path)
    assert len(photos) == 1 and photos[0].shape == (3, 256, 256)
    kinds = {o.texture.kind for s in range(12) for o in sample_scene(s, photos=photos).objects}
    assert "photo" in kinds


def test_write_dataset_round_trip(tmp_path):
    manifest = write_dataset(tmp_path / "ds", n=2, size=24, lightings=2, seed=5, png=True, progress=False)
    assert manifest["classes"][1] == "floor"
    folder = SyntheticFolder(tmp_path / "ds")
    assert len(folder) == 2
    loaded = folder[1]
    fresh = render_sample(6, 24, 2)
    assert torch.allclose(loaded["albedo"], fresh["albedo"], atol=2e-3)
    assert torch.equal(loaded["labels"], fresh["labels"])
    assert (tmp_path / "ds" / "previews" / "000000" / "image_1.png").is_file()
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["lightings"] == 2


def test_benchmark_cli_prints_a_speed(capsys):
    from engine.synth.__main__ import main

    assert main(["--benchmark", "--n", "1", "--size", "24", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples_per_s"] > 0 and result["size"] == 24


def test_cuda_render_matches_cpu(cuda_device):
    cpu = render_sample(3, 32, 1, device="cpu", options=RenderOptions(camera_effects=False))
    gpu = render_sample(3, 32, 1, device=cuda_device, options=RenderOptions(camera_effects=False))
    assert (cpu["labels"] == gpu["labels"].cpu()).float().mean() > 0.98
    assert torch.allclose(cpu["albedo"], gpu["albedo"].cpu(), atol=0.05)
