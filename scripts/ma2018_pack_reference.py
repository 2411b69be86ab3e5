"""Reference scores on the ma2018 pack (MIT objects at long side 320, the resolution of ``folds.json``): the
untrained network (its initial half split, A = S = √I) and Color Retinex, scored exactly as the fold runs score.

``python scripts/ma2018_pack_reference.py PACK``   (PACK from ``python scripts/gpu_train/pack_ma2018.py PACK``)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.imaging import linear_to_srgb  # noqa: E402
from engine.methods.ma2018 import Ma2018Net  # noqa: E402
from engine.metrics import intrinsic  # noqa: E402
from engine.registry import MethodInput, RunContext, get_method  # noqa: E402
from engine.train.ma2018_recipe import load_val_objects, score_objects  # noqa: E402

OBJECTS = ["apple", "box", "cup1", "dinosaur", "frog1", "panther", "paper1", "phone", "squirrel", "teabag2"]


def main() -> int:
    torch.set_num_threads(1)
    objects = load_val_objects(Path(sys.argv[1]) / "mit", OBJECTS, 320)
    init = score_objects(Ma2018Net(16).eval(), objects, torch.device("cpu"), 320, "network")
    spec = get_method("baseline_color_retinex")
    params, run = spec.resolve_params({}), spec.runner()
    retinex = {}
    for obj in objects:
        image = linear_to_srgb(obj["image"] / obj["image"].max())
        result = run(MethodInput(frames=(image,), mask=obj["mask"].astype(np.float32)[..., None]), params,
                     RunContext(device=torch.device("cpu")))
        retinex[obj["name"]] = 0.5 * (intrinsic.lmse(obj["reflectance"], result.layers["reflectance"], obj["mask"])
                                      + intrinsic.lmse(obj["shading"], result.layers["shading"], obj["mask"]))
    for name in OBJECTS:
        print(f"{name:10s} untrained {init[name]['grosse_lmse']:.4f}  Color Retinex {retinex[name]:.4f}")
    print(f"mean       untrained {np.mean([init[n]['grosse_lmse'] for n in OBJECTS]):.4f}  "
          f"Color Retinex {np.mean(list(retinex.values())):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
