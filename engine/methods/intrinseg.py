"""IntrinSeg: Joint Learning of Intrinsic Images and Semantic Segmentation.

Anil S. Baslamisli, Thomas T. Groenestege, Partha Das, Hoang-An Le, Sezer Karaoglu and Theo Gevers. ECCV 2018.
https://github.com/Morpheus3000/intrinseg

One encoder and three task branches (albedo, shading, semantic segmentation) that exchange features at every decoder
level: the middle blocks of the three tasks and every decoder stage are concatenated with each other and with the
encoder skip before the next stage, so segmentation can tell the intrinsic branches where objects begin and end and
vice versa. The authors trained it on their rendered garden scenes with 16 classes; the weights this project ships
were trained on ``engine.synth`` scenes (16 classes of :data:`engine.synth.CLASS_NAMES`) and the MIT intrinsic
objects (see the model card). The authors' ``final.checkpoint`` can be imported with
``python -m engine weights import intrinseg final.checkpoint``.

Architecture (``../shared/docs/methods.md`` §7, key layout ``../shared/docs/official-weights.md`` §3):

* encoder: conv 3×3 + BN + ReLU with 16, 32, 64, 128, 256, 256 channels, stride 2 from the second on
  (a 480×352 input reaches 15×11);
* middle, per task: 4 × [conv 3×3 256→256, BN, ReLU]; the three results and the last encoder feature are
  concatenated (1024 channels);
* decoder, 5 levels with separate weights per task: conv 3×3 → 256, 128, 64, 32, 16, BN, ReLU, bilinear ×2; after
  each level the three task outputs are concatenated with the encoder skip of that resolution;
* heads: conv 3×3 → 16, BN, ReLU, conv 3×3 → C, BN, ReLU (C = 3 albedo, 3 shading, 16 classes). Every head ends in
  BN + ReLU, the segmentation head included; the softmax over classes is applied only at inference.

``width`` scales every channel count (1.0 = the authors' network, 19.9 M parameters). Inputs are scaled by their own
maximum (as the authors' ``infer.py`` does); H and W must be multiples of 32, so the runner resizes (``mode``
``official``: to 352 wide × 480 high, as the authors did) or keeps the aspect ratio and pads (``mode`` ``aspect``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import load_network
from ..ops.tta import mirror_averaged, tta_param
from ..limits import DownscaledMemory
from ..registry import (InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, Role,
                        RunContext, Task, register)

ENCODER = (16, 32, 64, 128, 256, 256)
MIDDLE = 256
DECODER = (256, 128, 64, 32, 16)
HEAD = 16
NUM_CLASSES = 16
TASK_OUTPUTS = (3, 3, NUM_CLASSES)  # albedo, shading, segmentation
MULTIPLE = 2 ** (len(ENCODER) - 1)  # 32
OFFICIAL_SIZE = (480, 352)  # (H, W) the authors resize every input to
OFFICIAL_KEYS = 273  # entries of the authors' state dict (234 without num_batches_tracked)


def class_names() -> tuple[str, ...]:
    """The 16 classes the project's weights segment (``engine.synth``'s label set; index = label value)."""
    from ..synth.scene import CLASS_NAMES

    return CLASS_NAMES


def palette(count: int = NUM_CLASSES) -> np.ndarray:
    """(count, 3) uint8 colours per class: the dashboard's label palette (golden-angle hues, class 0 grey)."""
    import cv2

    index = np.arange(count)
    hue = ((index * 137.508) % 360 / 2).astype(np.uint8)
    sat = np.where(index == 0, 0, 200).astype(np.uint8)
    val = np.where(index == 0, 60, 230).astype(np.uint8)
    return cv2.cvtColor(np.stack([hue, sat, val], axis=1)[None], cv2.COLOR_HSV2RGB)[0]


def legend() -> list[dict[str, Any]]:
    """``[{"index", "name", "colour": "#rrggbb"}]`` for the segmentation's colours."""
    colours = palette()
    return [{"index": i, "name": name, "colour": "#%02x%02x%02x" % tuple(int(c) for c in colours[i])}
            for i, name in enumerate(class_names())]


# --- building blocks ------------------------------------------------------------------------------------------------

def _scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _middle(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += conv_bn_relu(channels, channels)
    return nn.Sequential(*layers)


def _decoder_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(c_in, c_out), nn.Upsample(scale_factor=2, mode="bilinear",
                                                                   align_corners=False))


def _head(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(c_in, hidden), *conv_bn_relu(hidden, c_out))


# --- network --------------------------------------------------------------------------------------------------------

class IntrinSegNet(nn.Module):
    """``forward(x)`` with x (N, 3, H, W), H and W multiples of 32 → (albedo (N,3,H,W), shading (N,3,H,W),
    class scores (N,16,H,W)). Class scores are the head's BN+ReLU output in training mode and softmax
    probabilities in eval mode, as in the authors' code. Module names match the authors' state dict.

    >>> net = IntrinSegNet(width=0.25).eval()
    >>> albedo, shading, probs = net(torch.rand(1, 3, 64, 32))
    >>> tuple(probs.shape), round(float(probs.sum(1).mean()), 4)
    ((1, 16, 64, 32), 1.0)
    """

    def __init__(self, width: float = 1.0, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.width, self.num_classes = width, num_classes
        enc = [_scaled(c, width) for c in ENCODER]
        mid = _scaled(MIDDLE, width)
        dec = [_scaled(c, width) for c in DECODER]
        head = _scaled(HEAD, width)
        c_in = 3
        for i, c_out in enumerate(enc):
            setattr(self, f"conv{i}", nn.Sequential(*conv_bn_relu(c_in, c_out, stride=1 if i == 0 else 2)))
            c_in = c_out
        self.mid = nn.ModuleList([_middle(mid) for _ in range(3)])  # mid == enc[-1]: 256·width
        skips = list(reversed(enc[:-1]))  # x4, x3, x2, x1, x0
        c_in = 3 * mid + enc[-1]
        for level, c_out in enumerate(dec):
            setattr(self, f"deconv{level}", nn.ModuleList([_decoder_stage(c_in, c_out) for _ in range(3)]))
            c_in = 3 * c_out + skips[level]
        outs = (3, 3, num_classes)
        self.output = nn.ModuleList([_head(c_in, head, c) for c in outs])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % MULTIPLE or x.shape[-2] % MULTIPLE:
            raise ValueError(f"Expected (N, 3, H, W) with H, W multiples of {MULTIPLE}, got {tuple(x.shape)}")
        features = []
        for i in range(len(ENCODER)):
            x = getattr(self, f"conv{i}")(x)
            features.append(x)
        tasks = [m(x) for m in self.mid]
        y = torch.cat(tasks + [x], 1)
        for level, skip in enumerate(reversed(features[:-1])):
            stage = getattr(self, f"deconv{level}")
            y = torch.cat([s(y) for s in stage] + [skip], 1)
        albedo, shading, scores = (head(y) for head in self.output)
        if not self.training:
            scores = torch.softmax(scores, dim=1)
        return albedo, shading, scores


def prepare(image: torch.Tensor, quantise: bool = False) -> torch.Tensor:
    """The authors' input scaling: each image divided by its own maximum over all channels (optionally truncated
    to 8 bits, as their ``uint8(x·255/max)/255``). (N, 3, H, W) in, same out."""
    peak = image.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
    x = image / peak
    if quantise:
        x = torch.floor(x * 255.0) / 255.0
    return x


# --- official checkpoint ---------------------------------------------------------------------------------------------

def convert_official(path) -> dict[str, torch.Tensor]:
    """The authors' ``final.checkpoint`` (a plain ``torch.save(net.state_dict())``, no ``module.`` prefix) onto
    :class:`IntrinSegNet` (width 1.0). Our module names are theirs, so keys must match one to one and every shape
    is checked; ``num_batches_tracked`` may be absent (added as 0). A ``module.`` prefix (DataParallel) is stripped."""
    from ..errors import WeightsUnavailableError
    from ..weights import load_state_dict

    theirs = load_state_dict(path)
    if isinstance(theirs, Mapping) and "state_dict" in theirs and isinstance(theirs["state_dict"], Mapping):
        theirs = theirs["state_dict"]
    theirs = {(k[7:] if k.startswith("module.") else k): v for k, v in theirs.items()}
    ours = IntrinSegNet(width=1.0).state_dict()
    unexpected = sorted(set(theirs) - set(ours))
    missing = sorted(k for k in set(ours) - set(theirs) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise WeightsUnavailableError(
            f"{path}: not the IntrinSeg checkpoint ({len(theirs)} entries; missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; expected {OFFICIAL_KEYS} keys as in official-weights.md §3)")
    converted = {}
    for key, reference in ours.items():
        if key not in theirs:
            converted[key] = torch.zeros((), dtype=torch.long)
            continue
        tensor = theirs[key]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise WeightsUnavailableError(f"{path}: {key} has shape {tuple(tensor.shape)}, expected "
                                          f"{tuple(reference.shape)}")
        converted[key] = tensor.long() if key.endswith("num_batches_tracked") else tensor.float()
    return converted


def model_from_state(state: Mapping[str, torch.Tensor]) -> IntrinSegNet:
    """Build a network whose width matches the state dict (conv5's output channels / 256) and load it (float32)."""
    width = state["conv5.0.weight"].shape[0] / ENCODER[-1]
    classes = state["output.2.3.weight"].shape[0]
    model = IntrinSegNet(width=width, num_classes=classes)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    return model.eval()


# --- runner ---------------------------------------------------------------------------------------------------------

def _load(weights: str | None, device: torch.device) -> tuple[IntrinSegNet, dict]:
    return load_network("intrinseg", weights, device, model_from_state)


def network_size(h: int, w: int, mode: str, max_side: int) -> tuple[int, int]:
    """The (H, W) the network sees: the authors' 480×352, or the aspect-preserving size (longest side at most
    ``max_side``), each side rounded to a multiple of 32."""
    if mode == "official":
        return OFFICIAL_SIZE
    scale = min(1.0, max_side / max(h, w))
    return (max(MULTIPLE, int(round(h * scale / MULTIPLE)) * MULTIPLE),
            max(MULTIPLE, int(round(w * scale / MULTIPLE)) * MULTIPLE))


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    h, w = size
    if array.shape[:2] == (h, w):
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif h < array.shape[0] or w < array.shape[1]:
        interpolation = cv2.INTER_AREA  # anti-aliased shrink (the authors used PIL's ANTIALIAS)
    else:
        interpolation = cv2.INTER_LINEAR
    out = cv2.resize(array, (w, h), interpolation=interpolation)
    return out[:, :, None] if out.ndim == 2 else out


def decompose(image: np.ndarray, model: IntrinSegNet, device: torch.device, mode: str = "aspect",
              max_side: int = 512, tta: str = "flip") -> dict[str, np.ndarray]:
    """sRGB (H, W, 3) → albedo, shading (H, W, 3, linear, up to scale), labels (H, W) uint8, confidence (H, W, 1)
    and the per-class mean probability (16,). The network runs at :func:`network_size`; albedo and shading are
    resized back bilinearly, labels by nearest neighbour (so a 12 MP input never holds 16 full-size maps)."""
    h, w = image.shape[:2]
    size = network_size(h, w, mode, max_side)
    small = np.ascontiguousarray(_resize(np.asarray(image, dtype=np.float32), size))
    x = torch.from_numpy(small.transpose(2, 0, 1)).unsqueeze(0).to(device)
    with torch.no_grad():
        # albedo and shading (≥ 0, linear) are averaged geometrically with the mirrored pass; the class
        # probabilities arithmetically (engine.ops.tta)
        albedo, shading, probs = mirror_averaged(model, prepare(x, quantise=mode == "official"), tta, geometric=(0, 1),
                                                  concurrent=True)
    to_hwc = lambda t: t[0].permute(1, 2, 0).float().cpu().numpy()  # noqa: E731
    confidence, labels = probs.max(dim=1)
    labels = _resize(labels[0].to(torch.uint8).cpu().numpy(), (h, w), nearest=True)
    return {
        "albedo": _resize(to_hwc(albedo), (h, w)), "shading": _resize(to_hwc(shading), (h, w)),
        "labels": labels[..., 0] if labels.ndim == 3 else labels,  # (h, w) whether or not it was resized
        "confidence": np.clip(_resize(confidence[0, :, :, None].float().cpu().numpy(), (h, w)), 0, 1),
        "class_probability": probs[0].float().mean(dim=(1, 2)).cpu().numpy(),
    }


def _normalise(layer: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    ref = float(np.percentile(layer[::4, ::4], percentile))
    scale = 1.0 / max(ref, 1e-6)
    return (layer * scale).astype(np.float32), scale


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    with ctx.timed("load"):
        model, weights_info = _load(ctx.weights, ctx.device)
    ctx.progress(0.3, "decomposing and segmenting")
    with ctx.timed("inference"):
        out = decompose(inputs.image, model, ctx.device, str(params["mode"]), int(params["max_side"]),
                        str(params["tta"]))
    # Intrinsic layers are only defined up to a scale: each is shown with its 99th percentile at 1.
    albedo, a_scale = _normalise(out["albedo"])
    shading, s_scale = _normalise(out["shading"])
    names = class_names()
    present = np.bincount(out["labels"].ravel(), minlength=len(names))[:len(names)] / out["labels"].size
    ctx.progress(1.0, "done")
    return MethodResult(
        layers={"albedo": albedo, "shading": shading, "segmentation": out["labels"],
                "confidence": out["confidence"].astype(np.float32)},
        values={"class_confidence": out["class_probability"].astype(float).tolist()},
        info={"weights": weights_info, "albedo_scale": a_scale, "shading_scale": s_scale,
              "network_width": model.width, "network_size": list(network_size(*inputs.image.shape[:2],
                                                                               str(params["mode"]),
                                                                               int(params["max_side"]))),
              "classes": list(names), "legend": legend(),
              "class_area": {names[i]: round(float(present[i]), 4) for i in range(len(names)) if present[i] > 0}})


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="intrinseg", name="mit",
        description="trained by this project on the CPU on engine.synth scenes (photo textures) and the 10 MIT "
                    "objects in ../shared (width 0.5, float16); 5-fold cross-validated Grosse LMSE on those objects "
                    "0.0245 (with the default mirror averaging; 0.0255 when the folds are trained with another seed), "
                    "only just below the Color Retinex baseline's 0.0259; more of an albedo's fine texture goes "
                    "into its shading than with Color Retinex (0.26 against 0.16 on held-out renders, "
                    "scripts/intrinsic_leak.py; see the card)",
        filename="intrinseg-mit.safetensors",
        sha256="11d71b90b51f784667a32e12e8b7f4572d3e54944eb197839e164508766d4e79",
        licence="MIT (project weights); training data: engine.synth, Kodak/BSDS photo textures, MIT Intrinsic "
                "Images (research use)",
        model_card="assets/model_cards/intrinseg-mit.md",
    ))
    declare_weights(WeightSet(
        method="intrinseg", name="official", official=True, format="torch",
        description="the authors' network trained on their synthetic garden scenes (full width, 16 garden classes)",
        source_url="https://github.com/Morpheus3000/intrinseg",
        source_filename="final.checkpoint",
        licence="see the authors' repository", converter="engine.methods.intrinseg:convert_official",
    ))


_declare_weights()

SPEC = register(MethodSpec(
    name="intrinseg", title="IntrinSeg", year=2018, task=Task.INTRINSIC,
    paper="A. S. Baslamisli, T. T. Groenestege, P. Das, H.-A. Le, S. Karaoglu and T. Gevers. Joint Learning of "
          "Intrinsic Images and Semantic Segmentation. ECCV 2018.",
    summary="One encoder, three exchanging decoders: albedo, shading and a 16-class segmentation from one photo.",
    input_kind=InputKind.IMAGE,
    outputs=(OutputSpec("albedo", OutputKind.IMAGE, "albedo (reflectance), up to scale", "linear",
                        role=Role.REFLECTANCE),
             OutputSpec("shading", OutputKind.IMAGE, "colour shading, up to scale", "linear", role=Role.SHADING),
             OutputSpec("segmentation", OutputKind.LABELS, "semantic class per pixel (16 classes of engine.synth; "
                                                           "legend in the run's info)", "none",
                        role=Role.SEGMENTATION),
             OutputSpec("confidence", OutputKind.GREY, "probability of the chosen class per pixel", "none",
                        role=Role.CONFIDENCE),
             OutputSpec("class_confidence", OutputKind.VECTOR, "mean probability of each of the 16 classes over "
                                                               "the image (class order as in the legend)", "none",
                        role=Role.CONFIDENCE)),
    params=(ParamSpec("mode", "aspect", "aspect: keep the aspect ratio (longest side ≤ max_side, multiples of 32); "
                                        "official: resize to 352×480 like the authors", str,
                      choices=("aspect", "official")),
            ParamSpec("max_side", 512, "longest side the network sees in aspect mode (outputs are resized back)",
                      int, 64, 2048),
            tta_param()),
    runner=lambda: run, learned=True, min_side=8,
    # The network sees the photo downscaled to max_side. scripts/method_memory.py --methods intrinseg --size 4000x3000
    # (-p intrinseg.max_side=2048), width 0.5 with the two mirror passes side by side: 1.0 GB of growth at the default
    # 512, 2.0 GB at 2048 (peaks 1289 and 2225 MiB), so about 79 bytes per photo pixel and 333 per network pixel;
    # declared with a margin, so 12 MP at 2048 (2.2 GB declared) is refused under the default 2.1 GB job budget.
    memory=DownscaledMemory("max_side", full_bytes=90, network_bytes=360),
    provenance="architecture and key layout from the paper and the authors' released checkpoint; weights trained by "
               "this project (engine/train/intrinseg_recipe.py)",
    url="https://github.com/Morpheus3000/intrinseg",
))
