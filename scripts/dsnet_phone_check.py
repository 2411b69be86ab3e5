"""Phone-photo path check: the INTEL-TAU images white-balanced with their ground truth, exposed (97th percentile at
1), sRGB-encoded to 8 bits -- stand-ins for a camera's finished JPEG (no colour matrix, no tone curve beyond sRGB).
DS-Net with input=auto should find them neutral; prints its angle to (1, 1, 1) and grey world's on the linearised
photo, per image and on average.

    python scripts/dsnet_phone_check.py [WEIGHTS]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from engine.datasets import get_adapter  # noqa: E402
from engine.imaging import linear_to_srgb, srgb_to_linear  # noqa: E402
from engine.metrics.angular import illuminant_error  # noqa: E402
from engine.registry import MethodInput, run_method  # noqa: E402

weights = sys.argv[1] if len(sys.argv) > 1 else None
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
a = get_adapter("color-constancy")
f = a.validate(SHARED / "data/color-constancy/intel-tau-imx135")
rows = []
for item in a.item_ids(f, "all"):
    s = a.load(f, item)
    gt = np.asarray(s.truth["illuminant"])
    wb = s.frames[0] / (gt / gt.max())
    photo = (np.round(linear_to_srgb(np.clip(wb / np.percentile(wb, 97), 0, 1)) * 255) / 255).astype(np.float32)
    r, _, _ = run_method("dsnet", MethodInput(frames=(photo,)), None, device="cpu", weights=weights)
    g, _, _ = run_method("baseline_grey_world", MethodInput(frames=(srgb_to_linear(photo),)), None, device="cpu")
    rows.append((illuminant_error([1, 1, 1], r.values["illuminant"]),
                 illuminant_error([1, 1, 1], g.values["illuminant"])))
    print(item[-30:], "dsnet %.2f  grey-world %.2f" % rows[-1], r.info["input_encoding"], flush=True)
print("mean to neutral: dsnet %.2f, grey world %.2f" % tuple(np.mean(rows, axis=0)))
