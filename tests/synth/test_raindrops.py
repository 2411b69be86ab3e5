"""The raindrop renderer: determinism, the paper's mask, the optics (inverted views, dark rims, defocus), the camera,
files in the Raindrop layout and the contact-sheet command. Small images only."""

from __future__ import annotations

import numpy as np
import pytest

from engine.synth import raindrops as rd

CLEAN_CAMERA = dict(noise=(0.0, 0.0), jpeg=(100, 100), exposure=(1.0, 1.0), film=0.0, highlight=0.0)


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.2 + 0.6 * yy / h, 0.3 + 0.4 * xx / w, 0.5 + 0.2 * np.sin(xx / 7)], 2)
    return np.clip(base + 0.02 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def test_deterministic_per_seed_and_different_across_seeds():
    bg = _scene()
    a, b, c = rd.render_raindrops(bg, 5), rd.render_raindrops(bg, 5), rd.render_raindrops(bg, 6)
    for key in ("rainy", "clean", "mask"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["rainy"], c["rainy"])
    assert a["rainy"].dtype == np.float32 and a["rainy"].shape == bg.shape and a["mask"].shape == (96, 128, 1)


def test_mask_is_the_papers_definition():
    coverage = []
    for seed in range(4):
        s = rd.render_raindrops(_scene(), seed)
        expected = (np.abs(s["rainy"] - s["clean"]) > 30 / 255).any(axis=2, keepdims=True)
        np.testing.assert_array_equal(s["mask"] > 0.5, expected)
        coverage.append(float(s["mask"].mean()))
    assert 0.0 < max(coverage) < 0.9


def test_dry_glass_leaves_the_pair_identical():
    s = rd.render_raindrops(_scene(), 1, rd.DropOptions(dry=1.0))
    np.testing.assert_array_equal(s["rainy"], s["clean"])
    assert float(s["mask"].sum()) == 0.0


def test_a_drop_shows_an_inverted_view_of_the_scene():
    # Bright above, dark below: through an inverting lens the drop's top half sees the dark bottom, and vice versa.
    h, w = 120, 120
    bg = np.repeat(np.linspace(0.9, 0.1, h, dtype=np.float32)[:, None, None], w, 1).repeat(3, 2)
    drop = rd.Drop(x=60, y=60, radius=18, aspect=1.0, angle=0.0, height=0.4)
    # view is given at a 480-pixel short side: 320 → S = 80 pixels on this 120-pixel image.
    opts = rd.DropOptions(defocus=(0.0, 0.0), rim=(0.0, 0.0), view=(320.0, 320.0), **CLEAN_CAMERA)
    s = rd.render_raindrops(bg, 0, opts, drops=[drop])
    top = s["rainy"][46:56, 55:65].mean()
    bottom = s["rainy"][64:74, 55:65].mean()
    assert top < bottom  # the scene is the other way round
    assert s["clean"][46:56, 55:65].mean() > s["clean"][64:74, 55:65].mean()
    # The view is wide-angle: the drop's 36-pixel height spans a larger range of the gradient than the scene does there.
    assert bottom - top > (s["clean"][46:56, 55:65].mean() - s["clean"][64:74, 55:65].mean())


def test_a_drop_has_a_darker_rim_and_defocus_softens_its_edge():
    bg = np.full((80, 80, 3), 0.6, np.float32)
    drop = rd.Drop(x=40, y=40, radius=20, aspect=1.0, angle=0.0, height=0.4)
    sharp = rd.render_raindrops(bg, 0, rd.DropOptions(defocus=(0.0, 0.0), rim=(0.8, 0.8), **CLEAN_CAMERA),
                                drops=[drop])
    centre = sharp["rainy"][37:43, 37:43].mean()
    rim = sharp["rainy"][40, 58:60].mean()  # 18–19 px from the centre
    assert rim < centre - 0.1
    blurred = rd.render_raindrops(bg, 0, rd.DropOptions(defocus=(4.0, 4.0), rim=(0.8, 0.8), **CLEAN_CAMERA),
                                  drops=[drop])
    partial = lambda c: int(((c > 0.02) & (c < 0.98)).sum())  # noqa: E731
    assert partial(blurred["coverage"]) > 2 * partial(sharp["coverage"])


def test_water_surface_merges_overlapping_drops_and_points_views_inward():
    drops = [rd.Drop(20, 20, 8, 1.0, 0.0, 0.4), rd.Drop(30, 20, 8, 1.0, 0.0, 0.4)]
    h, cover, dist, disp, index = rd.water_surface(drops, 40, 50)
    assert set(np.unique(index)) == {-1, 0, 1}
    assert cover[20, 25] == 1.0 and h[20, 25] > 0  # the overlap is water, one outline
    assert disp[0][20, 14] > 0 and disp[0][20, 36] < 0  # left of a drop looks right, and vice versa: inversion


def test_sample_drops_scales_with_the_image_and_makes_running_drops():
    rng = np.random.default_rng(0)
    small = rd.sample_drops(rng, 240, 360, rd.DropOptions(drops=(100, 100), elongated=0.0))
    big = rd.sample_drops(np.random.default_rng(0), 480, 720, rd.DropOptions(drops=(100, 100), elongated=0.0))
    assert len(big) == 100 and len(small) == 25  # the count follows the area
    assert np.mean([d.radius for d in big]) > 1.5 * np.mean([d.radius for d in small])
    chains = rd.sample_drops(np.random.default_rng(1), 480, 720, rd.DropOptions(drops=(20, 20), elongated=1.0))
    assert len(chains) > 20


def test_pairs_folder_is_read_by_the_raindrop_adapter(tmp_path):
    import cv2

    from engine.train.data import AdapterDataset

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), (_scene(64, 96, i) * 255).astype(np.uint8))
    rd.write_pairs(tmp_path / "pairs", rd.list_backgrounds([photos]), n=3, seed=0, short_side=64)
    pairs = AdapterDataset("raindrop", tmp_path / "pairs")
    assert len(pairs) == 3
    sample = pairs[0]
    assert sample["image"].shape == sample["target"].shape == (3, 64, 96)


def test_contact_sheet_command_writes_a_small_picture(tmp_path):
    import cv2

    photos = tmp_path / "photos"
    (photos / "low").mkdir(parents=True)
    cv2.imwrite(str(photos / "a.png"), (_scene(64, 96) * 255).astype(np.uint8))
    cv2.imwrite(str(photos / "low" / "dark.png"), np.zeros((64, 96, 3), np.uint8))
    assert [p.name for p in rd.list_backgrounds([photos])] == ["a.png"]  # LOL's low-light inputs are skipped
    out = tmp_path / "sheet.jpg"
    assert rd.main(["--backgrounds", str(photos), "--n", "2", "--tile", "64", "--figure", str(out),
                    "--short-side", "64"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] == 4 * 64


def test_render_pair_crops_and_keeps_the_photo_scale():
    bgs = [_scene(200, 300, 0), _scene(200, 300, 1)]
    a = rd.render_pair(bgs, 4, crop=48)
    b = rd.render_pair(bgs, 4, crop=48)
    assert a["rainy"].shape == (48, 48, 3)
    np.testing.assert_array_equal(a["rainy"], b["rainy"])
    with pytest.raises(FileNotFoundError):
        rd.list_backgrounds([bgs and "/nonexistent-folder-xyz"])


def test_a_window_has_the_photos_drops_per_pixel():
    """A training window cut from a photo must carry the photo's drop density and drop sizes."""
    photo = _scene(384, 576)
    opts = rd.DropOptions(drops=(200, 200), elongated=0.0)
    full = rd.sample_drops(np.random.default_rng(0), 384, 576, opts)
    window = rd.sample_drops(np.random.default_rng(0), 192, 192, rd._scaled(opts, 384 / 192))
    per_pixel_full, per_pixel_window = len(full) / (384 * 576), len(window) / (192 * 192)
    assert abs(per_pixel_window / per_pixel_full - 1) < 0.1
    assert abs(np.median([d.radius for d in window]) / np.median([d.radius for d in full]) - 1) < 0.35
    assert photo.shape == (384, 576, 3)


def test_heavy_preset_wets_more_of_the_pane_than_light_and_unknown_names_are_refused():
    # Same backgrounds and seeds: the heavy regime (a wet pane, as in the Raindrop photographs) covers more pixels
    # and moves the rainy image further from the clean one than the sparse default.
    light, heavy = rd.drop_preset("light"), rd.drop_preset("heavy")
    assert light == rd.DropOptions()
    cover = {"light": [], "heavy": []}
    error = {"light": [], "heavy": []}
    for seed in range(6):
        bg = _scene(120, 180, seed)
        for name, opts in (("light", light), ("heavy", heavy)):
            s = rd.render_raindrops(bg, seed, opts)
            cover[name].append(float(s["mask"].mean()))
            error[name].append(float(np.mean((s["rainy"] - s["clean"]) ** 2)))
    assert np.mean(cover["heavy"]) > 2 * np.mean(cover["light"])
    assert np.mean(error["heavy"]) > 2 * np.mean(error["light"])
    assert rd.drop_preset("heavy", dry=0.25).dry == 0.25 and heavy.dry == 0.0
    with pytest.raises(ValueError, match="unknown drop preset 'drizzle'.*light, heavy"):
        rd.drop_preset("drizzle")
