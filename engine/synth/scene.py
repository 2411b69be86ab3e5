"""Random scene descriptions: what is where, what it is made of, and how it is lit. Pure sampling, no rendering.

Everything random comes from one ``torch.Generator`` seeded by the sample's seed, drawn on the CPU in a fixed order,
so a seed gives the same scene on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

#: The fixed list of 16 semantic classes (index = label value). IntrinSeg trains its segmentation head on these.
CLASS_NAMES: tuple[str, ...] = (
    "background", "floor", "wall", "sphere", "ellipsoid", "box", "rounded_box", "cylinder",
    "capsule", "cone", "torus", "octahedron", "blob", "twisted_box", "rock", "panel",
)
OBJECT_CLASSES = tuple(range(3, 16))
TEXTURES = ("constant", "regions", "gradient", "stripes", "checks", "noise", "photo")

SCENE_CENTER = (0.0, 0.9, 0.0)
BOUND_RADIUS = 3.4  # everything except the far floor, the walls' far parts and the sky dome lies inside
DOME_RADIUS = 60.0
WALL_HEIGHT = 4.0


@dataclass
class Texture:
    kind: str
    colours: torch.Tensor  # (8, 3) linear albedo
    direction: torch.Tensor  # (3,) unit
    frequency: float
    sites: torch.Tensor  # (12, 3) Voronoi sites in texture space
    waves: torch.Tensor  # (6, 3) noise waves
    phases: torch.Tensor  # (6,)
    photo: torch.Tensor | None = None  # (3, h, w) linear albedo, for "photo"


@dataclass
class SceneObject:
    label: int
    center: torch.Tensor  # (3,)
    rotation: torch.Tensor  # (3, 3) local → world
    size: torch.Tensor  # (3,)
    texture: Texture
    twist: float = 0.0
    displacement: float = 0.0
    waves: torch.Tensor | None = None
    phases: torch.Tensor | None = None
    specular: float = 0.0
    shininess: float = 32.0


@dataclass
class Lighting:
    sun_direction: torch.Tensor  # (3,) unit, towards the sun
    sun_colour: torch.Tensor  # (3,) radiance scale
    sky_sh: torch.Tensor  # (9, 3) radiance SH coefficients (real, order 2)
    point_positions: torch.Tensor  # (P, 3)
    point_colours: torch.Tensor  # (P, 3)
    exposure_target: float
    white_balance: torch.Tensor  # (3,) camera gains, folded into shading
    noise: tuple[float, float]  # (signal-dependent, read) standard deviations
    jpeg_quality: int  # 0 = no JPEG


@dataclass
class Scene:
    seed: int
    objects: list[SceneObject]
    floor_texture: Texture
    wall_texture: Texture
    sky_albedo: torch.Tensor  # (3,)
    room: bool  # room corner (two walls) or open ground plane
    wall_distance: float
    height_amplitude: float
    height_waves: torch.Tensor  # (5, 2)
    height_phases: torch.Tensor
    camera_position: torch.Tensor
    camera_target: torch.Tensor
    fov_degrees: float
    lightings: list[Lighting] = field(default_factory=list)


class _Rng:
    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(int(seed))

    def uniform(self, low=0.0, high=1.0, shape=()) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=self.gen)

    def u(self, low=0.0, high=1.0) -> float:
        return float(self.uniform(low, high))

    def normal(self, shape=()) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen)

    def integer(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, (), generator=self.gen))

    def chance(self, p: float) -> bool:
        return self.u() < p

    def unit(self) -> torch.Tensor:
        v = self.normal((3,))
        return v / v.norm().clamp(min=1e-6)


def _albedo_colour(rng: _Rng, n: int) -> torch.Tensor:
    """Linear albedos spread over hue, saturation and lightness, including near-greys and dark paints."""
    hue = rng.uniform(0, 1, (n,))
    sat = rng.uniform(0, 1, (n,)) ** 1.5
    value = rng.uniform(0.06, 0.9, (n,))
    k = (hue[:, None] * 6 + torch.tensor([5.0, 3.0, 1.0])) % 6
    rgb = value[:, None] * (1 - sat[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1)))
    return rgb.clamp(0.02, 0.92)


def _texture(rng: _Rng, photos: list[torch.Tensor], allow: tuple[str, ...] = TEXTURES,
             photo_weight: float = 2.0) -> Texture:
    kinds = [k for k in allow if k != "photo" or photos]
    weights = torch.tensor([{"constant": 1.5, "regions": 2.0, "photo": photo_weight}.get(k, 1.0) for k in kinds])
    kind = kinds[int(torch.multinomial(weights, 1, generator=rng.gen))]
    base = _albedo_colour(rng, 1)
    # Palettes are related to a base colour half of the time: real surfaces vary within a family of colours.
    colours = _albedo_colour(rng, 8)
    if rng.chance(0.5):
        colours = (base * rng.uniform(0.35, 1.3, (8, 1)) + 0.15 * colours).clamp(0.02, 0.92)
    photo = photos[rng.integer(0, len(photos))] if kind == "photo" else None
    if photo is not None:
        photo = photo * rng.u(0.5, 1.1)
    return Texture(kind=kind, colours=colours, direction=rng.unit(), frequency=rng.u(2.0, 9.0),
                   sites=rng.uniform(-1.5, 1.5, (12, 3)), waves=rng.normal((6, 3)) * rng.u(1.0, 4.0),
                   phases=rng.uniform(0, 2 * math.pi, (6,)), photo=photo)


def _rotation(rng: _Rng, tilt: float) -> torch.Tensor:
    yaw = rng.u(0, 2 * math.pi)
    ax, az = rng.u(-tilt, tilt), rng.u(-tilt, tilt)
    cy, sy = math.cos(yaw), math.sin(yaw)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = torch.tensor([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rz = torch.tensor([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return (ry @ rx @ rz).float()


def _object(rng: _Rng, photos: list[torch.Tensor], label: int, xz: tuple[float, float],
            size_range: tuple[float, float] = (0.35, 0.8), photo_weight: float = 2.0) -> SceneObject:
    s = rng.u(*size_range)
    size = torch.tensor([s, s, s])
    name = CLASS_NAMES[label]
    if name in ("ellipsoid", "box", "rounded_box", "twisted_box", "rock"):
        size = s * rng.uniform(0.5, 1.3, (3,))
    elif name in ("cylinder", "capsule"):
        size = torch.tensor([s * rng.u(0.35, 0.7), s * rng.u(0.7, 1.6), 0.0])
    elif name == "cone":
        size = torch.tensor([s * rng.u(0.5, 0.9), s * rng.u(0.6, 1.2), s * rng.u(0.0, 0.4)])
    elif name == "torus":
        size = torch.tensor([s * 0.75, s * rng.u(0.15, 0.35), 0.0])
    elif name == "panel":  # a thin upright slab: the occluder that casts long shadows
        size = torch.tensor([rng.u(0.5, 1.1), rng.u(0.6, 1.3), rng.u(0.03, 0.08)])
    tilt = 0.5 if name in ("box", "rounded_box", "octahedron", "rock", "blob", "ellipsoid") else 0.15
    if name == "torus" and rng.chance(0.5):
        tilt = 1.2
    rotation = _rotation(rng, tilt if rng.chance(0.6) else 0.0)
    # Rest the object on the floor: its lowest point over the local bounding box after rotation.
    extent = {"sphere": size[0], "octahedron": size[0], "blob": size[0]}.get(name)
    if extent is None:
        box = {"cylinder": torch.stack([size[0], size[1], size[0]]),
               "capsule": torch.stack([size[0], size[1], size[0]]),
               "cone": torch.stack([size[0].maximum(size[2]), size[1], size[0].maximum(size[2])]),
               "torus": torch.stack([size[0] + size[1], size[1], size[0] + size[1]])}.get(name, size)
        extent = (rotation.abs() @ box)[1]
    sink = rng.u(0.0, 0.25) * float(extent)  # partly buried objects make contact shadows and occlusions
    center = torch.tensor([xz[0], float(extent) - sink, xz[1]])
    if rng.chance(0.12) and name not in ("panel",):
        center[1] += rng.u(0.3, 0.9)  # floating objects cast detached shadows
    twist_rate = rng.u(-2.0, 2.0) if name == "twisted_box" else 0.0
    displacement = {"blob": rng.u(0.06, 0.16), "rock": rng.u(0.03, 0.08)}.get(name, 0.0)
    specular = rng.u(0.05, 0.5) if rng.chance(0.35) else 0.0
    return SceneObject(label=label, center=center, rotation=rotation, size=size.float(),
                       texture=_texture(rng, photos, photo_weight=photo_weight), twist=twist_rate, displacement=displacement,
                       waves=rng.normal((6, 3)) * rng.u(2.0, 5.0), phases=rng.uniform(0, 2 * math.pi, (6,)),
                       specular=specular, shininess=rng.u(8.0, 120.0))


def _lighting(rng: _Rng, room: bool, camera_azimuth: float, photographic: bool = False) -> Lighting:
    elevation = rng.u(math.radians(12), math.radians(70))
    # In a room the sun must come through the open side (from around the camera) or the walls shade everything;
    # outdoors it may come from anywhere, and back light throws shadows toward the camera.
    azimuth = camera_azimuth + (rng.u(-1.3, 1.3) if room else rng.u(-math.pi, math.pi))
    sun = torch.tensor([math.cos(elevation) * math.cos(azimuth), math.sin(elevation),
                        math.cos(elevation) * math.sin(azimuth)])
    warmth = rng.u(-1.0, 1.0)
    sun_colour = torch.tensor([1.0 + 0.25 * warmth, 1.0, 1.0 - 0.3 * warmth]).clamp(min=0.3)
    sun_colour = sun_colour * rng.u(0.15, 1.0) * (rng.u(2.0, 6.0) if not rng.chance(0.12) else 0.2)
    sky_colour = torch.tensor([0.75 - 0.2 * warmth, 0.85, 1.0 + 0.2 * warmth]) * rng.uniform(0.8, 1.2, (3,))
    sky = torch.zeros(9, 3)
    strength = rng.u(0.25, 0.8)
    sky[0] = strength * sky_colour  # ambient
    sky[1] = strength * rng.u(0.3, 0.8) * sky_colour  # Y(1,-1) ∝ y: brighter from above
    sky[2:4] = strength * 0.25 * rng.normal((2, 3)).abs().clamp(max=1.5) * rng.normal((2, 1)).sign()
    sky[4:] = strength * 0.12 * rng.normal((5, 3))
    n_points = rng.integer(0, 3) if room or rng.chance(0.3) else 0
    positions = torch.stack([torch.tensor([rng.u(-2.0, 2.0), rng.u(0.8, 2.6), rng.u(-2.0, 2.0)])
                             for _ in range(n_points)]) if n_points else torch.zeros(0, 3)
    colours = (_albedo_colour(rng, n_points) * 0.5 + 0.5) * rng.uniform(0.8, 3.0, (n_points, 1)) \
        if n_points else torch.zeros(0, 3)
    gains = rng.uniform(0.85, 1.15, (3,))
    if photographic and room:
        # Indoors: the window's sun is dimmer and often absent, warm lamps carry the scene, the fill is weak.
        sun_colour = sun_colour * (rng.u(0.05, 0.6) if rng.chance(0.7) else 0.0)
        sky = sky * rng.u(0.3, 0.8)
        n_points = rng.integer(1, 4)
        positions = torch.stack([torch.tensor([rng.u(-2.2, 2.2), rng.u(1.2, 3.2), rng.u(-2.2, 2.2)])
                                 for _ in range(n_points)])
        warm = torch.tensor([1.0, 0.82, 0.6]) * rng.uniform(0.9, 1.1, (n_points, 3))
        cool = torch.tensor([0.9, 0.95, 1.0]).expand(n_points, 3)
        mix = rng.uniform(0, 1, (n_points, 1))
        colours = (mix * warm + (1 - mix) * cool) * rng.uniform(1.5, 5.0, (n_points, 1))
    elif photographic:
        # Outdoors: a strong sun (or an overcast sky that is all fill) and a blue sky; no lamps.
        if rng.chance(0.25):
            sun_colour = sun_colour * 0.05
            sky = sky * rng.u(1.5, 2.5)
        else:
            sun_colour = sun_colour * rng.u(1.0, 1.8)
        positions, colours = torch.zeros(0, 3), torch.zeros(0, 3)
    return Lighting(sun_direction=sun / sun.norm(), sun_colour=sun_colour, sky_sh=sky,
                    point_positions=positions, point_colours=colours, exposure_target=rng.u(0.45, 0.95),
                    white_balance=gains / gains.mean(),
                    noise=(rng.u(0.0, 0.02), rng.u(0.0, 0.008)) if rng.chance(0.7) else (0.0, 0.0),
                    jpeg_quality=rng.integer(55, 96) if rng.chance(0.5) else 0)


STYLES = ("classic", "photographic")


def sample_scene(seed: int, lightings: int = 1, photos: list[torch.Tensor] | None = None,
                 style: str = "classic") -> Scene:
    """Draw one random scene with ``lightings`` different illuminations of the same geometry and materials.

    ``style="photographic"`` makes scenes closer to photographs: photo textures (when given) on most surfaces,
    clutter (up to 14 objects, many of them small), and indoor (lamps, dim window light) or outdoor (strong sun or
    overcast sky) lighting. ``"classic"`` is the original distribution (the same seed gives the same scene)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    photographic = style == "photographic"
    rng = _Rng(seed)
    photos = photos or []
    room = rng.chance(0.5)
    n_objects = rng.integer(2, 7) if not photographic else rng.integer(3, 15)
    objects = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(n_objects):
        label = OBJECT_CLASSES[rng.integer(0, len(OBJECT_CLASSES))]
        for _attempt in range(8):  # rejection sampling keeps objects apart most of the time (some overlap is fine)
            x, z = rng.u(-1.8, 1.8), rng.u(-1.8, 1.8)
            if all((x - px) ** 2 + (z - pz) ** 2 > (0.6 * pr + 0.5) ** 2 for px, pz, pr in placed):
                break
        if photographic:
            small = rng.chance(0.5)
            obj = _object(rng, photos, label, (x, z), (0.12, 0.35) if small else (0.3, 0.8), photo_weight=5.0)
        else:
            obj = _object(rng, photos, label, (x, z))
        placed.append((x, z, float(obj.size.max())))
        objects.append(obj)
    camera_azimuth = rng.u(math.radians(20), math.radians(70)) if room else rng.u(0, 2 * math.pi)
    camera_elevation = rng.u(math.radians(14), math.radians(50))
    distance = rng.u(5.5, 8.5)
    camera_position = torch.tensor([distance * math.cos(camera_elevation) * math.cos(camera_azimuth),
                                    distance * math.sin(camera_elevation) + 0.4,
                                    distance * math.cos(camera_elevation) * math.sin(camera_azimuth)])
    target = torch.tensor([rng.u(-0.4, 0.4), rng.u(0.3, 0.8), rng.u(-0.4, 0.4)])
    scene = Scene(
        seed=int(seed), objects=objects,
        floor_texture=_texture(rng, photos, ("constant", "regions", "checks", "stripes", "noise", "gradient", "photo"),
                               photo_weight=5.0 if photographic else 2.0),
        wall_texture=_texture(rng, photos, ("constant", "regions", "stripes", "noise", "gradient", "photo"),
                              photo_weight=5.0 if photographic else 2.0),
        sky_albedo=torch.tensor([0.55, 0.7, 0.9]) * rng.uniform(0.7, 1.1, (3,)),
        room=room, wall_distance=rng.u(2.4, 3.0),
        height_amplitude=rng.u(0.04, 0.18) if rng.chance(0.45) else 0.0,
        height_waves=rng.normal((5, 2)) * rng.u(0.8, 2.5), height_phases=rng.uniform(0, 2 * math.pi, (5,)),
        camera_position=camera_position, camera_target=target, fov_degrees=rng.u(38.0, 58.0),
    )
    scene.lightings = [_lighting(rng, room, camera_azimuth, photographic) for _ in range(lightings)]
    return scene


def load_photo_textures(folder: str | Path, size: int = 256, limit: int = 200) -> list[torch.Tensor]:
    """Photos from a user folder (and its subfolders) as linear-albedo textures (3, size, size), scaled into a plausible albedo range."""
    from ..errors import ImageDecodeError
    from ..imaging import IMAGE_SUFFIXES, read_image, srgb_to_linear
    import cv2

    textures = []
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files[:limit]:
        try:
            pixels = read_image(path).pixels
        except ImageDecodeError:
            continue
        h, w = pixels.shape[:2]
        side = min(h, w)
        crop = pixels[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        linear = srgb_to_linear(crop)
        # A photo has lighting baked in; squeezing its range keeps it a plausible reflectance.
        linear = 0.04 + 0.82 * linear / max(float(np.percentile(linear, 99)), 1e-3)
        textures.append(torch.from_numpy(np.clip(linear, 0.02, 0.92).transpose(2, 0, 1).copy()).float())
    return textures
