"""Sphere-traced rendering of a :class:`~engine.synth.scene.Scene` into exact intrinsic layers.

The renderer is vectorised over pixels in torch (so it runs on the GPU when given a CUDA device). Geometry is one
signed distance field: the objects, the floor (a height field that flattens outside the scene's bounding sphere),
the walls of a room corner and a far dome for the background. Camera rays are sphere-traced inside the bounding
sphere and intersected analytically with the flat planes and the dome outside it, so grazing floor rays converge.

Lighting per pixel, in linear RGB:

* sun: colour · max(n·l, 0) · visibility, where visibility is a soft shadow traced through the same distance field
  toward the sun (so every object, the walls and the height field cast shadows);
* sky: order-2 spherical-harmonic irradiance (Ramamoorthi & Hanrahan) times ambient occlusion from the distance field;
* point lights: colour · max(n·l, 0) · visibility / r²;
* specular (optional per object): Blinn-Phong highlights of the sun and point lights, a separate layer.

The camera's exposure and white-balance gains are folded into the shading and specular layers, so
``image_linear = albedo · shading + specular`` holds exactly; the camera image is that, plus sensor noise, through
the sRGB tone curve and optionally JPEG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..imaging import linear_to_srgb
from . import geometry as g
from .scene import BOUND_RADIUS, DOME_RADIUS, SCENE_CENTER, WALL_HEIGHT, Scene, SceneObject, Texture

_SHAPES = {
    "sphere": g.sd_sphere, "ellipsoid": g.sd_ellipsoid, "box": g.sd_box, "rounded_box": g.sd_round_box,
    "cylinder": g.sd_cylinder, "capsule": g.sd_capsule, "cone": g.sd_cone, "torus": g.sd_torus,
    "octahedron": g.sd_octahedron, "blob": g.sd_sphere, "twisted_box": g.sd_box, "rock": g.sd_round_box,
    "panel": g.sd_box,
}

# Order-2 real SH basis constants and the clamped-cosine convolution factors A_l = π, 2π/3, π/4.
_SH_C = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)
_SH_A = (math.pi, 2 * math.pi / 3, math.pi / 4)


@dataclass(frozen=True)
class RenderOptions:
    steps: int = 72  # sphere-tracing steps for camera rays
    shadow_steps: int = 36
    shadow_softness: float = 14.0  # larger = harder shadow edges
    shadows: bool = True
    ambient_occlusion: bool = True
    specular: bool = True
    camera_effects: bool = True  # noise and JPEG on the camera image


def sh_irradiance(normals: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Irradiance from order-2 SH radiance coefficients (9, 3) for unit normals (N, 3) → (N, 3).

    Basis order: Y00, Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20 (3z²−1), Y21 (xz), Y22 (x²−y²);
    here y is the world's up axis.
    """
    x, y, z = normals[:, 0], normals[:, 1], normals[:, 2]
    c0, c1, c2, c3, c4 = _SH_C
    a0, a1, a2 = _SH_A
    basis = torch.stack([
        torch.full_like(x, c0 * a0), c1 * a1 * y, c1 * a1 * z, c1 * a1 * x,
        c2 * a2 * x * y, c2 * a2 * y * z, c3 * a2 * (3 * z * z - 1), c2 * a2 * x * z, c4 * a2 * (x * x - y * y),
    ], -1)
    return basis @ coefficients


class SceneField:
    """The scene's distance field and materials on one device. Component 0 is the dome, 1 the floor, 2 the walls
    (or absent), then one per object; ``labels[c]`` is the semantic class of component c."""

    def __init__(self, scene: Scene, device: torch.device):
        self.scene, self.device = scene, device
        to = lambda t: t.to(device=device, dtype=torch.float32)  # noqa: E731
        self.center = torch.tensor(SCENE_CENTER, device=device)
        self.objects = []
        for obj in scene.objects:
            name = _class_name(obj.label)
            lipschitz = 1.0 + abs(obj.twist) * float(obj.size.max()) + obj.displacement * float(
                obj.waves.norm(dim=1).mean()) if obj.waves is not None else 1.0
            self.objects.append(dict(obj=obj, fn=_SHAPES[name], center=to(obj.center), rotation=to(obj.rotation),
                                     size=to(obj.size), waves=to(obj.waves), phases=to(obj.phases),
                                     step=1.0 / lipschitz))
        self.height_waves, self.height_phases = to(scene.height_waves), to(scene.height_phases)
        self.height_amps = torch.full((scene.height_waves.shape[0],), 1.0 / math.sqrt(scene.height_waves.shape[0]),
                                      device=device)
        self.floor_step = 1.0 / (1.0 + scene.height_amplitude * float(scene.height_waves.norm(dim=1).sum()))
        tops = [float(o.center[1] + o.size.max() * 1.8) for o in scene.objects]
        self.ceiling = max(tops + [scene.height_amplitude + 0.1] + ([WALL_HEIGHT] if scene.room else []))
        self.labels = torch.tensor([0, 1, 2] + [o.label for o in scene.objects], device=device)

    # -- distances --------------------------------------------------------------------------------------------
    def floor_height(self, p: torch.Tensor) -> torch.Tensor:
        if self.scene.height_amplitude == 0.0:
            return torch.zeros_like(p[:, 0])
        xz = p[:, [0, 2]]
        window = g.smooth_window(g.length(xz), 0.55 * BOUND_RADIUS, 0.8 * BOUND_RADIUS)
        return self.scene.height_amplitude * window * g.fourier_noise(xz, self.height_waves, self.height_phases,
                                                                       self.height_amps)

    def object_distance(self, entry: dict, p: torch.Tensor) -> torch.Tensor:
        obj: SceneObject = entry["obj"]
        q = (p - entry["center"]) @ entry["rotation"]
        if obj.twist:
            q = g.twist(q, obj.twist)
        d = entry["fn"](q, entry["size"])
        if obj.displacement:
            amps = torch.full((entry["waves"].shape[0],), obj.displacement / math.sqrt(entry["waves"].shape[0]),
                              device=p.device)
            d = d + g.fourier_noise(q, entry["waves"], entry["phases"], amps)
        return d * entry["step"]

    def components(self, p: torch.Tensor, dome: bool = True) -> torch.Tensor:
        """(N, C) distances to each component; the dome is +inf when ``dome`` is False."""
        far = torch.full_like(p[:, 0], 1e6)
        cols = [DOME_RADIUS - g.length(p - self.center) if dome else far,
                (p[:, 1] - self.floor_height(p)) * self.floor_step]
        if self.scene.room:
            w = self.scene.wall_distance
            cols.append(torch.maximum(torch.minimum(p[:, 0] + w, p[:, 2] + w), p[:, 1] - WALL_HEIGHT))
        else:
            cols.append(far)
        cols.extend(self.object_distance(e, p) for e in self.objects)
        return torch.stack(cols, -1)

    def distance(self, p: torch.Tensor, dome: bool = False) -> torch.Tensor:
        """The scene's distance (a running minimum: cheaper than stacking every component)."""
        d = (p[:, 1] - self.floor_height(p)) * self.floor_step
        if self.scene.room:
            w = self.scene.wall_distance
            d = torch.minimum(d, torch.maximum(torch.minimum(p[:, 0] + w, p[:, 2] + w), p[:, 1] - WALL_HEIGHT))
        for entry in self.objects:
            d = torch.minimum(d, self.object_distance(entry, p))
        if dome:
            d = torch.minimum(d, DOME_RADIUS - g.length(p - self.center))
        return d

    def normals(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = (1e-3 * (1.0 + 0.02 * t))[:, None]
        offsets = torch.eye(3, device=p.device)
        grad = torch.stack([
            self.distance(p + eps * offsets[i], dome=True) - self.distance(p - eps * offsets[i], dome=True)
            for i in range(3)], -1)
        return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    # -- tracing ----------------------------------------------------------------------------------------------
    def trace(self, origin: torch.Tensor, direction: torch.Tensor, steps: int) -> torch.Tensor:
        """Distance along each ray to the first surface (sphere tracing inside the bound, analytic outside)."""
        oc = origin - self.center
        b = (oc * direction).sum(-1)
        c = (oc * oc).sum(-1) - BOUND_RADIUS ** 2
        disc = b * b - c
        root = disc.clamp(min=0).sqrt()
        t_enter, t_exit = (-b - root).clamp(min=0.0), -b + root
        inside_bound = disc > 0
        t = t_enter.clone()
        h = torch.ones_like(t)
        # Only rays still marching are evaluated: converged or escaped rays drop out of the active index set.
        active = torch.nonzero(inside_bound).squeeze(1)
        for _ in range(steps):
            if active.numel() == 0:
                break
            t_a = t[active]
            h_a = self.distance(origin[active] + t_a[:, None] * direction[active])
            t_a = t_a + 0.9 * h_a
            h[active], t[active] = h_a, t_a
            active = active[(h_a.abs() > 5e-4 * (1 + 0.1 * t_a)) & (t_a <= t_exit[active])]
        marched = inside_bound & (h.abs() < 2e-3 * (1 + 0.1 * t)) & (t <= t_exit + 1e-3) & (t > 0)
        t_flat = self._flat_hits(origin, direction)
        return torch.where(marched, torch.minimum(t, t_flat), t_flat)

    def _flat_hits(self, origin: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        inf = torch.full_like(origin[:, 0], float("inf"))
        candidates = []
        planes = [(1, 0.0)]
        if self.scene.room:
            planes += [(0, -self.scene.wall_distance), (2, -self.scene.wall_distance)]
        for axis, offset in planes:
            d = direction[:, axis]
            t = (offset - origin[:, axis]) / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
            hit = origin + t[:, None] * direction
            ok = (t > 1e-4) & (d < 0)
            for other, other_offset in planes:  # a plane only counts on the scene's side of the others
                if other != axis:
                    ok = ok & (hit[:, other] >= other_offset - 1e-4)
            if axis != 1:
                ok = ok & (hit[:, 1] <= WALL_HEIGHT)
            # Inside the bounding sphere the floor may be displaced; the tracer owns that region.
            if axis == 1 and self.scene.height_amplitude:
                ok = ok & (g.length(hit - self.center) > BOUND_RADIUS - 1e-3)
            candidates.append(torch.where(ok, t, inf))
        oc = origin - self.center
        b = (oc * direction).sum(-1)
        c = (oc * oc).sum(-1) - DOME_RADIUS ** 2
        candidates.append(-b + (b * b - c).clamp(min=0).sqrt())
        return torch.stack(candidates, -1).min(-1).values

    def soft_shadow(self, p: torch.Tensor, direction: torch.Tensor, t_max: torch.Tensor, steps: int,
                    softness: float, needed: torch.Tensor | None = None) -> torch.Tensor:
        """Fraction of light reaching p from ``direction`` (1 lit, 0 in shadow), with penumbrae.

        Only ``needed`` points are traced (the others return 1); a ray stops once it is fully blocked or has passed
        ``t_max``, which is what keeps the cost near the number of pixels in penumbra rather than steps × pixels.
        """
        t = torch.full_like(p[:, 0], 0.02)
        res = torch.ones_like(t)
        active = torch.arange(p.shape[0], device=p.device) if needed is None else torch.nonzero(needed).squeeze(1)
        for _ in range(steps):
            if active.numel() == 0:
                break
            t_a = t[active]
            h = self.distance(p[active] + t_a[:, None] * direction[active])
            r = torch.minimum(res[active], softness * h / t_a)
            t_a = t_a + h.clamp(min=0.015)
            res[active], t[active] = r, t_a
            # Done when fully blocked, past the light, or rising above everything in the scene.
            rising_above = (direction[active, 1] > 0) & (p[active, 1] + t_a * direction[active, 1] > self.ceiling)
            active = active[(t_a < t_max[active]) & (r > 0.002) & ~rising_above]
        res = res.clamp(0.0, 1.0)
        return res * res * (3 - 2 * res)

    def ambient_occlusion(self, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        occlusion = torch.zeros_like(p[:, 0])
        for i in range(1, 6):
            h = 0.02 + 0.14 * i
            occlusion = occlusion + (h - self.distance(p + h * n)).clamp(min=0) * (0.7 ** i)
        return (1.0 - 1.6 * occlusion).clamp(0.0, 1.0)


def _class_name(label: int) -> str:
    from .scene import CLASS_NAMES

    return CLASS_NAMES[label]


# --- albedo ------------------------------------------------------------------------------------------------------

def texture_albedo(tex: Texture, coords: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Evaluate a solid texture at texture-space points (M, 3) with local normals (M, 3) → linear albedo (M, 3)."""
    device = coords.device
    colours = tex.colours.to(device)
    direction = tex.direction.to(device)
    along = coords @ direction
    if tex.kind == "constant":
        return colours[0].expand(coords.shape[0], 3).clone()
    if tex.kind == "regions":
        sites = tex.sites.to(device)
        nearest = torch.cdist(coords, sites).argmin(-1)
        return colours[nearest % colours.shape[0]]
    if tex.kind == "gradient":
        w = torch.sigmoid(along * tex.frequency * 0.4)[:, None]
        return colours[0] * (1 - w) + colours[1] * w
    if tex.kind == "stripes":
        index = torch.floor(along * tex.frequency).long() % 3
        return colours[index]
    if tex.kind == "checks":
        cells = torch.floor(coords * tex.frequency * 0.5).long().sum(-1) % 2
        return colours[cells]
    if tex.kind == "noise":
        amps = torch.full((tex.waves.shape[0],), 1.0 / math.sqrt(tex.waves.shape[0]), device=device)
        v = g.fourier_noise(coords, tex.waves.to(device), tex.phases.to(device), amps)
        w = torch.sigmoid(v * tex.frequency)[:, None]
        return colours[0] * (1 - w) + colours[2] * w
    if tex.kind == "photo":
        # Box mapping: project along the dominant axis of the normal, tile the photo.
        axis = normals.abs().argmax(-1)
        u = torch.where(axis == 0, coords[:, 2], coords[:, 0])
        v = torch.where(axis == 1, coords[:, 2], coords[:, 1])
        scale = 0.12 * tex.frequency
        grid = torch.stack([(u * scale) % 2 - 1, (v * scale) % 2 - 1], -1)[None, None]
        photo = tex.photo.to(device)[None]
        sampled = torch.nn.functional.grid_sample(photo, grid, mode="bilinear", align_corners=False)
        return sampled[0, :, 0].T
    raise ValueError(f"unknown texture kind {tex.kind!r}")


def _albedo(field: SceneField, p: torch.Tensor, n: torch.Tensor, component: torch.Tensor) -> torch.Tensor:
    scene = field.scene
    albedo = torch.empty_like(p)
    albedo[component == 0] = scene.sky_albedo.to(p.device)
    floor = component == 1
    if floor.any():
        q = p[floor]
        coords = torch.stack([q[:, 0], torch.zeros_like(q[:, 0]), q[:, 2]], -1) * 0.6
        albedo[floor] = texture_albedo(scene.floor_texture, coords, torch.tensor([[0.0, 1.0, 0.0]], device=p.device)
                                       .expand_as(q))
    wall = component == 2
    if wall.any():
        q = p[wall]
        on_x = (q[:, 0] + scene.wall_distance).abs() < (q[:, 2] + scene.wall_distance).abs()
        coords = torch.stack([torch.where(on_x, q[:, 2], q[:, 0]), q[:, 1], torch.zeros_like(q[:, 0])], -1) * 0.6
        albedo[wall] = texture_albedo(scene.wall_texture, coords,
                                      torch.tensor([[0.0, 0.0, 1.0]], device=p.device).expand_as(q))
    for index, entry in enumerate(field.objects):
        sel = component == index + 3
        if sel.any():
            obj: SceneObject = entry["obj"]
            local = (p[sel] - entry["center"]) @ entry["rotation"]
            local_n = n[sel] @ entry["rotation"]
            coords = local / entry["size"].max().clamp(min=0.1)
            albedo[sel] = texture_albedo(obj.texture, coords, local_n)
    return albedo.clamp(0.0, 1.0)


# --- the renderer ----------------------------------------------------------------------------------------------------

def _camera_rays(scene: Scene, size: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    position = scene.camera_position.to(device)
    forward = scene.camera_target.to(device) - position
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0], device=device))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    half = math.tan(math.radians(scene.fov_degrees) / 2)
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    ys, xs = torch.meshgrid(-coords * half, coords * half, indexing="ij")
    directions = forward + xs.reshape(-1, 1) * right + ys.reshape(-1, 1) * up
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return position.expand_as(directions), directions, torch.stack([right, up, forward])


def render_scene(scene: Scene, size: int = 256, device: torch.device | str = "cpu",
                 options: RenderOptions = RenderOptions()) -> dict[str, torch.Tensor]:
    """Render every layer of ``scene`` at ``size``×``size``.

    Returns CHW float32 tensors on ``device`` (K = number of lightings):
    ``image`` (K, 3, H, W) sRGB camera image in [0, 1]; ``image_linear``, ``shading``, ``specular`` (K, 3, H, W)
    linear; ``sun_visibility`` (K, 1, H, W) cast-shadow visibility of the sun (1 where the surface faces away, as
    no shadow ray is traced there); ``albedo`` (3, H, W) linear; ``normals`` (3, H, W) unit, camera space
    (x right, y up, z toward the camera); ``depth`` (1, H, W) distance along the view axis; ``mask`` (1, H, W)
    1 on objects; ``labels`` (H, W) int64 class indices into ``CLASS_NAMES``.
    """
    device = torch.device(device)
    with torch.no_grad():
        field = SceneField(scene, device)
        origin, direction, basis = _camera_rays(scene, size, device)
        t = field.trace(origin, direction, options.steps)
        p = origin + t[:, None] * direction
        normals = field.normals(p, t)
        component = field.components(p, dome=True).abs().argmin(-1)
        labels = field.labels[component]
        albedo = _albedo(field, p, normals, component)
        background = component == 0
        surface = p + normals * 4e-3
        ao = field.ambient_occlusion(surface, normals) if options.ambient_occlusion else torch.ones_like(t)

        ks = torch.zeros_like(t)
        shininess = torch.ones_like(t)
        for index, entry in enumerate(field.objects):
            sel = component == index + 3
            ks[sel] = entry["obj"].specular
            shininess[sel] = entry["obj"].shininess
        view = -direction

        layers: dict[str, list[torch.Tensor]] = {k: [] for k in ("shading", "specular", "image_linear", "image",
                                                                  "sun_visibility")}
        for light in scene.lightings:
            sun_dir = light.sun_direction.to(device)
            sun_colour = light.sun_colour.to(device)
            far = torch.full_like(t, 25.0)
            cos_sun = (normals @ sun_dir).clamp(min=0)
            visibility = field.soft_shadow(surface, sun_dir.expand_as(p), far, options.shadow_steps,
                                           options.shadow_softness, (cos_sun > 0) & ~background) \
                if options.shadows else torch.ones_like(t)
            shading = cos_sun[:, None] * visibility[:, None] * sun_colour
            shading = shading + sh_irradiance(normals, light.sky_sh.to(device)).clamp(min=0) * ao[:, None]
            specular = torch.zeros_like(shading)
            if options.specular:
                half_vec = sun_dir + view
                half_vec = half_vec / half_vec.norm(dim=-1, keepdim=True)
                lobe = (normals * half_vec).sum(-1).clamp(min=0) ** shininess * (cos_sun > 0)
                specular = specular + (ks * lobe * visibility)[:, None] * sun_colour
            for pos, colour in zip(light.point_positions.to(device), light.point_colours.to(device)):
                to_light = pos - p
                dist = to_light.norm(dim=-1).clamp(min=0.2)
                l_dir = to_light / dist[:, None]
                cos_l = (normals * l_dir).sum(-1).clamp(min=0)
                vis = field.soft_shadow(surface, l_dir, dist - 0.05, options.shadow_steps,
                                        options.shadow_softness, (cos_l > 0) & ~background) \
                    if options.shadows else torch.ones_like(t)
                falloff = 1.0 / (dist * dist)
                shading = shading + (cos_l * vis * falloff)[:, None] * colour
                if options.specular:
                    half_vec = l_dir + view
                    half_vec = half_vec / half_vec.norm(dim=-1, keepdim=True)
                    lobe = (normals * half_vec).sum(-1).clamp(min=0) ** shininess * (cos_l > 0)
                    specular = specular + (ks * lobe * vis * falloff)[:, None] * colour
            # The background is a distant sky: uniform radiance, no shadows, no highlights.
            sky_level = sh_irradiance(torch.tensor([[0.0, 1.0, 0.0]], device=device), light.sky_sh.to(device))
            shading[background] = sky_level.clamp(min=0.05) * 1.2
            specular[background] = 0.0
            # Auto-exposure puts a high percentile of the image at the lighting's target, then white balance.
            raw = albedo * shading + specular
            luminance = raw @ torch.tensor([0.2126, 0.7152, 0.0722], device=device)
            reference = torch.quantile(luminance[::7], 0.97).clamp(min=1e-4)
            gain = (light.exposure_target / reference) * light.white_balance.to(device)
            shading, specular = shading * gain, specular * gain
            linear = albedo * shading + specular
            layers["shading"].append(shading)
            layers["specular"].append(specular)
            layers["image_linear"].append(linear)
            layers["sun_visibility"].append(visibility[:, None])
            layers["image"].append(_camera(linear, light, scene.seed, options, size))

        def chw(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(size, size, -1).permute(2, 0, 1).contiguous()

        camera_normals = normals @ basis.T * torch.tensor([1.0, 1.0, -1.0], device=device)
        depth = t * (direction @ basis[2])
        out = {k: torch.stack([chw(x) for x in v]) for k, v in layers.items()}
        out.update(albedo=chw(albedo), normals=chw(camera_normals), depth=chw(depth[:, None]),
                   mask=chw((labels >= 3).float()[:, None]), labels=labels.reshape(size, size))
        return out


def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    return linear_to_srgb(x.clamp(0.0, 1.0))


def _camera(linear: torch.Tensor, light, seed: int, options: RenderOptions, size: int) -> torch.Tensor:
    """Sensor noise (signal-dependent + read noise) in linear space, sRGB tone curve, 8-bit, optional JPEG."""
    x = linear
    if options.camera_effects and (light.noise[0] or light.noise[1]):
        gen = torch.Generator(device="cpu").manual_seed(int(seed) * 7919 + int(light.jpeg_quality) + 17)
        noise = torch.randn(x.shape, generator=gen).to(x.device)
        x = x + noise * torch.sqrt(light.noise[0] ** 2 * x.clamp(min=0) + light.noise[1] ** 2)
    image = srgb_encode(x)
    image = torch.round(image * 255) / 255
    if options.camera_effects and light.jpeg_quality:
        array = (image.reshape(size, size, 3).cpu().numpy() * 255).round().astype(np.uint8)
        ok, data = cv2.imencode(".jpg", array[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(light.jpeg_quality)])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
        image = torch.from_numpy(decoded.reshape(-1, 3).copy()).to(linear.device)
    return image
