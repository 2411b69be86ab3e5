"""A tiny CGIntrinsics training run: the command-line settings and a two-scene synthetic folder (CPU, seconds).

Shared by the training-loop tests (``tests/train``) and the Ray training tests (``tests/distributed``).
"""

from __future__ import annotations

from pathlib import Path

TINY = ["--set", "width=0.0625", "--set", "render_size=32", "--set", "crop=32", "--set", "batch_size=2",
        "--set", "val_scenes=2", "--set", "val_every=0", "--set", "lr=0.002", "--set", "exposure_min=1",
        "--set", "exposure_max=1", "--set", "noise=0", "--threads", "1"]


def write_tiny_synth(root: Path) -> Path:
    """Two 32×32 rendered scenes under one lighting."""
    from engine.synth import write_dataset

    write_dataset(root, n=2, size=32, lightings=1, seed=0, progress=False)
    return root
