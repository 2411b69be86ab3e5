"""Procedural intrinsic scenes with exact ground truth (image = albedo · shading + specular, in linear RGB).

``sample_scene(seed)`` draws a scene, ``render_scene(scene, size, device)`` renders every layer, and
``render_sample(seed, ...)`` does both. ``SyntheticDataset`` renders on the fly for training; ``write_dataset``
writes a folder (``python -m engine.synth --n 1000 --out DIR``); ``python -m engine.synth --benchmark`` prints the
speed. See ``docs/training.md`` for a picture of the layers.
"""

from .dataset import (SyntheticDataset, SyntheticFolder, benchmark, is_synthetic_folder, read_sample, render_sample,
                      write_dataset)
from .render import RenderOptions, render_scene, sh_irradiance
from .scene import CLASS_NAMES, sample_scene

__all__ = ["CLASS_NAMES", "RenderOptions", "SyntheticDataset", "SyntheticFolder", "benchmark", "is_synthetic_folder",
           "read_sample", "render_sample", "render_scene", "sample_scene", "sh_irradiance", "write_dataset"]
