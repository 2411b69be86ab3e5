"""Why RetinexNet starts from TensorFlow's initialisation: train DecomNet for a few hundred steps from each start and
print the loss and how coloured the reflectance of normal-light images is (mean of max − min over RGB).

    python scripts/retinexnet_init_check.py --data ../shared/data/lol/our485 --steps 300

Both runs use the training recipe's own loop (``train_phase``): seed-0 split, 48×48 patches, batches of 16, Adam at
a constant 1e-3, bfloat16 autocast where the CPU has it natively. With PyTorch's default initialisation the
reflectance stays nearly grey far longer, because colour is a small part of the reconstruction loss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.device import resolve_precision  # noqa: E402
from engine.imaging import read_image, to_tensor  # noqa: E402
from engine.methods.retinexnet import RetinexNet  # noqa: E402
from engine.train.retinexnet_recipe import PatchPairs, lol_pairs, split_pairs  # noqa: E402
from engine.train.retinexnet_reference import train_phase  # noqa: E402

STEPS_PER_EPOCH = 100


def check(init: str, data: str, steps: int, seed: int = 0) -> float:
    """Train DecomNet ``steps`` steps from ``init`` (``tf`` or ``pytorch``); print and return the final colourfulness
    of the reflectance of three held-out normal-light images."""
    torch.manual_seed(seed)
    model = RetinexNet()  # TF default initialisation
    if init == "pytorch":
        for layer in model.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.reset_parameters()  # PyTorch's own: Kaiming-uniform (a = √5) kernels, uniform biases
    train, val = split_pairs(lol_pairs(data), 15, seed)
    epochs = max(1, steps // STEPS_PER_EPOCH)
    device = torch.device("cpu")
    train_phase(model, "decom", PatchPairs(train, 48, seed), epochs=epochs, lr=1e-3, lr_drop_epoch=epochs,
                batch_size=16, device=device, seed=seed, log=lambda line: print(f"{init:>8} {line}", flush=True),
                precision=resolve_precision("auto", device), steps_per_epoch=STEPS_PER_EPOCH)
    with torch.no_grad():
        reflectances = [model.eval().decom(to_tensor(read_image(high).pixels))[0] for _, high in val[:3]]
    colour = float(np.mean([float((r.amax(1) - r.amin(1)).mean()) for r in reflectances]))
    print(f"{init:>8} after {epochs * STEPS_PER_EPOCH} steps: reflectance colour (normal-light images) {colour:.3f}")
    return colour


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="LOL-layout folder with low/ and high/")
    parser.add_argument("--steps", type=int, default=300, help=f"rounded down to a multiple of {STEPS_PER_EPOCH}")
    args = parser.parse_args()
    for init in ("tf", "pytorch"):
        check(init, args.data, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
