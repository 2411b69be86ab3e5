"""Tiling only when memory needs it: the whole image when it fits, else the fewest, largest tiles that do, with
little recomputed halo; rectangular tiles give the whole image's result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.ops.tiling import minimum_tile, plan_tiles, run_tiled, tile_starts

HALO, BLEND = 40, 32  # RetinexNet's


def test_the_whole_image_when_it_fits_the_budget():
    plan = plan_tiles(1080, 1920, 1000, 1080 * 1920 * 1000, HALO, BLEND)
    assert plan.whole and plan.tile == (1080, 1920) and plan.work == 1.0


@pytest.mark.parametrize("height,width,budget_mb", [(1080, 1920, 1536), (3000, 4000, 1536), (2160, 3840, 1536),
                                                    (1080, 1920, 700), (777, 1301, 300)])
def test_tiles_fit_the_budget_cover_the_image_and_waste_little(height, width, budget_mb):
    budget, per_pixel = budget_mb * 2**20, 1000
    plan = plan_tiles(height, width, per_pixel, budget, HALO, BLEND)
    tile_h, tile_w = plan.tile
    assert not plan.whole and tile_h * tile_w * per_pixel <= budget
    rows, cols = tile_starts(height, tile_h, HALO, BLEND), tile_starts(width, tile_w, HALO, BLEND)
    assert (len(rows), len(cols)) == (plan.rows, plan.cols)
    assert rows[-1] + tile_h >= height - 7 and cols[-1] + tile_w >= width - 7  # the last tile reaches the border
    assert plan.work == pytest.approx(plan.rows * plan.cols * tile_h * tile_w / (height * width))
    if budget_mb >= 1536:  # tiles of a megapixel or more: halos cost under 15 % of the work
        assert plan.work < 1.15, plan
    square = 768  # the old fixed CPU tile: nine tiles and 2.5× the work at 1080p
    old = len(tile_starts(height, square, HALO, BLEND)) * len(tile_starts(width, square, HALO, BLEND))
    assert plan.work <= old * square * square / (height * width)


def test_a_tiny_budget_still_gives_the_smallest_useful_tile():
    plan = plan_tiles(1000, 1000, 1000, 1, HALO, BLEND)
    assert plan.tile == (minimum_tile(HALO, BLEND),) * 2 and plan.rows > 1


def test_rectangular_tiles_give_the_whole_images_result():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 150, 230)

    def blur(x, _geometry):  # receptive radius 6 < the halo
        for _ in range(3):
            x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        return {"out": x}

    whole = blur(image, None)["out"]
    tiled = run_tiled(blur, image, (96, 120), halo=16, blend=8)["out"]
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)


def test_retinexnet_runs_whole_under_the_default_budget_and_tiles_above_it():
    from engine.methods import retinexnet as rn

    assert rn.tile_plan(400, 600).whole
    assert rn.tile_plan(1080, 1920, budget=4 * 2**30).whole  # a server with more memory: no tiles
    tiled = rn.tile_plan(1080, 1920, budget=1.5 * 2**30)
    assert not tiled.whole and tiled.rows * tiled.cols <= 3 and tiled.work < 1.15  # the old 768 px tiles: 9, 2.5×
    huge = rn.tile_plan(3000, 4000, budget=1.5 * 2**30)  # 12 MP: buffers fill the budget (768 px tiles: 1.72×)
    assert huge.work < 1.4 and huge.tile[0] * huge.tile[1] * rn.NETWORK_BYTES_PER_PIXEL <= 0.75 * 2**30
