"""Why RetinexNet starts from TensorFlow's initialisation: train DecomNet for a few hundred steps from each start and
print the loss and how coloured the reflectance of normal-light images is (mean of max − min over RGB).

    python scripts/retinexnet_init_check.py --data ../shared/data/lol/our485 --steps 300

Same split (seed 0), patches, bfloat16 autocast where native, Adam 1e-3 as the training recipe. With PyTorch's
default initialisation the reflectance stays nearly grey far longer, because colour is a small part of the
reconstruction loss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.device import resolve_precision  # noqa: E402
from engine.imaging import read_image  # noqa: E402
from engine.methods.retinexnet import RetinexNet  # noqa: E402
from engine.train.retinexnet_recipe import PatchPairs, decom_loss, lol_pairs, split_pairs  # noqa: E402


def pytorch_default_init(model: torch.nn.Module) -> None:
    for layer in model.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.reset_parameters()  # PyTorch's own: Kaiming-uniform (a = √5) kernels, uniform biases


def run(init: str, data: str, steps: int, seed: int = 0) -> list[tuple[int, float, float, float]]:
    torch.manual_seed(seed)
    model = RetinexNet()  # TF default initialisation
    if init == "pytorch":
        pytorch_default_init(model)
    train, val = split_pairs(lol_pairs(data), 15, seed)
    highs = [torch.from_numpy(read_image(h).pixels.transpose(2, 0, 1).copy())[None] for _, h in val[:3]]
    loader = torch.utils.data.DataLoader(PatchPairs(train, 48, seed), batch_size=16, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    optimiser = torch.optim.Adam(model.decom.parameters(), 1e-3)
    precision = resolve_precision("auto", torch.device("cpu"))
    rows, step = [], 0
    while step < steps:
        for batch in loader:
            with torch.autocast("cpu", dtype=precision, enabled=precision != torch.float32):
                loss, _ = decom_loss(model, batch["low"], batch["high"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            if step % 100 == 0 or step == steps:
                with torch.no_grad():
                    colour = [float((r.amax(1) - r.amin(1)).mean()) for r, _ in map(model.decom, highs)]
                rows.append((step, float(loss.detach()), float(np.mean(colour))))
                print(f"{init:>8} step {step:5d}  loss {rows[-1][1]:.4f}  reflectance colour (high) "
                      f"{np.mean(colour):.3f}", flush=True)
            if step >= steps:
                break
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="LOL-layout folder with low/ and high/")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    for init in ("tf", "pytorch"):
        run(init, args.data, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
