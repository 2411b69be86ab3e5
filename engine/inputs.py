"""Loading user inputs from files into a :class:`~engine.registry.MethodInput`.

One image → one frame; several image files or a folder of frames → a sequence (sorted by name);
an animated GIF/WebP → its frames; a zip of frames or a video → its frames (see ``engine.frame_uploads``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ImageDecodeError, InputKindError
from .imaging import decode_image
from .registry import InputKind, MethodInput
from .frame_uploads import frames_from_upload

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageDecodeError(f"{folder}: the folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def input_from_files(files: list[tuple[str, bytes]], kind: InputKind, *, label: str = "input") -> MethodInput:
    """Decode named file contents into a :class:`MethodInput` for a method of input kind ``kind``.

    Sequences take every frame of every file (zip, video, animated image) in order; the alpha channel of a lone
    image becomes the foreground mask. Shared by the CLI and the worker so both read inputs the same way.
    """
    frames: list[np.ndarray] = []
    mask = None
    for name, data in files:
        if kind == InputKind.IMAGE_SEQUENCE:
            frames.extend(f.pixels for f in frames_from_upload(data, name))
            continue
        decoded = decode_image(data, name)
        frames.append(decoded.pixels)
        if decoded.alpha is not None and len(files) == 1:
            mask = (decoded.alpha > 0.5).astype(np.float32)
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h}" for h, w in sorted(shapes))
        raise InputKindError(f"{label}: all frames must have the same size; got {sizes}")
    return MethodInput(frames=tuple(frames), mask=mask)


def load_input(paths: list[str | Path], kind: InputKind) -> MethodInput:
    """Read the files a user named for a method of input kind ``kind``."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise ImageDecodeError(f"{p}: no such file or folder")
    if len(paths) == 1 and paths[0].is_dir():
        paths = _frame_files(paths[0])
    for p in paths:
        if p.is_dir():
            raise ImageDecodeError(f"{p}: is a folder; give either one folder or image files")
    label = str(paths[0].parent if len(paths) > 1 else paths[0])
    return input_from_files([(p.name, p.read_bytes()) for p in paths], kind, label=label)
