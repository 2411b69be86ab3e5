"""Attentive GAN: Attentive Generative Adversarial Network for Raindrop Removal from a Single Image.

Rui Qian, Robby T. Tan, Wenhan Yang, Jiajun Su, Jiaying Liu. CVPR 2018. https://github.com/rui1996/DeRaindrop

The generator has two parts (``../shared/docs/methods.md`` §5, ``../shared/docs/official-weights.md`` §1):

* an **attentive-recurrent network**: 4 steps with shared weights; each takes [image, previous attention map]
  (the map starts at 0.5), extracts features (a conv and 5 residual blocks), updates a ConvLSTM (gates i, f, o with
  sigmoid, g with tanh, no peepholes; ``c = f·c + i·g``, ``h = o·tanh(c)``) and reads an attention map from ``h`` with a
  3×3 conv — **without a sigmoid** (the official code's choice; the map is trained toward the binary drop mask M);
* a **contextual autoencoder** on [image, last attention map]: two stride-2 downsamplings, four dilated convs
  (dilation 2, 4, 8, 16) at ¼ scale, two upsamplings by transposed conv, each followed (official detail) by a
  one-sided reflection pad and a 2×2 stride-1 average pool, with skips from the encoder, and outputs at ¼, ½ and full
  scale (the multi-scale loss trains all three).

The discriminator (training only) has six 5×5 convs, an attention-map conv whose map is trained to match the
generator's final attention on fakes and zero on real images, multiplies its features by that map, and ends in convs
and a fully connected classifier.

Two weight sets:

* ``project`` (default): trained here on raindrops rendered by :mod:`engine.synth.raindrops`; a **narrower** network
  (attention width 8 instead of 32, autoencoder base width 16 instead of 64) so that a 1-megapixel photo takes about
  2 s on a CPU, and a **residual output** (the autoencoder's outputs are added to the input at each scale), so a photo
  without drops comes back nearly unchanged. Input order RGB.
* ``official``: the authors' ``gen.pkl`` (a PyTorch state dict whose keys are exactly our module names), imported with
  ``python -m engine weights import attentive_gan gen.pkl``. It runs as the authors' ``predict.py`` does: BGR input in
  [0, 1], no residual, unbounded output (we clip it to [0, 1] at the end), sizes cropped to a multiple of 4.

Width and output mode are read from the weights (``_meta.*`` tensors in our exports; absent in the official file), so
both sets run through the same code. Large photos go through overlapping tiles that are cross-faded (no seams).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, WeightsUnavailableError
from ..ops.tiling import TilePlan, minimum_tile, plan_in_budget, run_tiled
from ..registry import (InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, Role,
                        RunContext, register)

ITERATIONS = 4

# --- building blocks ------------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """``Sequential(conv[, ReLU])``: index 0 holds the weights, as in the official module names (``conv1.0``)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation)]
    if relu:
        layers.append(nn.ReLU(inplace=True))  # a convolution's backward needs its input, not its output
    return nn.Sequential(*layers)


def _residual_block(ch: int) -> nn.Sequential:
    """conv-ReLU-conv-ReLU (weights at indices 0 and 2); the skip and the final ReLU are applied by the caller."""
    return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1),
                         nn.ReLU(inplace=True))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    """Transposed conv 4×4 stride 2 (×2 size), then the official reflect-pad (left 1, top 1) + 2×2 stride-1 average
    pool, which keeps the ×2 size and smooths the transposed conv's checkerboard; then ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReflectionPad2d((1, 0, 1, 0)),
                         nn.AvgPool2d(2, stride=1), nn.ReLU(inplace=True))


# --- networks -------------------------------------------------------------------------------------------------


class AttentiveGenerator(nn.Module):
    """(N, 3, H, W) image in [0, 1], H and W multiples of 4 → (attention maps, ¼-scale, ½-scale, full-scale output).

    ``att`` and ``base`` are the widths of the attentive-recurrent network and of the autoencoder's first level
    (official: 32 and 64). ``residual`` adds the input (downsampled for the ¼ and ½ outputs) to each output and drops
    the ReLU of the two small outputs, so that an image without drops is reproduced by an all-zero correction.
    """

    def __init__(self, att: int = 32, base: int = 64, residual: bool = False):
        super().__init__()
        self.att, self.base, self.residual = att, base, residual
        a, b = att, base
        self.det_conv0 = _conv(4, a)
        for i in range(1, 6):
            setattr(self, f"det_conv{i}", _residual_block(a))
        self.conv_i = nn.Sequential(nn.Conv2d(2 * a, a, 3, 1, 1), nn.Sigmoid())
        self.conv_f = nn.Sequential(nn.Conv2d(2 * a, a, 3, 1, 1), nn.Sigmoid())
        self.conv_g = nn.Sequential(nn.Conv2d(2 * a, a, 3, 1, 1), nn.Tanh())
        self.conv_o = nn.Sequential(nn.Conv2d(2 * a, a, 3, 1, 1), nn.Sigmoid())
        self.det_conv_mask = nn.Sequential(nn.Conv2d(a, 1, 3, 1, 1))
        self.conv1 = _conv(4, b, 5)
        self.conv2 = _conv(b, 2 * b, stride=2)
        self.conv3 = _conv(2 * b, 2 * b)
        self.conv4 = _conv(2 * b, 4 * b, stride=2)
        self.conv5 = _conv(4 * b, 4 * b)
        self.conv6 = _conv(4 * b, 4 * b)
        for i, d in enumerate((2, 4, 8, 16), start=1):
            setattr(self, f"diconv{i}", _conv(4 * b, 4 * b, dilation=d))
        self.conv7 = _conv(4 * b, 4 * b)
        self.conv8 = _conv(4 * b, 4 * b)
        self.deconv1 = _deconv(4 * b, 2 * b)
        self.conv9 = _conv(2 * b, 2 * b)
        self.deconv2 = _deconv(2 * b, b)
        self.conv10 = _conv(b, b // 2)
        self.outframe1 = _conv(4 * b, 3, relu=not residual)
        self.outframe2 = _conv(2 * b, 3, relu=not residual)
        self.output = nn.Sequential(nn.Conv2d(b // 2, 3, 3, 1, 1))
        if residual:
            # Start as the identity: the corrections of all three outputs begin at zero.
            for layer in (self.outframe1[0], self.outframe2[0], self.output[0]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def attention(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The attention map of each recurrent step, (N, 1, H, W) each."""
        n, _, h, w = image.shape
        mask = image.new_full((n, 1, h, w), 0.5)
        hidden = image.new_zeros((n, self.att, h, w))
        cell = image.new_zeros((n, self.att, h, w))
        masks = []
        # The four gate convolutions (conv_i, conv_f, conv_g, conv_o) run as one, with their stacked weights, and one
        # sigmoid covers all four gates: conv_g's weights and bias are doubled and tanh(z) = 2·sigmoid(2z) − 1. Three
        # sigmoids and a tanh over strided channel slices of a channels-last tensor cost 2.4× as much on the CPU.
        convs = [self.conv_i[0], self.conv_f[0], self.conv_g[0], self.conv_o[0]]
        scale = (1.0, 1.0, 2.0, 1.0)
        weight = torch.cat([c.weight * k for c, k in zip(convs, scale)])
        bias = torch.cat([c.bias * k for c, k in zip(convs, scale)])
        in_place = not torch.is_grad_enabled()  # inference: no new full-size buffer per residual block
        for _ in range(ITERATIONS):
            x = self.det_conv0(torch.cat([image, mask], 1))
            for i in range(1, 6):
                y = getattr(self, f"det_conv{i}")(x)
                x = y.add_(x).relu_() if in_place else F.relu(y + x)
            x = torch.cat([x, hidden], 1)
            i_gate, f_gate, g_half, o_gate = F.conv2d(x, weight, bias, padding=1).sigmoid().chunk(4, 1)
            cell = torch.addcmul(f_gate * cell, i_gate, 2.0 * g_half - 1.0)
            hidden = o_gate * (2.0 * torch.sigmoid(2.0 * cell) - 1.0)
            mask = self.det_conv_mask(hidden)
            masks.append(mask)
        return masks

    def autoencoder(self, image: torch.Tensor, mask: torch.Tensor):
        x = self.conv1(torch.cat([image, mask], 1))
        skip1 = x
        x = self.conv3(self.conv2(x))
        skip2 = x
        x = self.conv6(self.conv5(self.conv4(x)))
        for i in range(1, 5):
            x = getattr(self, f"diconv{i}")(x)
        x = self.conv8(self.conv7(x))
        frame1 = self.outframe1(x)
        x = self.deconv1(x) + skip2
        x = self.conv9(x)
        frame2 = self.outframe2(x)
        x = self.deconv2(x) + skip1
        x = self.output(self.conv10(x))
        if self.residual:
            frame1 = frame1 + F.avg_pool2d(image, 4)
            frame2 = frame2 + F.avg_pool2d(image, 2)
            x = x + image
        return frame1, frame2, x

    def forward(self, image: torch.Tensor):
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[2] % 4 or image.shape[3] % 4:
            raise ValueError(f"expected (N, 3, H, W) with H, W multiples of 4, got {tuple(image.shape)}")
        masks = self.attention(image)
        frame1, frame2, out = self.autoencoder(image, masks[-1])
        return masks, frame1, frame2, out


class AttentiveDiscriminator(nn.Module):
    """Six 5×5 convs (3→8→16→64→128→128→128 at ``width`` 1) with ReLU; an attention-map conv (→1); the features
    multiplied by the map; two stride-4 convs, a global 4×4 average pool and a fully connected classifier.

    Returns (logit (N,), attention map (N, 1, H/4, W/4)). The second and fourth convs have stride 2 (the paper and the
    facts we have do not fix the strides; this keeps the cost low on full-resolution crops); the classifier pools to
    4×4 so any crop size works. The sigmoid of the paper's last neuron is folded into the loss (BCE with logits).
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        chans = [3] + [max(4, int(round(c * width))) for c in (8, 16, 64, 128, 128, 128)]
        strides = (1, 2, 1, 2, 1, 1)
        self.features = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 5, strides[i], 2) for i in range(6))
        self.conv_mask = nn.Conv2d(chans[-1], 1, 5, 1, 2)
        c7, c8 = max(4, int(round(64 * width))), max(4, int(round(32 * width)))
        self.conv7 = nn.Conv2d(chans[-1], c7, 5, 4, 2)
        self.conv8 = nn.Conv2d(c7, c8, 5, 4, 2)
        self.fc1 = nn.Linear(c8 * 16, max(16, int(round(1024 * width))))
        self.fc2 = nn.Linear(self.fc1.out_features, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image
        for conv in self.features:
            x = F.relu(conv(x))
        mask = self.conv_mask(x)
        x = F.relu(self.conv7(x * mask))
        x = F.relu(self.conv8(x))
        x = F.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc2(F.relu(self.fc1(x))).squeeze(1), mask


class AttentiveGAN(nn.Module):
    """Generator and discriminator together, for the training loop; only the generator is exported."""

    def __init__(self, att: int = 32, base: int = 64, residual: bool = False, d_width: float = 1.0):
        super().__init__()
        self.generator = AttentiveGenerator(att, base, residual)
        self.discriminator = AttentiveDiscriminator(d_width)

    def forward(self, image: torch.Tensor):
        return self.generator(image)


#: The project's architecture (see the module docstring): narrow, residual. Chosen for ≤ 2 s per megapixel on a CPU.
PROJECT_ARCH = {"att": 8, "base": 16, "residual": True}


# --- official converter and weight metadata -------------------------------------------------------------------

#: Keys of the official state dict and their shapes (official-weights.md §1), in order.
def official_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in AttentiveGenerator(32, 64, residual=False).state_dict().items()}


def convert_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The authors' ``gen.pkl`` → our state dict (same keys; float32; a ``module.`` prefix, if any, removed).

    Loaded with ``torch.load(weights_only=True)`` (never a full unpickle). Every official key must be present with
    its official shape (70 tensors, 6,244,362 parameters); ConvTranspose2d weights are IOHW in both. The result
    carries ``_meta.residual`` = 0 and ``_meta.bgr`` = 1: the authors feed BGR images, without a residual output.
    """
    from ..weights import load_state_dict

    state = load_state_dict(path)
    expected = official_shapes()
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsUnavailableError(f"{path}: not the official DeRaindrop generator; missing {len(missing)} "
                                      f"key(s), e.g. {missing[:3]}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {s})" for k, s in expected.items()
             if tuple(state[k].shape) != s]
    if wrong:
        raise WeightsUnavailableError(f"{path}: unexpected shapes: {'; '.join(wrong[:3])}")
    out = {k: state[k].detach().to(torch.float32).contiguous() for k in expected}
    out["_meta.residual"] = torch.tensor(0, dtype=torch.int64)
    out["_meta.bgr"] = torch.tensor(1, dtype=torch.int64)
    return out


def meta_tensors(residual: bool, bgr: bool = False) -> dict[str, torch.Tensor]:
    return {"_meta.residual": torch.tensor(int(residual)), "_meta.bgr": torch.tensor(int(bgr))}


def build_from_state(state: Mapping[str, torch.Tensor]) -> tuple[AttentiveGenerator, dict[str, Any]]:
    """A generator whose widths and output mode match ``state`` (widths from the tensor shapes, mode from ``_meta``);
    returns it with ``{"bgr": bool, "residual": bool, "att": int, "base": int}``."""
    state = dict(state)
    residual = bool(int(state.pop("_meta.residual", torch.tensor(0))))
    bgr = bool(int(state.pop("_meta.bgr", torch.tensor(0))))
    try:
        att = int(state["det_conv0.0.weight"].shape[0])
        base = int(state["conv1.0.weight"].shape[0])
    except KeyError as exc:
        raise WeightsUnavailableError(f"not an Attentive GAN generator state dict (no {exc.args[0]})") from None
    model = AttentiveGenerator(att, base, residual)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model, {"bgr": bgr, "residual": residual, "att": att, "base": base}


# --- runner ---------------------------------------------------------------------------------------------------

_DEFAULT_TILE = {"cuda": 2048}  # the CPU tiles from the memory budget (tile_plan)
_HALO = 96  # context discarded around each tile's kept part (multiple of 4)
_BLEND = 64  # width of the cross-fade between neighbouring tiles' kept parts
_MIN_TILE = minimum_tile(_HALO, _BLEND)
#: Bytes per pixel of the whole photo that stay at full size while the tiles run: the input (array and tensor), the
#: tiles' accumulators and weights (clean, 4 attention maps). Measured about 54: 2.5 GB of growth for a 12 MP photo in
#: 1536×1536 tiles (``scripts/method_memory.py --methods attentive_gan --size 4000x3000``) less one tile's network.
BUFFER_BYTES_PER_PIXEL = 64


def _pad4(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def _run_whole(model: AttentiveGenerator, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """(1, 3, h, w) any size → clean (1, 3, h, w) and the attention maps as channels (1, T, h, w), padding by
    reflection to ×4."""
    padded, h, w = _pad4(x)
    masks, _, _, out = model(padded.contiguous(memory_format=torch.channels_last))
    return {"clean": out[..., :h, :w], "attention": torch.cat(masks, 1)[..., :h, :w]}


def network_bytes_per_pixel(model: AttentiveGenerator) -> int:
    """Peak memory of the generator per pixel of its input window (CPU, float32, inference): 782–859 B/px measured
    for the project's width (att 8, base 16; ``scripts/method_memory.py --methods attentive_gan``, tcmalloc; 838 with
    glibc); the official width (att 32, base 64) keeps 4× the channels at every scale (2,879 B/px measured at 900×600
    with random weights, 3,600 declared)."""
    return int(900 * max(model.att / 8, model.base / 16))


def tile_plan(height: int, width: int, model: AttentiveGenerator, budget: float | None = None) -> TilePlan:
    """How the CPU runs a ``height``×``width`` photo: whole when the generator's activations fit the job's memory
    budget (``INTRINSIC_LAB_MAX_JOB_MEMORY`` unless ``budget`` is given), else the fewest, largest tiles that do
    (:func:`engine.ops.tiling.plan_in_budget`)."""
    return plan_in_budget(height, width, network_bytes_per_pixel(model), BUFFER_BYTES_PER_PIXEL, _HALO, _BLEND,
                          budget, align=4, min_tile=_MIN_TILE)


@torch.inference_mode()
def derain_tensor(model: AttentiveGenerator, image: torch.Tensor, tile: int | tuple[int, int] = 1024,
                  progress=lambda fraction, message: None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the generator on a (1, 3, H, W) image, whole if it fits one ``tile`` window (a side, or (height,
    width)), else in overlapping tiles (:func:`engine.ops.tiling.run_tiled`: each tile drops ``_HALO`` pixels at
    interior edges and the kept parts are cross-faded over ``_BLEND`` pixels, so memory is bounded by one tile and
    there are no seams). Returns clean (1, 3, H, W) and the attention maps (T, 1, H, W), on the CPU, float32."""
    layers = run_tiled(lambda crop, geometry: _run_whole(model, crop), image, tile, _HALO, _BLEND, align=4,
                       progress=progress)
    return layers["clean"].float(), layers["attention"].float().permute(1, 0, 2, 3)


def _build(state: dict, resolved) -> tuple[AttentiveGenerator, dict[str, Any]]:
    model, arch = build_from_state(state)
    # channels_last: oneDNN runs the narrow convolutions about 1.5× faster on the CPU.
    return model.to(memory_format=torch.channels_last), arch


def load_model(weights: str | None, device: torch.device) -> tuple[AttentiveGenerator, dict[str, Any]]:
    """The generator for a weight set (``project``, ``official``) or a file; built once per file and device
    (:func:`engine.models.load_model`)."""
    from ..models import load_model as load_cached

    return load_cached("attentive_gan", weights, device, _build)


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    from ..imaging import to_tensor

    with ctx.timed("load"):
        model, info = load_model(ctx.weights or params["weights"], ctx.device)
    tile = int(params["tile_size"])
    if tile and tile < _MIN_TILE:
        raise ParameterError(f"tile_size {tile} is below {_MIN_TILE} (two halos of {_HALO} px plus the blend)")
    image = inputs.image
    height, width = image.shape[:2]
    crop = params["size_rule"] == "crop"
    h4, w4 = (height // 4 * 4, width // 4 * 4) if crop else (height, width)
    if min(h4, w4) < 4:
        raise ParameterError(f"size_rule 'crop': the image ({width}×{height}) is smaller than 4 pixels after cropping")
    x = image[:h4, :w4]
    if info["bgr"]:
        x = x[:, :, ::-1]
    if not tile:
        tile = (_DEFAULT_TILE[ctx.device.type] if ctx.device.type in _DEFAULT_TILE
                else tile_plan(h4, w4, model).tile)
    with ctx.timed("network"):
        tensor = to_tensor(np.ascontiguousarray(x), ctx.device)
        out, masks = derain_tensor(model, tensor, tile, progress=lambda f, m: ctx.progress(0.95 * f, m))
    clean = out[0].permute(1, 2, 0).numpy()
    if info["bgr"]:
        clean = clean[:, :, ::-1]
    attention = masks[:, 0].numpy()[..., None]
    if crop and (h4, w4) != (height, width):
        # The official pre-processing keeps the top-left multiple-of-4 part; the rest (< 4 rows/columns) is the input.
        full = image.copy()
        full[:h4, :w4] = clean
        clean = full
        att_full = np.zeros((ITERATIONS, height, width, 1), np.float32)
        att_full[:, :h4, :w4] = attention
        attention = att_full
    info = {**info, "tile_size": list(tile) if isinstance(tile, tuple) else tile, "size_rule": params["size_rule"],
            "clean_clipped_fraction": float(np.mean((clean < 0) | (clean > 1))),
            "attention_range": [float(attention.min()), float(attention.max())],
            "attention_mean_per_step": [float(a.mean()) for a in attention]}
    return MethodResult(
        layers={"clean": np.clip(clean, 0.0, 1.0).astype(np.float32),
                "attention": np.clip(attention, 0.0, 1.0).astype(np.float32)},
        info=info,
    )


# --- registration ---------------------------------------------------------------------------------------------

PROJECT_WEIGHTS_SHA256 = "300abfe556a42cf688895c18d33c1fd8022a663bc1968d4aedea0e5451998997"


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="attentive_gan", name="project",
        description="Trained by this project on raindrops rendered over Kodak24, CBSD68 and LOL normal-light "
                    "photos (engine.synth.raindrops), last on heavy drops (a wet pane); narrow residual generator "
                    "from five CPU runs: on held-out rendered drops +2.41 dB over the input with heavy drops "
                    "(22.7 → 25.1 dB) and +2.00 dB with light ones (the aim is +3 dB on real photos), so it "
                    "removes only part of each drop (see the card)",
        format="safetensors", filename="attentive_gan.safetensors", sha256=PROJECT_WEIGHTS_SHA256,
        licence="MIT (this project); trained on rendered drops over research-use photographs",
        model_card="assets/model_cards/attentive_gan.md",
    ))
    declare_weights(WeightSet(
        method="attentive_gan", name="official",
        description="The authors' generator weights/gen.pkl (PyTorch state dict), converted to safetensors",
        format="torch", source_url="https://github.com/rui1996/DeRaindrop/tree/master/weights",
        source_filename="gen.pkl", licence="as published in rui1996/DeRaindrop",
        converter="engine.methods.attentive_gan:convert_official", official=True,
    ))


_declare_weights()

register(MethodSpec(
    name="attentive_gan",
    title="Attentive GAN (raindrop removal)",
    paper="Rui Qian, Robby T. Tan, Wenhan Yang, Jiajun Su, Jiaying Liu. Attentive Generative Adversarial Network for "
          "Raindrop Removal from a Single Image. CVPR 2018.",
    year=2018,
    task="derain",
    summary="A recurrent attention network (ConvLSTM) finds the raindrops on a window or lens, a contextual "
            "autoencoder restores the image behind them; trained adversarially with an attentive discriminator.",
    input_kind=InputKind.IMAGE,
    outputs=(
        OutputSpec("clean", OutputKind.IMAGE, "the photo with the raindrops removed", role=Role.CLEAN),
        OutputSpec("attention", OutputKind.IMAGE_STACK, "attention map of each of the 4 recurrent steps (where the "
                   "network finds drops; trained toward the drop mask, shown clipped to [0, 1])", "none",
                   role=Role.ATTENTION, stack_length=ITERATIONS),
    ),
    params=(
        ParamSpec("weights", "project", "which weights: the project's (trained on rendered drops) or the authors' "
                  "official gen.pkl once imported with `python -m engine weights import attentive_gan gen.pkl`",
                  type=str, choices=("project", "official")),
        ParamSpec("size_rule", "pad", "sizes must be multiples of 4: 'pad' reflects the border and crops back "
                  "(every pixel restored); 'crop' keeps the top-left multiple-of-4 part as the authors' predict.py "
                  "does and copies the last < 4 rows/columns from the input", type=str, choices=("pad", "crop")),
        ParamSpec("tile_size", 0, "tile side in pixels for large photos (0: on the CPU the whole photo when it "
                  "fits the job's memory budget, else the fewest tiles that do; 2048 on a GPU)", type=int,
                  minimum=0, maximum=8192),
    ),
    runner=lambda: run,
    learned=True,
    licence="MIT (this implementation)",
    provenance="Re-implemented from the paper and the facts of the authors' generator code ("
               "no sigmoid on the attention map, reflect-pad + average-pool after each transposed conv, multiples "
               "of 4); no code copied. The discriminator follows the paper's description.",
    min_side=8,
    bytes_per_pixel=2 * BUFFER_BYTES_PER_PIXEL,  # the CPU tiles from the job's budget (tiling.plan_in_budget)
    url="https://github.com/rui1996/DeRaindrop",
))
