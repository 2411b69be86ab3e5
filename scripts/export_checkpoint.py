"""Export the weights in a training run's checkpoint as a safetensors file the runners load.

A run trained with weight averaging (``--set ema=D``) exports the average; its checkpoint also keeps the last raw
weights. This writes either, through the recipe's own export (same keys and dtypes as the run's export), so the two
can be scored side by side:

    python scripts/export_checkpoint.py runs/NAME --weights raw --out runs/NAME/export/raw.safetensors
    python scripts/intrinsic_cv.py score --mit ../shared/data/mit-intrinsic \\
        --weights 'ma2018=runs/NAME_f{fold}/export/raw.safetensors'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def export_checkpoint(run_dir: Path, which: str, out: Path) -> str:
    import torch

    from engine.train.recipe import get_recipe
    from engine.weights import save_state_dict

    record = json.loads((run_dir / "run.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    if which == "average":
        if "ema" not in checkpoint:
            raise SystemExit(f"{run_dir} was trained without weight averaging (no 'ema' in its checkpoint)")
        state = {k.removeprefix("module."): v for k, v in checkpoint["ema"].items() if k.startswith("module.")}
    else:
        state = checkpoint["model"]
    recipe = get_recipe(record["method"])
    # the checkpoint's weights replace any starting point, so a fine-tune's `init` file is not read (nor needed)
    config = recipe.config({**record["config"], **({"init": ""} if "init" in record["config"] else {})})
    model = recipe.build_model(config)
    model.load_state_dict(state)
    exported, _ = recipe.export(model.eval(), config)
    return save_state_dict(exported, out, metadata={
        "method": record["method"], "steps": str(checkpoint["step"]), "seed": str(record["seed"]),
        "weights": which, "command": record["command"]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder of python -m engine train (with checkpoints/last.pt)")
    parser.add_argument("--weights", choices=("raw", "average"), default="raw",
                        help="the last raw weights (default) or the weight average of an --set ema run")
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    args = parser.parse_args(argv)
    digest = export_checkpoint(args.run_dir, args.weights, args.out)
    print(f"{args.out}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
