"""Score the Ma et al. recipe's multi-image teacher (``engine.train.multilight.multi_image_albedo``) on the MIT
objects, and choose its Retinex threshold per cross-validation fold from the fold's *training* objects only.

The teacher sees only an object's ``light01..10`` photos (no ground truth); the ground truth here only scores it.
Scores: Grosse LMSE (½ albedo + ½ shading LMSE, ``engine.metrics.intrinsic.lmse``) at the training resolution
(long side 320), the shading being the benchmark input (``diffuse.png``) ÷ the teacher albedo, in grey.

    python scripts/ma2018_teacher.py --mit ../shared/data/mit-intrinsic [--thresholds 0,0.1,0.15,0.2,0.3,0.4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.metrics import intrinsic  # noqa: E402
from engine.train.intrinsic_data import FOLDS, MIT_OBJECTS  # noqa: E402
from engine.train.ma2018_recipe import load_val_objects  # noqa: E402
from engine.train.multilight import load_multilight_folder, multi_image_albedo  # noqa: E402


def teacher_scores(mit: Path, thresholds: list[float], max_side: int = 320) -> dict[float, dict[str, float]]:
    scores: dict[float, dict[str, float]] = {t: {} for t in thresholds}
    for name in MIT_OBJECTS:
        scene = load_multilight_folder(mit, include=[name], max_side=max_side)[0]
        truth = load_val_objects(mit, [name], max_side)[0]
        for t in thresholds:
            albedo = multi_image_albedo(scene.frames, scene.mask, t)
            shading = truth["image"].mean(axis=2) / np.clip(albedo.mean(axis=2), 1e-4, None)
            shading = (shading * (scene.mask > 0))[..., None]
            a = intrinsic.lmse(truth["reflectance"], albedo, truth["mask"])
            s = intrinsic.lmse(truth["shading"], shading, truth["mask"])
            scores[t][name] = 0.5 * (a + s)
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mit", required=True)
    parser.add_argument("--thresholds", default="0,0.1,0.15,0.2,0.3,0.4")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    scores = teacher_scores(Path(args.mit), thresholds)
    print("threshold " + " ".join(f"{n[:8]:>8s}" for n in MIT_OBJECTS) + "     mean")
    for t in thresholds:
        print(f"{t:9.2f} " + " ".join(f"{scores[t][n]:8.4f}" for n in MIT_OBJECTS)
              + f" {np.mean(list(scores[t].values())):8.4f}")
    chosen = []
    for k, held in enumerate(FOLDS):
        train = [n for n in MIT_OBJECTS if n not in held]
        best = min(thresholds, key=lambda t: np.mean([scores[t][n] for n in train]))
        chosen.append(best)
        print(f"fold {k} ({'+'.join(held)} held out): threshold {best:g} is best on its 8 training objects")
    if args.json:
        Path(args.json).write_text(json.dumps({"scores": {str(t): v for t, v in scores.items()},
                                               "chosen_per_fold": chosen}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
