"""Raindrops on a window, rendered from the optics of a camera focused on the scene behind the glass.

The Raindrop dataset (Qian et al. 2018) was shot through a glass pane sprayed with water, a few centimetres in front
of the lens, focused on the scene; a second, dry pane gave the clean reference. There is no such data here, so this
module renders it from any photograph:

* **Drops are liquid lenses** on the glass plane: spherical-cap-like height fields ``h = t·r·(1 − d²)`` (``d`` the
  elliptical distance from the drop's centre in units of its radius ``r``, ``t`` the height/radius ratio set by the
  contact angle), flattened into ellipses, and chains of overlapping caps for merged and running (elongated) drops.
  Where drops overlap the higher surface wins, so merged drops share one outline.
* **Each drop shows a refracted, inverted, wide-angle view** of the scene. A ray through the water surface of slope
  ``∇h`` is bent by about ``(n − 1)·|∇h|`` radians; since the camera is focused far behind the glass, the bent ray
  lands ``f·(n − 1)·∇h`` pixels away in the image (``f`` the focal length in pixels). The surface slope at a drop's rim
  is set by the contact angle, not by its size, so every drop sees about the same field of ``S`` pixels around it,
  whatever its radius: a small drop shows a strongly minified, inverted picture of a wide patch of the scene
  (magnification ``1 − S/r``), as real drops do. The view is taken from the background blurred by the minification
  (anti-aliasing) and by the drop's own focusing error, attenuated by Fresnel losses and slightly tinted.
* **Darker rim and highlights**: near the rim the surface is steep, rays are bent past the critical angle or toward
  dark surroundings, so a dark ring (``ρ·smoothstep(d)``); a small specular highlight on the side facing the light and
  a faint caustic on the opposite side.
* **Thin water films**: smooth blotches of low partial coverage that warp (a few pixels) and blur the scene and add a
  little scattered light.
* **Defocus**: the whole water layer (coverage α and premultiplied colour α·D) is blurred with a disk the size of the
  lens's circle of confusion for the glass, and composited over the sharp scene in linear light:
  ``rainy = B·(1 − blur(α)) + blur(α·D)``.
* **Camera**: a common exposure gain, signal-dependent sensor noise (the *same* noise realisation on both images, so
  the pair differs only by the water, as the paper's mask assumes), sRGB encoding, and JPEG compression of each.
* **Mask**: ``M = |rainy − clean| > 30/255`` in any channel, the paper's definition.

Everything is deterministic per seed (one :class:`numpy.random.Generator`; OpenCV's blurs, remaps and JPEG coder
are deterministic). Sizes are relative to a 480-pixel short side (the Raindrop images are 720×480), so a larger
photo gets proportionally larger drops.

Command line::

    python -m engine.synth.raindrops --backgrounds ../shared/data/photos --figure assets/raindrops_contact_sheet.jpg
    python -m engine.synth.raindrops --backgrounds ../shared/data/photos --n 200 --out DIR   # Raindrop layout
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..imaging import linear_to_srgb, srgb_to_linear

MASK_THRESHOLD = 30.0 / 255.0

# sRGB ↔ linear through 16384-entry tables (the exact formulas of engine.imaging, sampled): 4× faster than the
# power functions on every pixel, and within 1e-4 of them (well under an 8-bit step).
_LEVELS = 16384
_GRID = np.linspace(0.0, 1.0, _LEVELS)
_TO_SRGB = linear_to_srgb(_GRID).astype(np.float32)
_TO_LINEAR = srgb_to_linear(_GRID).astype(np.float32)


def _lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[(np.clip(x, 0.0, 1.0) * (_LEVELS - 1) + 0.5).astype(np.int32)]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DropOptions:
    """Ranges the renderer draws from (each image draws its own values). Lengths are in pixels at a 480-pixel short
    side and scale with the image."""

    drops: tuple[int, int] = (60, 400)  # number of drops on a 720×480 image (scaled by area)
    radius: tuple[float, float] = (3.5, 40.0)  # drop radius, drawn log-uniformly (more small ones)
    aspect: tuple[float, float] = (0.55, 1.0)  # minor/major axis ratio of flattened drops
    elongated: float = 0.15  # fraction of drops that run: a chain of 2–5 overlapping caps
    height: tuple[float, float] = (0.25, 0.6)  # cap height / radius (contact angle ~30°–60°)
    view: tuple[float, float] = (60.0, 220.0)  # S: the field radius a drop sees, f·(n − 1)·slope at the rim
    transmission: tuple[float, float] = (0.78, 0.97)
    rim: tuple[float, float] = (0.25, 0.8)  # strength of the dark rim
    highlight: float = 0.7  # probability that a drop has a specular highlight
    film: float = 0.35  # probability that the image has thin water films
    defocus: tuple[float, float] = (0.5, 5.0)  # disk radius of the water layer's blur
    exposure: tuple[float, float] = (0.75, 1.3)
    noise: tuple[float, float] = (0.0, 0.012)  # sensor noise σ at mid-grey (linear light)
    jpeg: tuple[int, int] = (75, 97)  # JPEG quality; 100 or more means no compression
    dry: float = 0.0  # probability of an image without water (the pair is then identical but for JPEG)


#: Named drop regimes. ``light``: the ``DropOptions()`` defaults, a sparse sprinkling. ``heavy``: a thoroughly wet pane,
#: closer to real raindrop photographs (about 17.6 dB against their clean shots on a test set measured outside
#: this repository) though still milder: up to five times as many drops, larger (radius up to 50 px at a 480-px short
#: side), less transparent and more defocused. On the 27 held-out photos of the Attentive GAN recipe at short side
#: 384 (seeds 1,000,000 + k), the rainy image scores 29.0 dB against the clean one with ``light`` (3.4 % of pixels in
#: the drop mask) and 22.7 dB with ``heavy`` (15.8 %, from 13.9 to 30.3 dB per photo).
DROP_PRESETS: dict[str, DropOptions] = {
    "light": DropOptions(),
    "heavy": DropOptions(drops=(150, 2000), radius=(4.0, 50.0), transmission=(0.55, 0.95), defocus=(0.5, 8.0)),
}


def drop_preset(name: str, **changes) -> DropOptions:
    """The named preset (``light`` or ``heavy``) with ``changes`` applied; a clear error for an unknown name."""
    try:
        options = DROP_PRESETS[str(name)]
    except KeyError:
        raise ValueError(f"unknown drop preset {name!r}: choose one of {', '.join(DROP_PRESETS)}") from None
    return replace(options, **changes) if changes else options


@dataclass
class Drop:
    x: float
    y: float
    radius: float
    aspect: float
    angle: float
    height: float  # height/radius ratio


# --- geometry ---------------------------------------------------------------------------------------------------

def sample_drops(rng: np.random.Generator, height: int, width: int, opts: DropOptions) -> list[Drop]:
    """The drops of one image: a log-uniform size distribution, some flattened, some running in chains."""
    scale = min(height, width) / 480.0
    area = height * width / (480.0 * 720.0)
    lo, hi = opts.drops
    count = int(round(math.exp(rng.uniform(math.log(max(lo, 1)), math.log(max(hi, 1)))) * area))
    # A per-image size bias: some windows have a few large drops, others a mist of small ones.
    r_lo, r_hi = (math.log(v * scale) for v in opts.radius)
    bias = rng.uniform(0.0, 1.0)
    r_hi_img = r_lo + (r_hi - r_lo) * (0.45 + 0.55 * bias)
    drops: list[Drop] = []
    for _ in range(count):
        r = math.exp(r_lo + (r_hi_img - r_lo) * rng.uniform() ** 1.6)
        x, y = rng.uniform(-r, width + r), rng.uniform(-r, height + r)
        aspect = rng.uniform(*opts.aspect)
        angle = rng.uniform(0, math.pi)
        t = rng.uniform(*opts.height)
        if rng.uniform() < opts.elongated:
            # A running drop: a chain of shrinking caps down a mostly vertical path, merged by the max of heights.
            n = int(rng.integers(2, 6))
            direction = math.pi / 2 + rng.normal(0, 0.35)
            cx, cy, cr = x, y, r
            for _ in range(n):
                drops.append(Drop(cx, cy, cr, rng.uniform(0.75, 1.0), direction, t))
                step = cr * rng.uniform(0.9, 1.5)
                cx, cy = cx + step * math.cos(direction), cy + step * math.sin(direction)
                cr *= rng.uniform(0.55, 0.9)
                if cr < 1.0:
                    break
        else:
            drops.append(Drop(x, y, r, aspect, angle, t))
    return drops


def water_surface(drops: Sequence[Drop], height: int, width: int):
    """Rasterise the drops: height ``h`` (the higher surface wins where caps overlap), anti-aliased coverage,
    normalised distance ``d`` from the winning drop's centre, its refraction displacement (before the view scale S)
    and its index (−1 where dry)."""
    h = np.zeros((height, width), np.float32)
    cover = np.zeros((height, width), np.float32)
    dist = np.ones((height, width), np.float32)
    disp = np.zeros((2, height, width), np.float32)
    index = np.full((height, width), -1, np.int32)
    for i, drop in enumerate(drops):
        r = drop.radius
        x0, x1 = max(int(drop.x - r) - 1, 0), min(int(drop.x + r) + 2, width)
        y0, y1 = max(int(drop.y - r) - 1, 0), min(int(drop.y + r) + 2, height)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx + 0.5 - drop.x, yy + 0.5 - drop.y
        c, s = math.cos(drop.angle), math.sin(drop.angle)
        u = (c * dx + s * dy) / r  # along the major axis
        v = (-s * dx + c * dy) / (r * drop.aspect)
        d2 = u * u + v * v
        hi = drop.height * r * (1.0 - d2)
        win = hi > h[y0:y1, x0:x1]
        if not win.any():
            continue
        d = np.sqrt(d2)
        # Slope of the cap, in units of its rim slope; steeper near the rim as on a real spherical cap.
        g = 1.0 + 0.6 * np.clip(d, 0, 1) ** 4
        gu, gv = u * g, v * g / drop.aspect
        du = c * gu - s * gv
        dv = s * gu + c * gv
        sub = (slice(y0, y1), slice(x0, x1))
        h[sub] = np.where(win, hi, h[sub])
        dist[sub] = np.where(win, np.minimum(d, 1.0), dist[sub])
        disp[0][sub] = np.where(win, -du, disp[0][sub])
        disp[1][sub] = np.where(win, -dv, disp[1][sub])
        index[sub] = np.where(win, i, index[sub])
        cover[sub] = np.maximum(cover[sub], np.clip((1.0 - d) * r, 0.0, 1.0))  # one-pixel anti-aliased edge
    return h, cover, dist, disp, index


# --- optics -----------------------------------------------------------------------------------------------------

def _gauss(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def disk_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Defocus: convolution with an anti-aliased disk of ``radius`` pixels (identity below half a pixel)."""
    if radius < 0.5:
        return image
    k = int(math.ceil(radius))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1].astype(np.float32)
    kernel = np.clip(radius + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    gh, gw = max(2, int(height / cell) + 2), max(2, int(width / cell) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _jpeg(image_srgb: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.round(np.clip(image_srgb, 0, 1) * 255).astype(np.uint8)
    if quality < 100:
        ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        u8 = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return u8.astype(np.float32) / 255.0


def render_raindrops(background: np.ndarray, seed: int | np.random.Generator,
                     options: DropOptions = DropOptions(), drops: Sequence[Drop] | None = None
                     ) -> dict[str, np.ndarray]:
    """Render water drops over ``background`` (float32 (H, W, 3) sRGB in [0, 1]); ``drops`` replaces the random
    drops (films, optics and camera are still drawn from the seed).

    Returns float32 (H, W, 3) ``rainy`` and ``clean`` (both through the same camera: exposure, noise, JPEG),
    ``mask`` (H, W, 1) in {0, 1} (|rainy − clean| > 30/255 in any channel), and ``coverage`` (H, W, 1): the defocused
    water coverage α, for diagnostics.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    bg = _lut(np.asarray(background, np.float32), _TO_LINEAR)
    height, width = bg.shape[:2]
    scale = min(height, width) / 480.0
    wet = rng.uniform() >= options.dry
    alpha = np.zeros((height, width, 1), np.float32)
    premult = np.zeros_like(bg)

    if wet and rng.uniform() < options.film:
        # Thin films: smooth blotches of partial coverage that warp and blur the scene and scatter a little light.
        blob = _smooth_noise(rng, height, width, 90 * scale)
        level = rng.uniform(0.6, 1.4)
        film = np.clip((blob - level) * 1.5, 0.0, 1.0) * rng.uniform(0.35, 0.85)
        amp = rng.uniform(2.0, 8.0) * scale
        wx = _smooth_noise(rng, height, width, 25 * scale) * amp
        wy = _smooth_noise(rng, height, width, 25 * scale) * amp
        gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        warped = cv2.remap(_gauss(bg, rng.uniform(1.5, 4.0) * scale), (gx + wx).astype(np.float32),
                           (gy + wy).astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
        haze = float(np.mean(bg)) * rng.uniform(0.0, 0.25)
        alpha = film[:, :, None]
        premult = alpha * (warped * rng.uniform(0.9, 1.0) + haze)

    sampled = sample_drops(rng, height, width, options) if wet else []
    drops = list(drops) if drops is not None else sampled
    if drops:
        _, cover, dist, disp, index = water_surface(drops, height, width)
        view_s = rng.uniform(*options.view) * scale  # S, in pixels
        transmission = rng.uniform(*options.transmission)
        tint = 1.0 + rng.normal(0.0, 0.03, 3).astype(np.float32)
        rim = rng.uniform(*options.rim)
        # The view through a drop is minified by about S/r: blur the scene by that (anti-aliasing) plus the drop's
        # focusing error. Three pre-blurred levels; each drop takes the one closest to what it needs.
        radii = np.array([d.radius for d in drops], np.float32)
        need = np.clip(0.35 * view_s / np.maximum(radii, 1.0), 1.0, 40.0 * scale + 1.0)
        levels = np.array([1.5, 4.0, 10.0], np.float32) * max(scale, 0.35)
        level_of_drop = np.abs(np.log(need[:, None] / levels[None, :])).argmin(1)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        # Where the drop's view looks: inverted around the drop, S pixels at the rim; slight global offset.
        shift = rng.normal(0.0, 0.15, 2) * view_s
        map_x = (xx + disp[0] * view_s + shift[0]).astype(np.float32)
        map_y = (yy + disp[1] * view_s + shift[1]).astype(np.float32)
        view = np.zeros_like(bg)
        wet_pixels = index >= 0
        pixel_level = np.where(wet_pixels, level_of_drop[np.maximum(index, 0)], -1)
        for lv, sigma in enumerate(levels):
            sel = pixel_level == lv
            if sel.any():
                sampled = cv2.remap(_gauss(bg, float(sigma)), map_x, map_y, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
                view[sel] = sampled[sel]
        t_edge = np.clip((dist - 0.55) / 0.45, 0.0, 1.0)
        darken = 1.0 - rim * (t_edge * t_edge * (3 - 2 * t_edge)) ** 1.5
        drop_colour = view * (transmission * tint)[None, None, :] * darken[:, :, None]
        # Specular highlights toward the light (from above), a faint caustic on the opposite side.
        light = np.array([rng.normal(0, 0.4), -1.0], np.float32)
        light /= np.linalg.norm(light)
        peak = float(np.percentile(bg[::3, ::3], 99.5))
        spots = np.zeros((height, width), np.float32)
        for drop in drops:
            if drop.radius < 1.2 or rng.uniform() > options.highlight:
                continue
            strength = rng.uniform(0.4, 1.2) * max(peak, 0.3)
            for offset, size, gain in ((0.45, 0.16, 1.0), (-0.55, 0.3, -0.0 + rng.uniform(0.05, 0.2))):
                cx = drop.x + offset * drop.radius * light[0]
                cy = drop.y + offset * drop.radius * light[1]
                sigma = max(size * drop.radius, 0.6)
                k = int(3 * sigma) + 1
                x0, x1 = max(int(cx) - k, 0), min(int(cx) + k + 1, width)
                y0, y1 = max(int(cy) - k, 0), min(int(cy) + k + 1, height)
                if x0 >= x1 or y0 >= y1:
                    continue
                gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
                blob = np.exp(-((gx + 0.5 - cx) ** 2 + (gy + 0.5 - cy) ** 2) / (2 * sigma * sigma))
                spots[y0:y1, x0:x1] += strength * gain * blob
        drop_colour = drop_colour + (spots * cover)[:, :, None]
        a = cover[:, :, None]
        premult = premult * (1.0 - a) + a * drop_colour
        alpha = alpha * (1.0 - a) + a

    # Defocus of the water layer (the lens is focused on the scene, the glass is a few centimetres away).
    blur = rng.uniform(*options.defocus) * scale
    alpha_b = disk_blur(alpha, blur)
    if alpha_b.ndim == 2:
        alpha_b = alpha_b[:, :, None]
    premult_b = disk_blur(premult, blur)
    rainy_lin = bg * (1.0 - alpha_b) + premult_b

    # The camera: one exposure, the same noise realisation on both, sRGB, JPEG.
    gain = math.exp(rng.uniform(math.log(options.exposure[0]), math.log(options.exposure[1])))
    sigma = rng.uniform(*options.noise)
    noise = rng.standard_normal(bg.shape, dtype=np.float32)
    quality = int(rng.integers(options.jpeg[0], options.jpeg[1] + 1))

    def camera(linear: np.ndarray) -> np.ndarray:
        x = np.clip(linear * np.float32(gain), 0.0, None)
        if sigma > 0:
            x = x + np.float32(sigma) * np.sqrt(np.minimum(x, 1.0) * np.float32(1 / 0.18) + np.float32(0.05)) * noise
        return _jpeg(_lut(x, _TO_SRGB), quality)

    rainy, clean = camera(rainy_lin), camera(bg)
    mask = (np.abs(rainy - clean) > MASK_THRESHOLD).any(axis=2, keepdims=True).astype(np.float32)
    return {"rainy": rainy, "clean": clean, "mask": mask, "coverage": np.clip(alpha_b, 0, 1).astype(np.float32)}


# --- backgrounds, datasets, files -------------------------------------------------------------------------------

def list_backgrounds(folders: Sequence[str | Path]) -> list[Path]:
    """Image files under the given folders (recursively), sorted; a folder named ``low`` (LOL's low-light inputs)
    is skipped, since dark frames are not what a camera sees through a wet window."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                        and "low" not in p.relative_to(folder).parts[:-1])
    if not files:
        raise FileNotFoundError(f"no background images under {', '.join(map(str, folders))}")
    return files


def read_background(path: str | Path, short_side: int | None = None) -> np.ndarray:
    """An sRGB float32 (H, W, 3) image, optionally resized (area filter) to a given short side."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    image = bgr[:, :, ::-1].astype(np.float32) / 255.0
    if short_side:
        s = short_side / min(image.shape[:2])
        size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def random_window(background: np.ndarray, rng: np.random.Generator, size: int, scale_range=(0.8, 1.25)
                  ) -> np.ndarray:
    """A random ``size``×``size`` window of ``background`` after a random zoom (flip included): a training view."""
    h, w = background.shape[:2]
    zoom = rng.uniform(*scale_range)
    zoom = max(zoom, size / min(h, w))
    if abs(zoom - 1.0) > 1e-3:
        background = cv2.resize(background, (max(size, round(w * zoom)), max(size, round(h * zoom))),
                                interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        h, w = background.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    window = background[y:y + size, x:x + size]
    if rng.uniform() < 0.5:
        window = window[:, ::-1]
    return np.ascontiguousarray(window)


def render_pair(backgrounds: Sequence[np.ndarray], seed: int, crop: int | None = None,
                options: DropOptions = DropOptions(), context: int = 2) -> dict[str, np.ndarray]:
    """One training pair from seed: a background (chosen by the seed), a window of ``context``·``crop`` pixels
    rendered whole (so drops near the crop see a real scene), and the centre ``crop`` (None: the whole image).
    Drop sizes follow the background's own scale (its short side against 480 pixels)."""
    rng = np.random.default_rng([seed, 7])
    bg = backgrounds[int(rng.integers(0, len(backgrounds)))]
    if crop is None:
        return render_raindrops(bg, rng, options)
    side = min(context * crop, min(bg.shape[:2]))
    side = max(side, crop)
    window = random_window(bg, rng, side)
    # Drop sizes are set by the full photo's scale, not by the window's.
    opts = _scaled(options, min(bg.shape[:2]) / max(side, 1))
    out = render_raindrops(window, rng, opts)
    top = (side - crop) // 2
    return {k: np.ascontiguousarray(v[top:top + crop, top:top + crop]) for k, v in out.items()}


def _scaled(options: DropOptions, factor: float) -> DropOptions:
    """Options for a window that is ``1/factor`` of the photo's short side: lengths multiplied by ``factor`` (the
    renderer scales lengths by the window's short side, the photo's is what counts). Drop counts stay: the renderer
    already scales them by the window's pixel area, which keeps the photo's drops per pixel."""
    if abs(factor - 1.0) < 1e-6:
        return options
    mul = lambda pair: (pair[0] * factor, pair[1] * factor)  # noqa: E731
    return replace(options, radius=mul(options.radius), view=mul(options.view), defocus=mul(options.defocus))


def write_pairs(out: str | Path, backgrounds: Sequence[Path], n: int, seed: int = 0, short_side: int = 480,
                options: DropOptions = DropOptions()) -> dict:
    """Write ``n`` rendered pairs in the Raindrop layout: ``OUT/data/K_rain.png``, ``OUT/gt/K_clean.png`` (and
    ``OUT/mask/K_mask.png``), plus ``manifest.json``. Pair K uses background ``K mod len(backgrounds)``."""
    out = Path(out)
    for sub in ("data", "gt", "mask"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        path = backgrounds[k % len(backgrounds)]
        sample = render_raindrops(read_background(path, short_side), seed + k, options)
        for sub, name, key in (("data", "rain", "rainy"), ("gt", "clean", "clean"), ("mask", "mask", "mask")):
            image = sample[key] if sample[key].shape[2] == 3 else np.repeat(sample[key], 3, 2)
            cv2.imwrite(str(out / sub / f"{k}_{name}.png"), np.round(image[:, :, ::-1] * 255).astype(np.uint8))
    manifest = {"generator": "engine.synth.raindrops", "n": n, "seed": seed, "short_side": short_side,
                "backgrounds": [str(p) for p in backgrounds], "options": asdict(options),
                "licence": "rendered drops over the given backgrounds: the backgrounds' licences apply"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def contact_sheet(backgrounds: Sequence[np.ndarray], seeds: Sequence[int], tile: int = 240,
                  options: DropOptions = DropOptions()) -> np.ndarray:
    """Rows of [clean, rainy, |rainy − clean| ×3, mask M] for each seed, with a header: a picture for the README."""
    rows = []
    titles = ("clean (camera)", "rainy (rendered)", "|rainy - clean| x3", "mask M (>30/255)")
    for i, seed in enumerate(seeds):
        bg = backgrounds[i % len(backgrounds)]
        h, w = bg.shape[:2]
        if h * 3 > w * 2:  # portrait or square: the centre 3:2 landscape part, so all rows line up
            top = (h - w * 2 // 3) // 2
            bg = bg[top:top + w * 2 // 3]
        s = render_raindrops(bg, seed, options)
        tiles = [s["clean"], s["rainy"], np.clip(np.abs(s["rainy"] - s["clean"]) * 3, 0, 1),
                 np.repeat(s["mask"], 3, 2)]
        h, w = bg.shape[:2]
        size = (tile, round(tile * h / w))
        rows.append(np.concatenate([cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    header = np.full((20, width, 3), 255, np.uint8)
    step = rows[0].shape[1] // 4
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * step + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    header = header.astype(np.float32) / 255.0
    return np.concatenate([header] + rows, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.synth.raindrops",
                                     description="render raindrops on a window over background photographs")
    parser.add_argument("--backgrounds", nargs="+", required=True, help="folders (or files) of background photos")
    parser.add_argument("--short-side", type=int, default=480, help="backgrounds are resized to this short side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=4, help="pairs to write (or rows of the contact sheet)")
    parser.add_argument("--out", help="write N pairs in the Raindrop layout (data/, gt/, mask/) into this folder")
    parser.add_argument("--figure", help="write a contact sheet (JPEG/PNG) of N samples and exit")
    parser.add_argument("--tile", type=int, default=240, help="contact-sheet tile width")
    parser.add_argument("--drops", default="light", choices=sorted(DROP_PRESETS),
                        help="drop regime: light (sparse, the default) or heavy (a thoroughly wet pane)")
    args = parser.parse_args(argv)
    options = drop_preset(args.drops)
    files = list_backgrounds(args.backgrounds)
    if args.figure:
        picks = [files[(args.seed + 37 * k) % len(files)] for k in range(args.n)]
        images = [read_background(p, args.short_side) for p in picks]
        sheet = contact_sheet(images, list(range(args.seed, args.seed + args.n)), args.tile, options)
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, 85] if args.figure.lower().endswith((".jpg", ".jpeg")) else []
        cv2.imwrite(args.figure, np.round(sheet[:, :, ::-1] * 255).astype(np.uint8), params)
        print(f"wrote {args.figure}")
        return 0
    if not args.out:
        parser.error("give --out DIR or --figure FILE")
    write_pairs(args.out, files, args.n, args.seed, args.short_side, options)
    print(f"wrote {args.n} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
