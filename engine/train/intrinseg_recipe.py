"""Training recipe for IntrinSeg (``engine.methods.intrinseg``): joint albedo, shading and 16-class segmentation.

Data (:mod:`engine.train.intrinsic_data`): rendered scenes (a folder from ``python -m engine.synth``, best with
``--style photographic --textures PHOTOS``, or rendered on the fly with ``--data synthetic``), which carry albedo,
shading and labels, mixed with the MIT intrinsic objects of ``mit_dir`` (albedo and shading only: their
segmentation loss is masked out) in the proportion ``mit_share``. ``fold`` (0–4) or ``mit_holdout`` hold MIT objects
out for cross-validation; ``init`` starts from an exported weight file (pre-training on rendered scenes, then
fine-tuning with MIT, as CGIntrinsics did for its MIT numbers). ``mit_swap`` (0 by default) adds albedo-swap
composites to the MIT samples: one training object's reflectance times another's shading under one of its
lightings, cut to a common size (``MITSamples.composite``; exact, since image = albedo × shading, and only from the
fold's training objects), so that each albedo is seen under other shapes than its own.

Loss (the paper's form, ``methods.md`` §7: γ_CE·cross-entropy + γ_IL·[albedo and shading terms, each a
scale-invariant term and a plain one]): here the scale-invariant terms are the Grosse LMSE itself (differentiable,
20×20 windows, per channel) and its global one-window form, since MIT ground truth has no absolute scale. The global
terms (and the reconstruction term, albedo·shading against the linear image) take one scale per image for all three
channels (``si_joint=1``): per-channel scales leave the colour balance free, and neither the windowed LMSE nor they
see a colour cast. Runs of 3,000 steps on all ten MIT objects (kodim03/08/23 by eye, 2026-11-28/29) showed what the
albedo's colour needs: with per-channel scales (``si_joint=0``, every run before) yellow and green albedos came out
orange; with ``si_joint=1`` alone, still orange; with half the samples' RGB channels also permuted (image, albedo and
shading alike, which keeps each decomposition exact: ``channel_shuffle=0.5``), still orange for every saturated
colour. Two causes were then found and removed. The rendered scenes are lit by coloured sun, sky and lamps while
photographs come white-balanced, so a network learns to push albedos away from the light (blue sky light → orange
albedo): ``white_balance=1`` divides each rendered sample's mean light colour out of its image and shading, as a
camera's white balance does (``intrinsic_data.white_balance``). With that alone every albedo turned one washed-out
khaki: the losses gave colour almost no gradient, so ``chroma_loss`` (squared error of each pixel's chromaticity,
``w_chroma=5``) was added; with it reds, greens and blues keep their hue and the shading is grey, though a saturated
yellow still came out salmon-red after 3,000 steps at quarter width (``assets/model_cards/intrinseg-mit.md``). The
network's ``width`` is 0.5 by default: at quarter width its first and last levels have 4 channels per task; at half
width the yellows stay yellow and the 5-fold MIT cross-validation of the same 3,000-step recipe fell from 0.0291 to
0.0245 (0.0255 with another seed; the card). The segmentation cross-entropy is taken on the head's BN+ReLU scores (softmax only at inference, as the authors do).
Validation: the benchmark's Grosse LMSE on the held-out MIT objects (benchmark input convention, the runner's default
parameters), or on the training objects when none is held out (then named ``mit_train_*``); segmentation accuracy
on rendered validation scenes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from ..imaging import srgb_to_linear
from ..methods.intrinseg import IntrinSegNet, decompose, model_from_state, prepare
from .data import Augment
from .intrinsic_data import (Mixture, chroma_loss, evaluate_mit, lmse_loss, masked_cross_entropy, mit_metrics,
                             mit_samples, mit_training_objects, shuffle_channels, si_loss, synthetic_sample,
                             synthetic_source, white_balance)
from .recipe import Phase, TrainingRecipe, register_recipe

VAL_SEED = 1_000_000


def load_init(model: torch.nn.Module, path: str) -> None:
    """Copy an exported state dict into ``model`` (shapes must match)."""
    from ..weights import load_state_dict

    state = load_state_dict(path)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})


class IntrinSegRecipe(TrainingRecipe):
    method = "intrinseg"
    description = ("IntrinSeg (Baslamisli et al. 2018): one encoder, three exchanging decoders (albedo, shading, "
                   "16-class segmentation), trained on engine.synth scenes and the MIT objects with the Grosse LMSE "
                   "(local and global, per channel) on albedo and shading and a masked cross-entropy on the labels.")
    defaults = {
        "lr": 1e-3, "batch_size": 8, "accumulate": 1, "val_every": 500, "checkpoint_every": 500,
        "weight_decay": 0.0, "width": 0.5, "crop": 224, "render_size": 256, "lightings": 2,
        "synthetic_scenes": 100_000, "style": "photographic", "texture_dir": "", "mit_dir": "", "mit_objects": "",
        "mit_holdout": "", "fold": -1, "mit_share": 0.5, "mit_lights": True, "init": "",
        "w_lmse": 1.0, "w_si": 0.5, "w_rec": 0.25, "w_ce": 0.05, "exposure_min": 1.0, "exposure_max": 1.0,
        "noise": 0.0, "val_scenes": 4, "max_side": 512, "warmup": 50, "time_budget": 0.0, "si_joint": 1,
        "channel_shuffle": 0.5, "white_balance": 1, "w_chroma": 5.0, "mit_swap": 0.0,
    }
    metric_higher_is_better = {"mit_lmse": False, "mit_albedo_lmse": False, "mit_shading_lmse": False,
                               "mit_train_lmse": False, "mit_train_albedo_lmse": False,
                               "mit_train_shading_lmse": False, "seg_accuracy": True}

    def build_model(self, config: Mapping[str, Any]) -> IntrinSegNet:
        model = IntrinSegNet(width=float(config["width"]))
        if config.get("init"):
            load_init(model, str(config["init"]))
        return model

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        synthetic, self.data_note = synthetic_source(data_dir, config, seed)
        train_objects, holdout = mit_training_objects(config)
        mit = mit_samples(config, train_objects, seed)
        self.mit_note = (f"MIT objects {', '.join(train_objects)}" if train_objects else "no MIT objects") + (
            f"; held out: {', '.join(holdout)}" if holdout else "")
        self.val_objects = holdout or train_objects
        self.val_prefix = "mit" if holdout else "mit_train"
        # Rendered validation scenes: the last few of a folder are also trained on, so render fresh ones instead
        # when rendering is cheap (on the fly); otherwise use the folder's first scenes (a training-set check).
        val_scenes = []
        if synthetic is not None and int(config["val_scenes"]) > 0:
            val_scenes = [synthetic[i] for i in range(min(int(config["val_scenes"]), len(synthetic)))]
        return Mixture(synthetic, mit, float(config["mit_share"])), {"scenes": val_scenes}

    def make_augment(self, config: Mapping[str, Any]) -> Augment:
        # No 90° turns: photos are upright and light mostly comes from above, a cue worth keeping. Exposure is off
        # by default: the network sees every image divided by its maximum, and the rendered camera images already
        # carry exposure, noise and JPEG variation (and the CPU-side augmentation is the bottleneck on the GPU).
        lo, hi = float(config["exposure_min"]), float(config["exposure_max"])
        return Augment(crop=int(config["crop"]), flip=True, rotate=False,
                       exposure=None if lo == hi == 1.0 else (lo, hi),
                       noise=float(config["noise"]), photometric=("image",), srgb=("image",))

    def make_optimizers(self, model, config, phase):
        return {"main": torch.optim.Adam(model.parameters(), lr=float(config["lr"]), betas=(0.9, 0.999))}

    def begin(self, config) -> None:
        super().begin(config)
        self.clock = time.perf_counter()

    def lr_factor(self, step: int, steps: int, config, phase) -> float:
        """Linear warm-up, then cosine to 3 % over the run. With ``time_budget`` (seconds, for runs stopped by
        ``--max-seconds``) the cosine follows whichever is further along, the steps or the wall clock."""
        warm = int(config["warmup"])
        if step < warm:
            return (step + 1) / warm
        return cosine_factor(step, steps, warm, float(config.get("time_budget") or 0.0),
                             time.perf_counter() - getattr(self, "clock", time.perf_counter()))

    def loss(self, model, batch, phase, optimizer):
        c = {**self.defaults, **self.run_config}
        if int(c["white_balance"]):
            batch = white_balance(batch)
        batch = shuffle_channels(batch, float(c["channel_shuffle"]))
        image, mask = batch["image"], batch["mask"]
        albedo, shading, scores = model(prepare(image))
        joint = bool(int(c["si_joint"]))
        linear = srgb_to_linear(image)
        terms = {
            "lmse_a": lmse_loss(albedo, batch["albedo"], mask), "lmse_s": lmse_loss(shading, batch["shading"], mask),
            "si_a": si_loss(albedo, batch["albedo"], mask, joint),
            "si_s": si_loss(shading, batch["shading"], mask, joint),
            "rec": si_loss(albedo.float() * shading.float(), linear, mask, joint),
            "ce": masked_cross_entropy(scores, batch["labels"], batch["seg_mask"]),
            "chroma": chroma_loss(albedo, batch["albedo"], mask),
        }
        total = (float(c["w_lmse"]) * (terms["lmse_a"] + terms["lmse_s"])
                 + float(c["w_si"]) * (terms["si_a"] + terms["si_s"]) + float(c["w_rec"]) * terms["rec"]
                 + float(c["w_ce"]) * terms["ce"] + float(c["w_chroma"]) * terms["chroma"])
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def validate(self, model, val, device, config) -> dict[str, float]:
        metrics: dict[str, float] = {}
        model.eval()
        correct = total = 0
        for scene in val["scenes"]:
            x = scene["image"][None].to(device)
            h, w = (x.shape[-2] // 32) * 32, (x.shape[-1] // 32) * 32
            _, _, probs = model(prepare(x[..., :h, :w].float()))
            labels = scene["labels"][:h, :w].to(device)
            correct += int((probs.argmax(1)[0] == labels).sum())
            total += labels.numel()
        if total:
            metrics["seg_accuracy"] = correct / total
        if getattr(self, "val_objects", ()):
            side = int(config["max_side"])

            def split(image):
                out = decompose(image, model, device, "aspect", side)
                return out["albedo"], out["shading"]

            metrics.update(mit_metrics(evaluate_mit(model, config["mit_dir"], self.val_objects, split),
                                       self.val_prefix))
        return metrics

    def export(self, model, config):
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        params = sum(p.numel() for p in model.parameters())
        return state, {"architecture": f"IntrinSegNet(width={float(config['width'])}), {params:,} parameters",
                       "training scenes": getattr(self, "data_note", "rendered on the fly"),
                       "MIT objects": getattr(self, "mit_note", "none"),
                       "initialised from": config.get("init") or "random (PyTorch default initialisation)",
                       "input": "sRGB image ÷ its own maximum; H, W multiples of 32",
                       "outputs": "albedo (3), shading (3), 16 class scores (softmax at inference)"}

    def data_licence(self, data_dir: Path | None) -> str:
        return ("engine.synth renders (photo textures: Kodak PhotoCD, unrestricted; BSDS, non-commercial research); "
                "MIT Intrinsic Images: UC Regents, educational, research and non-profit use")


def cosine_factor(step: int, steps: int, warm: int, time_budget: float, elapsed: float) -> float:
    progress = (step - warm) / max(1, steps - warm)
    if time_budget > 0:
        progress = max(progress, elapsed / time_budget)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * 0.97 + 0.03


register_recipe(IntrinSegRecipe())
