"""The Gallery's comparison maths and the parameter-widget planning (pure functions, no Streamlit run)."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import compare
from dashboard.images import label_palette, layer_display
from dashboard.params import log_grid, plan_control
from engine.imaging import encode_png
from engine.registry import ParamSpec


def flat(value: int, h: int = 10, w: int = 20) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_wipe_splits_at_the_position_with_a_divider():
    out = compare.wipe(flat(0), flat(200), 0.5)
    assert out.shape == (10, 20, 3)
    assert (out[:, :9] == 0).all() and (out[:, 10:] == 200).all()
    assert (out[:, 9] == compare._LINE).all()  # a one-pixel divider just left of the split
    assert (compare.wipe(flat(0), flat(200), 0.0) == 200).all()
    assert (compare.wipe(flat(0), flat(200), 1.0) == 0).all()


def test_blend_and_difference_values():
    assert (compare.blend(flat(100), flat(200), 0.25) == 125).all()
    assert (compare.difference(flat(100), flat(110), 4.0) == 40).all()
    assert (compare.difference(flat(0), flat(200), 4.0) == 255).all()  # clipped, not wrapped


def test_second_layer_is_resized_to_the_first():
    out = compare.blend(flat(0, 10, 20), flat(100, 5, 10), 1.0)
    assert out.shape == (10, 20, 3) and (out == 100).all()


def test_crop_box_keeps_aspect_and_stays_inside():
    assert compare.crop_box((100, 200), 0.5, 0.5, 4) == compare.CropBox(38, 75, 25, 50)
    assert compare.crop_box((100, 200), 1.0, 0.0, 4) == compare.CropBox(0, 150, 25, 50)  # shifted, not shrunk
    assert compare.crop_box((100, 200), 0.3, 0.7, 1) == compare.CropBox(0, 0, 100, 200)


def test_zoom_enlarges_the_region_with_visible_pixels():
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = 255
    out = compare.zoom(image, 0.0, 0.0, 2.0)  # the top-left 2×2 block, blown up to 4×4
    assert out.shape == (4, 4, 3)
    assert (out[:2, :2] == 255).all() and (out[2:, :] == 0).all() and (out[:, 2:] == 0).all()


def test_compose_rejects_unknown_modes():
    with pytest.raises(ValueError, match="unknown comparison mode"):
        compare.compose(flat(0), flat(1), "swirl", 0.5)


def test_label_maps_are_coloured_and_images_pass_through():
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    shown = layer_display(encode_png(labels), "labels")
    palette = label_palette()
    assert (shown[0, 0] == palette[0]).all() and (shown[0, 1] == shown[1, 1]).all()
    assert not (shown[0, 1] == shown[1, 0]).all()
    ramp = np.linspace(0, 1, 9, dtype=np.float32).reshape(3, 3, 1)
    grey = layer_display(encode_png(ramp), "grey")  # single channel: through the viridis colour map
    assert shown.dtype == grey.dtype == np.uint8 and grey.shape == (3, 3, 3)
    assert grey[0, 0, 2] > grey[0, 0, 1] and grey[2, 2, 1] > grey[2, 2, 2]  # dark blue-purple → yellow
    assert len({tuple(p) for p in grey.reshape(-1, 3)}) == 9


def test_log_grid_holds_default_bounds_and_zero():
    grid = log_grid(0.0, 10.0, 0.001)
    assert grid[0] == 0.0 and 0.001 in grid and grid[-1] == 10.0
    assert grid[1] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(grid, grid[1:]))
    assert not any(0.001 / 1.15 < v < 0.001 * 1.15 and v != 0.001 for v in grid)
    assert 0.25 in log_grid(0.0, 100.0, 0.25) and 0.244 not in log_grid(0.0, 100.0, 0.25)


@pytest.mark.parametrize("spec, widget", [
    (ParamSpec("on", True, "", bool), "checkbox"),
    (ParamSpec("mode", "a", "", str, choices=("a", "b")), "selectbox"),
    (ParamSpec("name", "x", "", str), "text"),
    (ParamSpec("w", 0.01, "", float, 0.0, 10.0, log_scale=True), "log_slider"),
    (ParamSpec("k", 20, "", int, 1, 200), "slider"),
    (ParamSpec("iters", 40, "", int, 1, 10000), "number"),
    (ParamSpec("g", 2.2, "", float, 0.1, 10.0), "slider"),
    (ParamSpec("free", 1.0, "", float), "number"),
])
def test_plan_control_picks_the_widget_from_the_spec(spec, widget):
    assert plan_control(spec).widget == widget


def test_linear_layers_are_srgb_encoded_for_display_only():
    linear = np.full((2, 2, 3), 0.21404, np.float32)  # sRGB 0.5 in linear light
    assert layer_display(encode_png(linear), "image")[0, 0, 0] == 55  # shown as stored: dark
    shown = int(layer_display(encode_png(linear), "image", colour_space="linear")[0, 0, 0])
    assert abs(shown - 128) <= 1
