"""Identity baselines for restoration leaderboards: the output is the input.

On low-light enhancement (LOL) and raindrop removal the identity gives the PSNR/SSIM of doing nothing, the floor a
method has to clear before any number it reports means something.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, RunContext,
                        register)


def _identity(layer: str):
    def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
        return MethodResult(layers={layer: inputs.image.copy()})

    return lambda: run


for _name, _task, _layer, _ROLE, _what in (
    ("baseline_identity_enhance", "enhance", "enhanced", Role.ENHANCED, "low-light enhancement"),
    ("baseline_identity_derain", "derain", "clean", Role.CLEAN, "raindrop removal"),
):
    register(MethodSpec(
        name=_name, title=f"Baseline: identity ({_what})", paper="—", year=0, task=_task,
        summary=f"Returns the input unchanged: the do-nothing reference for {_what} scores.",
        input_kind=InputKind.IMAGE,
        outputs=(OutputSpec(_layer, OutputKind.IMAGE, "the input image, unchanged", colour_space="srgb", role=_ROLE),),
        params=(), runner=_identity(_layer), is_baseline=True, min_side=1,
        bytes_per_pixel=32,  # measured 27 (scripts/method_memory.py, 768×1152)
        provenance="Written for Intrinsic Lab.",
    ))
