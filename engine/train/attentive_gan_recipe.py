"""Training Attentive GAN (``engine.methods.attentive_gan``): D then G each step, the paper's losses.

Data (``--data DIR``):

* a **pairs folder** in the Raindrop layout (``data/N_rain.png`` + ``gt/N_clean.png``, or its ``train/`` split):
  random crops, flips; the drop mask M is computed from the pair (|rainy − clean| > 30/255 in any channel);
* any other folder of **photographs**: drops are rendered on the fly over them by :mod:`engine.synth.raindrops`
  (pair ``i`` is a pure function of seed and ``i``). Rendering is the costly part of a step, so each rendered
  ``2·crop`` window feeds ``crops_per_render`` random crops, a few threads render (``workers``) and the next batch
  is rendered while the current step trains; batches do not depend on the thread count. Backgrounds whose file stem hashes into the validation bucket
  (CRC-32 of the stem mod 10 == 0, about 10 %) are never trained on; validation renders fixed seeds over them.
  ``drops`` names the drop regime (:data:`engine.synth.raindrops.DROP_PRESETS`): ``heavy`` (the default, a thoroughly
  wet pane, closer to real raindrop photos) or ``light`` (a sparse sprinkling, what the first weights were trained on).

Losses (methods.md §5):

* generator: ``w_gan·L_GAN + L_ATT + L_M + w_perceptual·L_P`` with ``L_ATT = Σ_t 0.8^(N−t)·MSE(A_t, M)``,
  ``L_M = 0.6/0.8/1.0 × MSE`` at ¼, ½ and full scale (targets average-pooled), ``L_GAN`` the non-saturating
  ``BCE(D(G(I)), real)``, ``w_gan`` = 0.01. ``L_P`` (MSE of VGG16 features, relu1_2/relu2_2/relu3_3) needs
  ImageNet VGG16 weights that are not reachable here: it is **off** unless ``--set vgg_weights=FILE`` names a
  torchvision-layout ``vgg16`` state dict (``features.N.weight``) or safetensors file;
* discriminator: ``BCE(D(clean), real) + BCE(D(G(I)), fake) + 0.05·[MSE(D_map(fake), A_N) + MSE(D_map(clean), 0)]``
  (sigmoid folded into BCE-with-logits, safe under float16 autocast).

Validation reports PSNR/SSIM of the output and of the input (the identity baseline) against the clean image, on RGB
and on Y (BT.601 studio-swing luma), data range 1, no crop, and ``dry_psnr``: the output for the *clean* image against
itself (a photo without drops must come back unchanged). ``python -m engine.train.attentive_gan_recipe --evaluate
WEIGHTS --backgrounds DIR… [--drops heavy|light]`` measures the same on whole held-out images.
"""

from __future__ import annotations

import argparse
import json
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..methods.attentive_gan import ITERATIONS, AttentiveGAN, meta_tensors
from ..synth.raindrops import (MASK_THRESHOLD, DROP_PRESETS, DropOptions, drop_preset, list_backgrounds,
                               read_background, render_pair)
from .data import BatchStream, collate
from .recipe import Phase, TrainingRecipe, register_recipe

VAL_SEED = 1_000_000


def is_validation_background(path: str | Path) -> bool:
    """The held-out backgrounds: CRC-32 of the file stem ≡ 0 mod 10 (stable across folders and file formats)."""
    return zlib.crc32(Path(path).stem.encode()) % 10 == 0


def drop_mask(rainy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The paper's M: 1 where |rainy − clean| > 30/255 in any channel, (N, 1, H, W)."""
    return ((rainy - clean).abs() > MASK_THRESHOLD).any(dim=1, keepdim=True).to(rainy.dtype)


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def is_pairs_folder(folder: Path) -> bool:
    folder = Path(folder)
    return ((folder / "data").is_dir() and (folder / "gt").is_dir()) or (folder / "train" / "data").is_dir()


class SyntheticRaindrops(torch.utils.data.Dataset):
    """Item ``i``: drops rendered over one of ``backgrounds`` (uint8 arrays) with seed ``base_seed + i``, centre
    ``crop`` of a ``2·crop`` window; ``image`` (rainy), ``target`` (clean), ``mask`` as CHW float32."""

    def __init__(self, backgrounds: list[np.ndarray], length: int, crop: int | None, base_seed: int,
                 options: DropOptions = DropOptions()):
        self.backgrounds, self.length, self.crop = backgrounds, length, crop
        self.base_seed, self.options = base_seed, options

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        float_bgs = _FloatView(self.backgrounds)
        s = render_pair(float_bgs, self.base_seed + int(index), self.crop, self.options)
        crop = s["rainy"].shape[0] // 4 * 4, s["rainy"].shape[1] // 4 * 4
        return {"image": _chw(s["rainy"][:crop[0], :crop[1]]), "target": _chw(s["clean"][:crop[0], :crop[1]]),
                "mask": _chw(s["mask"][:crop[0], :crop[1]])}


    def group(self, index: int, count: int) -> list[dict[str, torch.Tensor]]:
        """``count`` random crops (with flips) of one rendered ``2·crop`` window: the renderer is the costly part of
        a training step, so each rendering feeds several samples. Pure function of (base seed, index)."""
        crop = self.crop
        rng = np.random.default_rng([self.base_seed, int(index), 3])
        s = render_pair(_FloatView(self.backgrounds), self.base_seed + int(index), None if crop is None else
                        2 * crop, self.options, context=1)
        h, w = s["rainy"].shape[:2]
        out = []
        for _ in range(count):
            top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            flip = rng.uniform() < 0.5
            item = {}
            for key, name in (("rainy", "image"), ("clean", "target"), ("mask", "mask")):
                a = s[key][top:top + crop, left:left + crop]
                item[name] = _chw(a[:, ::-1] if flip else a)
            out.append(item)
        return out


class _FloatView:
    """A list of uint8 images seen as float32 in [0, 1], converted only when one is picked."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index].astype(np.float32) / 255.0


class _PairCrops(torch.utils.data.Dataset):
    """Raindrop-layout pairs (an :class:`AdapterDataset`) with a seeded random crop and flip, mask computed."""

    def __init__(self, dataset, indices: list[int], crop: int | None, seed: int):
        self.dataset, self.indices, self.crop, self.seed = dataset, list(indices), crop, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[self.indices[index]]
        image, target = sample["image"], sample["target"]
        h, w = image.shape[-2:]
        if self.crop and min(h, w) >= self.crop:
            rng = np.random.default_rng([self.seed, int(index)])
            top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
            image = image[:, top:top + self.crop, left:left + self.crop]
            target = target[:, top:top + self.crop, left:left + self.crop]
            if rng.uniform() < 0.5:
                image, target = image.flip(-1), target.flip(-1)
        h4, w4 = image.shape[-2] // 4 * 4, image.shape[-1] // 4 * 4
        image, target = image[:, :h4, :w4].contiguous(), target[:, :h4, :w4].contiguous()
        return {"image": image, "target": target, "mask": drop_mask(image[None], target[None])[0]}


class _ThreadedStream(BatchStream):
    """The deterministic batch stream with samples rendered by a few threads (OpenCV releases the GIL). With
    ``crops_per_render`` k > 1 (synthetic data), each batch is batch_size / k renderings × k crops of each. A sample
    depends only on its index, so the batches are the same for any thread count."""

    def __init__(self, dataset, batch_size: int, seed: int, workers: int, crops_per_render: int = 1):
        import threading

        super().__init__(dataset, batch_size, seed, None)
        self.pool = ThreadPoolExecutor(max(1, workers)) if workers > 1 else None
        # With workers, the next batch is rendered while the current step trains (the GPU waits less).
        self.prefetcher = ThreadPoolExecutor(1) if workers > 1 else None
        self.pending = None
        self.lock = threading.Lock()
        self.k = crops_per_render if hasattr(dataset, "group") else 1

    def _index(self, counter: int) -> int:
        with self.lock:
            return super()._index(counter)

    def _map(self, fn, items):
        return list(self.pool.map(fn, items)) if self.pool is not None else [fn(i) for i in items]

    def batch(self, step: int, micro: int = 0, accumulate: int = 1) -> dict[str, torch.Tensor]:
        if self.prefetcher is None:
            return self._make(step, micro, accumulate)
        key = (step, micro, accumulate)
        if self.pending is not None and self.pending[0] == key:
            result = self.pending[1].result()
        else:
            result = self._make(*key)
        following = (step, micro + 1, accumulate) if micro + 1 < accumulate else (step + 1, 0, accumulate)
        self.pending = (following, self.prefetcher.submit(self._make, *following))
        return result

    def _make(self, step: int, micro: int, accumulate: int) -> dict[str, torch.Tensor]:
        if self.k > 1:
            groups = -(-self.batch_size // self.k)
            start = (step * accumulate + micro) * groups
            indices = [self._index(c) for c in range(start, start + groups)]
            samples = [s for g in self._map(lambda i: self.dataset.group(i, self.k), indices) for s in g]
            return collate(samples[:self.batch_size])
        start = (step * accumulate + micro) * self.batch_size
        indices = [self._index(c) for c in range(start, start + self.batch_size)]
        return collate(self._map(self.dataset.__getitem__, indices))


# --- perceptual loss (optional) -----------------------------------------------------------------------------------

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256)  # up to relu3_3 (torchvision features.0 … features.15)
_VGG_TAPS = (3, 8, 15)  # relu1_2, relu2_2, relu3_3 in torchvision's numbering


class VGGFeatures(nn.Module):
    """VGG16's first three blocks with torchvision's layer numbering, frozen; weights from a user file."""

    def __init__(self, path: str | Path):
        super().__init__()
        from ..weights import load_state_dict

        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        state = load_state_dict(path)
        wanted = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < len(layers)}
        missing = set(self.state_dict()) - set(wanted)
        if missing:
            raise ValueError(f"{path}: not a torchvision vgg16 state dict (missing {sorted(missing)[:3]})")
        self.load_state_dict(wanted)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG_TAPS:
                taps.append(x)
        return taps


# --- the recipe ---------------------------------------------------------------------------------------------------

class AttentiveGANRecipe(TrainingRecipe):
    method = "attentive_gan"
    description = ("Attentive GAN (Qian et al. 2018): recurrent attention + contextual autoencoder generator and an "
                   "attentive discriminator, trained D then G each step with the paper's losses on raindrop pairs "
                   "(a Raindrop-layout folder, or drops rendered over photographs by engine.synth.raindrops).")
    defaults = {
        "lr": 2e-4, "batch_size": 8, "accumulate": 1, "val_every": 200, "checkpoint_every": 200,
        "weight_decay": 0.0, "beta1": 0.5, "att": 8, "base": 16, "residual": True, "d_width": 0.5,
        "crop": 128, "val_crop": 256, "val_count": 16, "short_side": 384, "synthetic_pairs": 1_000_000,
        "dry_fraction": 0.1, "w_gan": 0.01, "w_att": 1.0, "w_multiscale": 1.0, "w_perceptual": 1.0,
        "vgg_weights": "", "workers": 2, "crops_per_render": 4, "init": "", "drops": "heavy",
    }
    _vgg: nn.Module | None = None  # set by begin() when vgg_weights names a file
    metric_higher_is_better = {"psnr_rgb": True, "psnr_y": True, "ssim_rgb": True, "ssim_y": True,
                               "input_psnr_rgb": True, "input_psnr_y": True, "gain_rgb": True, "dry_psnr": True}

    # --- model and data ---------------------------------------------------------------------------------------
    def build_model(self, config: Mapping[str, Any]) -> nn.Module:
        model = AttentiveGAN(int(config["att"]), int(config["base"]), bool(config["residual"]),
                             float(config["d_width"]))
        if config.get("init"):  # fine-tune: start the generator from an exported weight file (the critic starts new)
            from ..weights import load_state_dict

            own = model.generator.state_dict()
            state = load_state_dict(str(config["init"]))
            model.generator.load_state_dict({k: v.float() for k, v in state.items() if k in own})
        return model

    def begin(self, config: Mapping[str, Any]) -> None:
        super().begin(config)
        self._vgg = None
        if config.get("vgg_weights"):
            self._vgg = VGGFeatures(config["vgg_weights"])

    def _options(self, config: Mapping[str, Any]) -> DropOptions:
        return drop_preset(str(config["drops"]), dry=float(config["dry_fraction"]))

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        if data_dir is None:
            raise ValueError("attentive_gan: pass --data DIR, a Raindrop-layout pairs folder (data/, gt/) or a folder "
                             "of photographs to render drops over (e.g. ../shared/data/photos)")
        crop = int(config["crop"])
        if is_pairs_folder(data_dir):
            from .data import AdapterDataset, split_indices

            folder = data_dir / "train" if (data_dir / "train" / "data").is_dir() else data_dir
            pairs = AdapterDataset("raindrop", folder)
            train_idx, val_idx = split_indices(len(pairs), 0.1, seed)
            self.data_note = f"{len(train_idx)} Raindrop-layout pairs from {data_dir} ({len(val_idx)} held out)"
            val_crop = int(config["val_crop"])
            return _PairCrops(pairs, train_idx, crop, seed), _PairCrops(pairs, val_idx, val_crop, VAL_SEED)
        files = list_backgrounds([data_dir])
        train_files = [p for p in files if not is_validation_background(p)]
        val_files = [p for p in files if is_validation_background(p)]
        if not train_files or not val_files:
            raise ValueError(f"{data_dir}: need photos both in and out of the validation bucket (found "
                             f"{len(train_files)} training and {len(val_files)} validation backgrounds)")
        short = int(config["short_side"])
        load = lambda paths: [load_background_u8(p, short) for p in paths]  # noqa: E731
        self.data_note = (f"drops rendered on the fly over {len(train_files)} photos of {data_dir} (short side ≤ "
                          f"{short}); {len(val_files)} photos held out for validation")
        options = self._options(config)
        train = SyntheticRaindrops(load(train_files), int(config["synthetic_pairs"]), crop, seed * 10_000_019,
                                   options)
        val_bgs = load(val_files)
        val = SyntheticRaindrops(val_bgs, 10 ** 6, int(config["val_crop"]), VAL_SEED, replace_dry(options))
        return train, wet_samples(val, int(config["val_count"]))

    def batch_stream(self, train, seed: int, config: Mapping[str, Any]):
        return _ThreadedStream(train, int(config["batch_size"]), seed, int(config["workers"]),
                               int(config["crops_per_render"]))

    # --- optimisation -----------------------------------------------------------------------------------------
    def phases(self, config: Mapping[str, Any]) -> list[Phase]:
        return [Phase("main", optimizers=("discriminator", "generator"))]

    def make_optimizers(self, model, config, phase):
        betas = (float(config["beta1"]), 0.999)
        lr = float(config["lr"])
        return {"discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=betas),
                "generator": torch.optim.Adam(model.generator.parameters(), lr=lr, betas=betas)}

    def lr_factor(self, step: int, steps: int, config, phase) -> float:
        tail = max(1, steps // 5)
        return 1.0 if step < steps - tail else max(0.05, (steps - step) / tail)

    def loss(self, model, batch, phase, optimizer):
        c = {**self.defaults, **self.run_config}
        image, target = batch["image"], batch["target"]
        mask = batch["mask"] if "mask" in batch else drop_mask(image, target)
        if optimizer == "discriminator":
            with torch.no_grad():
                masks, _, _, fake = model.generator(image)
            logit_real, map_real = model.discriminator(target)
            logit_fake, map_fake = model.discriminator(fake.detach())
            att = F.adaptive_avg_pool2d(masks[-1].float(), map_fake.shape[-2:])
            terms = {
                "real": F.binary_cross_entropy_with_logits(logit_real.float(), torch.ones_like(logit_real.float())),
                "fake": F.binary_cross_entropy_with_logits(logit_fake.float(), torch.zeros_like(logit_fake.float())),
                "map": F.mse_loss(map_fake.float(), att) + F.mse_loss(map_real.float(),
                                                                      torch.zeros_like(map_real.float())),
            }
            total = terms["real"] + terms["fake"] + 0.05 * terms["map"]
            return total, {k: float(v.detach()) for k, v in terms.items()}
        masks, frame1, frame2, out = model.generator(image)
        l_att = sum(0.8 ** (ITERATIONS - 1 - t) * F.mse_loss(m.float(), mask) for t, m in enumerate(masks))
        l_m = (0.6 * F.mse_loss(frame1.float(), F.avg_pool2d(target, 4))
               + 0.8 * F.mse_loss(frame2.float(), F.avg_pool2d(target, 2)) + F.mse_loss(out.float(), target))
        logit, _ = model.discriminator(out)
        l_gan = F.binary_cross_entropy_with_logits(logit.float(), torch.ones_like(logit.float()))
        terms = {"att": l_att, "multiscale": l_m, "gan": l_gan}
        total = float(c["w_att"]) * l_att + float(c["w_multiscale"]) * l_m + float(c["w_gan"]) * l_gan
        if self._vgg is not None:
            self._vgg.to(out.device)
            l_p = sum(F.mse_loss(a.float(), b.float()) for a, b in zip(self._vgg(out), self._vgg(target)))
            terms["perceptual"] = l_p
            total = total + float(c["w_perceptual"]) * l_p
        return total, {k: float(v.detach()) for k, v in terms.items()}

    # --- evaluation and export --------------------------------------------------------------------------------
    def validate(self, model, val, device, config) -> dict[str, float]:
        return evaluate_generator(model.generator, val, device)

    def export(self, model, config):
        gen = model.generator
        state = {k: v.detach().float().cpu() for k, v in gen.state_dict().items()}
        state.update(meta_tensors(gen.residual, bgr=False))
        params = sum(p.numel() for p in gen.parameters())
        losses = "L_ATT + L_M (0.6/0.8/1.0 multi-scale MSE) + 0.01·L_GAN" + (
            " + L_P (VGG16 from " + str(config["vgg_weights"]) + ")" if config.get("vgg_weights") else
            "; no perceptual loss (no VGG16 weights given)")
        return state, {"architecture": f"AttentiveGenerator(att={gen.att}, base={gen.base}, residual={gen.residual}),"
                                       f" {params:,} parameters; 4 recurrent steps",
                       "training data": getattr(self, "data_note", ""),
                       **({"initialised from": str(config["init"])} if config.get("init") else {}),
                       "generator losses": losses,
                       "input": "RGB image in [0, 1], sizes multiples of 4 (the runner pads by reflection)",
                       "validation protocol": "PSNR/SSIM on RGB and on Y (BT.601 studio swing), data range 1, no "
                                              "crop, output clipped to [0, 1]; identity baseline = the input"}

    def data_licence(self, data_dir: Path | None) -> str:
        return ("the training photographs' licences (Kodak24: unrestricted; CBSD68: non-commercial research and "
                "education; LOL: research use); rendered drops are the project's")


def wet_samples(dataset: SyntheticRaindrops, count: int, min_fraction: float = 0.005) -> list[dict]:
    """The first ``count`` items (in seed order) whose drop mask covers at least ``min_fraction`` of the crop, so
    that no validation crop is dry (a dry crop has an infinite input PSNR)."""
    samples, index = [], 0
    while len(samples) < count and index < 50 * count + 50:
        sample = dataset[index]
        index += 1
        if float(sample["mask"].mean()) >= min_fraction:
            samples.append(sample)
    return samples


def replace_dry(options: DropOptions) -> DropOptions:
    """Validation pairs always carry water (the dry case is measured separately by ``dry_psnr``)."""
    from dataclasses import replace

    return replace(options, dry=0.0)


def load_background_u8(path: Path, short_side: int) -> np.ndarray:
    """An RGB uint8 photo, shrunk (area filter) to ``short_side`` if it is larger (never enlarged)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    scale = short_side / min(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


# --- evaluation ---------------------------------------------------------------------------------------------------

def _pad4(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="reflect"), h, w


@torch.no_grad()
def evaluate_generator(generator, samples, device) -> dict[str, float]:
    """Mean PSNR/SSIM (RGB and Y) of the output and of the input against the clean image, and ``dry_psnr`` (the
    clean image through the network against itself, RGB)."""
    from ..metrics import fidelity
    from ..metrics.fidelity import Protocol

    was_training = generator.training
    generator.eval()
    rows = []
    for sample in samples:
        image = sample["image"][None].to(device)
        target = sample["target"][None].to(device)
        outs = []
        for x in (image, target):
            padded, h, w = _pad4(x)
            outs.append(generator(padded)[3][..., :h, :w].float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy())
        out, dry = outs
        truth = sample["target"].permute(1, 2, 0).numpy()
        inp = sample["image"].permute(1, 2, 0).numpy()
        row = {}
        for ch in ("rgb", "y"):
            p = Protocol(channels=ch)
            row[f"psnr_{ch}"] = fidelity.psnr(truth, out, p)
            row[f"ssim_{ch}"] = fidelity.ssim(truth, out, p)
            row[f"input_psnr_{ch}"] = fidelity.psnr(truth, inp, p)
            row[f"input_ssim_{ch}"] = fidelity.ssim(truth, inp, p)
        row["dry_psnr"] = min(fidelity.psnr(truth, dry, Protocol()), 99.0)
        rows.append(row)
    generator.train(was_training)
    result = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    result["gain_rgb"] = result["psnr_rgb"] - result["input_psnr_rgb"]
    return result


def held_out_pairs(backgrounds, short_side: int, drops: str, count: int | None = None):
    """The evaluation's test pairs, one per held-out photo of ``backgrounds`` (folders, in the order given): the photo
    at ``short_side``, cropped to multiples of 4, with drops of preset ``drops`` rendered with seed ``VAL_SEED + k``
    (k: the photo's index among the held-out ones). Yields ``(path, sample)``, sample as ``render_raindrops`` returns
    it. ``scripts/attentive_gan_figure.py`` draws the same pairs."""
    from ..synth.raindrops import render_raindrops

    options = drop_preset(drops)
    files = [p for p in list_backgrounds(backgrounds) if is_validation_background(p)]
    for k, path in enumerate(files[:count]):
        bg = load_background_u8(path, short_side).astype(np.float32) / 255.0
        bg = bg[:bg.shape[0] // 4 * 4, :bg.shape[1] // 4 * 4]
        yield path, render_raindrops(bg, VAL_SEED + k, options)


def _evaluate_cli(args) -> int:
    from ..methods.attentive_gan import build_from_state
    from ..weights import load_state_dict

    torch.set_num_threads(args.threads)
    generator, arch = build_from_state(load_state_dict(args.evaluate))
    samples = [{"image": _chw(s["rainy"]), "target": _chw(s["clean"]), "name": path.name}
               for path, s in held_out_pairs(args.backgrounds, args.short_side, args.drops, args.count)]
    per = []
    for s in samples:
        r = evaluate_generator(generator, [s], torch.device("cpu"))
        per.append(r)
        print(f"{s['name']:>14}  input {r['input_psnr_rgb']:6.2f} dB → output {r['psnr_rgb']:6.2f} dB (RGB); "
              f"Y {r['input_psnr_y']:6.2f} → {r['psnr_y']:6.2f} dB; SSIM RGB {r['input_ssim_rgb']:.4f} → "
              f"{r['ssim_rgb']:.4f}; dry {r['dry_psnr']:.2f} dB")
    mean = {k: float(np.mean([r[k] for r in per])) for k in per[0]}
    print(json.dumps({"weights": str(args.evaluate), "architecture": arch, "images": len(per),
                      "protocol": "whole held-out backgrounds (CRC-32 of the stem mod 10 == 0), short side ≤ "
                                  f"{args.short_side}, drops rendered with seeds {VAL_SEED}+k, the "
                                  f"'{args.drops}' drop preset; "
                                  "PSNR/SSIM on RGB and Y (BT.601 studio swing), data range 1, no crop, output "
                                  "clipped to [0, 1]",
                      "mean": {k: round(v, 4) for k, v in mean.items()}}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train.attentive_gan_recipe",
                                     description="evaluate Attentive GAN weights on held-out rendered raindrops "
                                                 "(train with `python -m engine train attentive_gan --data DIR`)")
    parser.add_argument("--evaluate", required=True, metavar="WEIGHTS", help="safetensors file to evaluate")
    parser.add_argument("--backgrounds", nargs="+", required=True, help="folders of photos (held-out ones are used)")
    parser.add_argument("--count", type=int, default=1000, help="at most this many held-out images")
    parser.add_argument("--short-side", type=int, default=480)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--drops", default="heavy", choices=sorted(DROP_PRESETS),
                        help="drop regime of the rendered test pairs (heavy: a wet pane, what training uses by "
                             "default; light: the sparse drops the earlier weights were scored on)")
    return _evaluate_cli(parser.parse_args(argv))


register_recipe(AttentiveGANRecipe())

if __name__ == "__main__":
    raise SystemExit(main())
