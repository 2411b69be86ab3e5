"""Training recipe for SfSNet (``engine.methods.sfsnet``) on synthetic faces from the Surrey Face Model.

Data: faces rendered on the fly by :class:`engine.synth.faces.FaceRenderer` on the training device
(``--data synthetic``; the GPU when there is one), or a folder written by ``python -m engine.synth.faces``. Held-out
validation faces use other seeds (from 10,000,000), hence other identities, expressions, poses and lights.

Inputs get camera-like degradations (blur, noise; :func:`degrade`), the targets none. ``cast_shadows`` (0 by
default; this project's addition, not the paper's) is the share of training faces whose image also has the cast
shadows of its directional lights (nose, brows, eye sockets; :meth:`FaceRenderer._cast_shadow_visibility`), while
the albedo, normal, light and reconstruction targets stay those of the unshadowed face: SH shading cannot hold a cast
shadow, so the albedo branch learns to leave it out rather than paint it in. ``hard_shadows`` (0 by default) is the
share of those shadowed faces relit by one strong side light over a weak ambient with sharp edges
(:func:`engine.synth.faces.hard_side_light`: deep shadows like a window or a lamp give). ``photo_backgrounds`` and
``albedo_detail`` (0 by default; need ``photo_dir``, one or more folders separated by commas) put that share of the
faces in front of photo crops and give that share photo high-pass detail in the skin albedo (targets included:
:class:`engine.synth.faces.FaceRenderer`). ``init`` starts from exported weights (fine-tuning).
Losses (methods.md §4, inside the face mask, as means rather than Caffe's sums): normal L1 (on unit normals),
albedo L1, reconstruction L1 (albedo · SH shading vs the diffuse image, without the highlight) and the L2 of the 27 SH coefficients, weighted
``w_normal``, ``w_albedo``, ``w_rec``, ``w_light``. Adam; constant learning rate, then a linear decay over the last
40 % of the run, measured in steps or, with ``time_budget`` (seconds), in training time, whichever is further.
Validation: mean angular error of the normals and % of pixels under 20°/25°/30° (``engine.metrics``), albedo L1 and
SH L2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..methods.sfsnet import SfSNet, predict
from .recipe import Phase, TrainingRecipe, register_recipe

VAL_SEED = 10_000_000


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.expand_as(pred)
    return ((pred - target).abs() * m).sum() / m.sum().clamp(min=1.0)


def degrade(image: torch.Tensor, gen: torch.Generator, blur: float, noise: float) -> torch.Tensor:
    """Camera-like degradations of the input only (targets unchanged): Gaussian blur with σ up to ``blur`` pixels on
    half the images, then Gaussian noise with σ up to ``noise``. Draws from ``gen`` (on the CPU) for determinism."""
    n = image.shape[0]
    sigma = torch.rand(n, generator=gen) * blur * (torch.rand(n, generator=gen) < 0.5)
    x = torch.arange(-2, 3, dtype=torch.float32)
    k1 = torch.exp(-x[None] ** 2 / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    kernel = (k1[:, :, None] * k1[:, None, :]).to(image.device, image.dtype)  # (N, 5, 5)
    weight = kernel.repeat_interleave(3, 0)[:, None]  # (3N, 1, 5, 5)
    flat = image.reshape(1, 3 * n, *image.shape[-2:])
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (2, 2, 2, 2), mode="replicate"), weight,
                                         groups=3 * n).reshape_as(image)
    sd = (torch.rand(n, 1, 1, 1, generator=gen) * noise).to(image.device, image.dtype)
    grain = torch.randn(image.shape, generator=gen).to(image.device, image.dtype)
    return (blurred + sd * grain).clamp(0, 1)


class _Rendered(torch.utils.data.Dataset):
    """Faces rendered for fixed seeds (validation), kept on the CPU."""

    def __init__(self, seeds, size: int, device):
        from ..synth.faces import FaceRenderer

        renderer = FaceRenderer(size=size, device=device)
        batches = [renderer.render(list(seeds)[i:i + 16]) for i in range(0, len(seeds), 16)]
        self.data = {k: torch.cat([b[k].cpu() for b in batches]) for k in batches[0]}

    def __len__(self) -> int:
        return len(self.data["image"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.data.items()}


class RenderStream:
    """Batch ``step`` = faces with seeds ``base + (step·accumulate + micro)·batch + i``, rendered on the device."""

    def __init__(self, renderer, batch_size: int, base: int):
        self.renderer, self.batch_size, self.base = renderer, batch_size, base

    def batch(self, step: int, micro: int = 0, accumulate: int = 1) -> dict[str, torch.Tensor]:
        start = self.base + (step * accumulate + micro) * self.batch_size
        return self.renderer.render(range(start, start + self.batch_size))


class SfSNetRecipe(TrainingRecipe):
    method = "sfsnet"
    description = ("SfSNet (Sengupta et al. 2018: stem, two 5-block residual branches, SH light head) trained on "
                   "synthetic faces rendered from the Surrey Face Model by engine.synth.faces, with normal, albedo, "
                   "reconstruction L1 and SH L2 losses.")
    defaults = {
        "lr": 1e-3, "batch_size": 16, "accumulate": 1, "val_every": 500, "checkpoint_every": 500,
        "weight_decay": 0.0, "width": 0.5, "size": 128, "val_faces": 64, "render_device": "auto",
        "w_normal": 1.0, "w_albedo": 1.0, "w_rec": 0.5, "w_light": 0.1, "time_budget": 0.0, "export_half": True,
        "blur": 1.2, "noise": 0.02, "cast_shadows": 0.0, "hard_shadows": 0.0, "init": "",
        "photo_dir": "", "photo_backgrounds": 0.0, "albedo_detail": 0.0,
    }
    metric_higher_is_better = {"normal_mean_deg": False, "normal_under20": True, "normal_under25": True,
                               "normal_under30": True, "albedo_l1": False, "light_l2": False}

    def build_model(self, config: Mapping[str, Any]) -> SfSNet:
        model = SfSNet(width=float(config["width"]))
        if config.get("init"):  # fine-tune from exported weights (same width)
            from .intrinseg_recipe import load_init

            load_init(model, str(config["init"]))
        return model

    def _device(self, config):
        from ..device import resolve_device

        return resolve_device(str(config["render_device"]))

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        size = int(config["size"])
        val = _Rendered(range(VAL_SEED, VAL_SEED + int(config["val_faces"])), size, self._device(config))
        if data_dir is None:
            return None, val
        from ..synth.faces import FaceFolder

        train = FaceFolder(data_dir)
        self.data_note = f"{len(train)} faces from `{train.manifest.get('command', data_dir)}`"
        return train, val

    def batch_stream(self, train, seed: int, config: Mapping[str, Any]):
        if train is None:
            from ..synth.faces import FaceRenderer

            shadows, hard = float(config.get("cast_shadows", 0.0)), float(config.get("hard_shadows", 0.0))
            backgrounds = float(config.get("photo_backgrounds", 0.0))
            detail = float(config.get("albedo_detail", 0.0))
            photos = None
            if backgrounds > 0 or detail > 0:
                from ..synth.faces import load_face_photos

                if not config.get("photo_dir"):
                    raise ValueError("photo_backgrounds and albedo_detail need --set photo_dir=DIR (photographs)")
                photos = [p for d in str(config["photo_dir"]).split(",") for p in load_face_photos(d.strip())]
            renderer = FaceRenderer(size=int(config["size"]), device=self._device(config), cast_shadows=shadows,
                                    hard_shadows=hard, photos=photos, photo_backgrounds=backgrounds,
                                    albedo_detail=detail)
            self.data_note = ("rendered on the fly (engine.synth.faces), seeds from seed·10⁸"
                              + (f"; {shadows:.0%} with cast shadows in the image" if shadows > 0 else "")
                              + (f", {hard:.0%} of those hard (one side light, weak ambient)"
                                 if shadows > 0 and hard > 0 else "")
                              + (f"; {backgrounds:.0%} in front of photo crops" if backgrounds > 0 else "")
                              + (f"; {detail:.0%} with photo high-pass detail in the skin albedo" if detail > 0 else "")
                              + (f" ({len(photos)} photographs from {config['photo_dir']})" if photos else ""))
            return RenderStream(renderer, int(config["batch_size"]), seed * 100_000_000)
        return super().batch_stream(train, seed, config)

    def begin(self, config: Mapping[str, Any]) -> None:
        super().begin(config)
        self._start = time.perf_counter()
        self._degrade_gen = torch.Generator().manual_seed(12345)

    def phases(self, config):
        return [Phase("main")]

    def lr_factor(self, step: int, steps: int, config, phase) -> float:
        progress = step / max(1, steps)
        budget = float(config.get("time_budget", 0.0))
        if budget > 0:
            progress = max(progress, (time.perf_counter() - self._start) / budget)
        return 1.0 if progress < 0.6 else max(0.03, (1.0 - progress) / 0.4)

    def loss(self, model, batch, phase, optimizer):
        c = {**self.defaults, **self.run_config}
        image = batch["image"]
        if float(c["blur"]) > 0 or float(c["noise"]) > 0:
            image = degrade(image, self._degrade_gen, float(c["blur"]), float(c["noise"]))
        out = predict(model, image)
        mask = batch["mask"]
        terms = {
            "normal": masked_l1(out["normals"], batch["normals"], mask),
            "albedo": masked_l1(out["albedo"], batch["albedo"], mask),
            "rec": masked_l1(out["reconstruction"], batch.get("diffuse", batch["image"]), mask),
            "light": ((out["sh"] - batch["sh"]) ** 2).mean(),
        }
        total = (float(c["w_normal"]) * terms["normal"] + float(c["w_albedo"]) * terms["albedo"]
                 + float(c["w_rec"]) * terms["rec"] + float(c["w_light"]) * terms["light"])
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def validate(self, model, val, device, config) -> dict[str, float]:
        return evaluate(model, val, device)

    def export(self, model, config):
        half = bool(config.get("export_half", True))
        state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
                 for k, v in model.state_dict().items()}
        params = sum(p.numel() for p in model.parameters())
        return state, {"architecture": f"SfSNet(width={float(config['width'])}), {params:,} parameters"
                                       + (", stored as float16" if half else ""),
                       "training faces": getattr(self, "data_note", "rendered on the fly"),
                       **({"initialised from": str(config["init"])} if config.get("init") else {}),
                       "validation data": f"{int(config['val_faces'])} held-out rendered faces (seeds from "
                                          f"{VAL_SEED:,}: other identities, poses, lights)",
                       "input": "128×128 face crop, RGB → BGR, [0, 1]",
                       "outputs": "normals (x right, y up, z toward the camera), albedo, 27 SH coefficients"}

    def data_licence(self, data_dir: Path | None) -> str:
        from ..synth.faces import LICENCE

        return LICENCE


def evaluate(model, dataset, device, batch_size: int = 16) -> dict[str, float]:
    """Normal angular error (mean over all masked pixels, % under 20/25/30°), albedo L1, SH L2 on a face dataset."""
    from ..metrics.angular import angle_deg

    angles, albedo_err, light_err = [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        with torch.no_grad():
            out = predict(model, batch["image"])
        mask = batch["mask"][:, 0].cpu().numpy() > 0.5
        pred = out["normals"].float().permute(0, 2, 3, 1).cpu().numpy()
        truth = batch["normals"].float().permute(0, 2, 3, 1).cpu().numpy()
        angles.append(angle_deg(truth, pred)[mask])
        albedo_err.append(float(masked_l1(out["albedo"].float(), batch["albedo"], batch["mask"])))
        light_err.append(float(((out["sh"].float() - batch["sh"]) ** 2).mean()))
    a = np.concatenate(angles)
    return {"normal_mean_deg": float(a.mean()), "normal_under20": float(100 * np.mean(a < 20)),
            "normal_under25": float(100 * np.mean(a < 25)), "normal_under30": float(100 * np.mean(a < 30)),
            "albedo_l1": float(np.mean(albedo_err)), "light_l2": float(np.mean(light_err))}


register_recipe(SfSNetRecipe())
