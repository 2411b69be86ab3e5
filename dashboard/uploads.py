"""Turning uploaded files into frames a method can run on, with every problem as a user-facing message.

Plain Python (no Streamlit): the Decompose page calls :func:`prepare_input`, and the bad-input tests call the same
function. A bad file never raises here: its message is collected so the page can show it next to the good files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engine.errors import ImageDecodeError, IntrinsicLabError
from engine.imaging import decode_frames, decode_image
from engine.registry import InputKind, MethodInput, MethodSpec
from engine.frame_uploads import UPLOAD_TYPES, container_kind, expand_upload

#: File types offered by the uploader (GIF only where frames of an animation make sense).
STILL_TYPES = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp")
SEQUENCE_TYPES = STILL_TYPES + ("gif",) + tuple(t for t in UPLOAD_TYPES if t not in STILL_TYPES + ("gif",))


@dataclass(frozen=True)
class UploadedFile:
    name: str
    data: bytes


@dataclass
class PreparedInput:
    """What the user uploaded for one input kind: the original files, their decoded frames, and any problems."""

    kind: InputKind
    files: list[UploadedFile]
    frames: list[np.ndarray] = field(default_factory=list)
    mask: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # harmless facts worth telling ("EXIF orientation applied")
    errors: list[str] = field(default_factory=list)  # problems that block running

    @property
    def ready(self) -> bool:
        return bool(self.frames) and not self.errors

    @property
    def method_input(self) -> MethodInput:
        return MethodInput(frames=tuple(self.frames), mask=self.mask)

    @property
    def size_label(self) -> str:
        if not self.frames:
            return ""
        h, w = self.frames[0].shape[:2]
        count = f" × {len(self.frames)} frames" if len(self.frames) > 1 else ""
        return f"{w}×{h} px{count}"


def file_types(kind: InputKind) -> list[str]:
    return list(SEQUENCE_TYPES if kind == InputKind.IMAGE_SEQUENCE else STILL_TYPES)


def _frame_count_problem(kind: InputKind, count: int) -> str | None:
    low, high = kind.frame_range
    if count < low:
        more = "another image" if low - count == 1 else f"{low - count} more images"
        return f"This input needs {kind.label}: add {more} ({count} of {low} so far)."
    if high is not None and count > high:
        return f"This input needs {kind.label}, but {count} images were given; remove {count - high}."
    return None


def prepare_input(files: Sequence[UploadedFile], kind: InputKind) -> PreparedInput:
    """Decode every file for ``kind``; collect messages for the files that cannot be used."""
    prepared = PreparedInput(kind=kind, files=list(files))
    if kind == InputKind.IMAGE_SEQUENCE:
        # A zip of frames or a video becomes its image files (engine.frame_uploads), so the store and worker see frames.
        files = _expand_containers(files, prepared)
        prepared.files = list(files)
    for upload in files:
        try:
            if kind == InputKind.IMAGE_SEQUENCE:
                frames = decode_frames(upload.data, upload.name)
                if len(frames) > 1:
                    prepared.notes.append(f"{upload.name}: {len(frames)} frames of an animation")
                prepared.frames.extend(frames)
                continue
            decoded = decode_image(upload.data, upload.name)
        except ImageDecodeError as exc:
            prepared.errors.append(str(exc))
            continue
        prepared.frames.append(decoded.pixels)
        prepared.notes.extend(f"{upload.name}: {note}" for note in decoded.notes)
        if decoded.bit_depth > 8:
            prepared.notes.append(f"{upload.name}: {decoded.bit_depth}-bit precision kept")
        if decoded.alpha is not None and len(files) == 1:
            # Matches engine.inputs.load_input: a single image's alpha becomes the foreground mask.
            prepared.mask = (decoded.alpha > 0.5).astype(np.float32)
            prepared.notes.append(f"{upload.name}: transparency used as the foreground mask")
    if prepared.errors or not files:
        return prepared
    problem = _frame_count_problem(kind, len(prepared.frames))
    if problem:
        prepared.errors.append(problem)
    shapes = {f.shape[:2] for f in prepared.frames}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h}" for h, w in sorted(shapes))
        prepared.errors.append(f"All images must have the same size; got {sizes}.")
    return prepared


def _expand_containers(files: Sequence[UploadedFile], prepared: PreparedInput) -> list[UploadedFile]:
    expanded: list[UploadedFile] = []
    for upload in files:
        kind = container_kind(upload.data, upload.name)
        if kind == "image":
            expanded.append(upload)
            continue
        try:
            members = expand_upload(upload.data, upload.name)
        except ImageDecodeError as exc:
            prepared.errors.append(str(exc))
            continue
        source = "sampled from the video" if kind == "video" else "from the archive"
        prepared.notes.append(f"{upload.name}: {len(members)} frames {source}")
        expanded.extend(UploadedFile(name, data) for name, data in members)
    return expanded


def method_problems(prepared: PreparedInput, specs: Sequence[MethodSpec]) -> dict[str, str]:
    """Per method name, why it cannot run on this input (its own size / frame-count rules); absent if it can."""
    problems: dict[str, str] = {}
    if not prepared.ready:
        return problems
    for spec in specs:
        try:
            spec.check_input(prepared.method_input)
        except IntrinsicLabError as exc:
            problems[spec.name] = str(exc)
    return problems
