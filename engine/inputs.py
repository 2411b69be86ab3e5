"""Loading user inputs from files into a :class:`~engine.registry.MethodInput`.

One image → one frame; several image files or a folder of frames → a sequence (sorted by name);
an animated GIF/WebP → its frames; a zip of frames or a video → its frames (see ``engine.sequences``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ImageDecodeError, InputKindError
from .imaging import decode_image
from .registry import InputKind, MethodInput
from .sequences import frames_from_upload

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageDecodeError(f"{folder}: the folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_input(paths: list[str | Path], kind: InputKind) -> MethodInput:
    """Read the files a user named for a method of input kind ``kind``."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise ImageDecodeError(f"{p}: no such file or folder")
    if len(paths) == 1 and paths[0].is_dir():
        paths = _frame_files(paths[0])
    frames: list[np.ndarray] = []
    mask = None
    for p in paths:
        if p.is_dir():
            raise ImageDecodeError(f"{p}: is a folder; give either one folder or image files")
        data = p.read_bytes()
        if kind == InputKind.IMAGE_SEQUENCE:
            frames.extend(f.pixels for f in frames_from_upload(data, p.name))
        else:
            decoded = decode_image(data, p.name)
            frames.append(decoded.pixels)
            if decoded.alpha is not None and mask is None and len(paths) == 1:
                mask = (decoded.alpha > 0.5).astype(np.float32)
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h}" for h, w in sorted(shapes))
        raise InputKindError(f"all frames must have the same size; got {sizes}")
    return MethodInput(frames=tuple(frames), mask=mask)
