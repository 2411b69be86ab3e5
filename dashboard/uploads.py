"""Turning uploaded files into frames a method can run on, with every problem as a user-facing message.

Plain Python (no Streamlit): the Decompose page calls :func:`prepare_input`, and the bad-input tests call the same
function. A bad file never raises here: its message is collected so the page can show it next to the good files.

The dashboard process never decodes an upload at full size. Every file is priced from its header (frames × width ×
height, checked against the budgets of ``engine.limits`` and, per method, its declared memory), and only a preview
is decoded: at most ``PREVIEW_FRAMES`` frames, each reduced to ``PREVIEW_SIDE`` pixels on its longest side (small
images are decoded exactly). The worker decodes the stored files at full size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from engine.errors import ImageDecodeError, IntrinsicLabError
from engine.imaging import IMAGE_SUFFIXES, decode_preview, preview_frames, probe_image
from engine.limits import PREVIEW_FRAMES, check_file_size, check_frames, check_job_memory, limits
from engine.registry import InputKind, MethodInput, MethodSpec
from engine.frame_uploads import UPLOAD_TYPES, SequenceLimits, container_kind, expand_upload

#: File types offered by the uploader (GIF only where frames of an animation make sense).
STILL_TYPES = tuple(s.lstrip(".") for s in IMAGE_SUFFIXES)
SEQUENCE_TYPES = STILL_TYPES + ("gif",) + tuple(t for t in UPLOAD_TYPES if t not in STILL_TYPES + ("gif",))


@dataclass(frozen=True)
class UploadedFile:
    name: str
    data: bytes


@dataclass
class PreparedInput:
    """What the user uploaded for one input kind: the original files, previews of their frames, and any problems.

    ``frames`` are previews (the first ``PREVIEW_FRAMES`` frames, reduced when large); ``frame_count``, ``width``
    and ``height`` are what the files' headers declare for the whole input.
    """

    kind: InputKind
    files: list[UploadedFile]
    frames: list[np.ndarray] = field(default_factory=list)
    mask: np.ndarray | None = None  # preview-sized foreground mask from a lone image's alpha
    notes: list[str] = field(default_factory=list)  # harmless facts worth telling ("EXIF orientation applied")
    errors: list[str] = field(default_factory=list)  # problems that block running
    frame_count: int = 0
    width: int = 0
    height: int = 0

    @property
    def ready(self) -> bool:
        return self.frame_count > 0 and bool(self.frames) and not self.errors

    @property
    def method_input(self) -> MethodInput:
        """Stand-in frames of the declared full size (read-only views of one zero pixel: no memory), for checking a
        method's input rules; never for running a method."""
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.float32), (self.height, self.width, 3))
        return MethodInput(frames=(blank,) * self.frame_count)

    @property
    def size_label(self) -> str:
        if not self.frame_count:
            return ""
        count = f" × {self.frame_count} frames" if self.frame_count > 1 else ""
        return f"{self.width}×{self.height} px{count}"


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


def _sequence_limits() -> SequenceLimits:
    lim = limits()
    return SequenceLimits(max_frames=lim.max_frames, max_zip_bytes=min(1 << 30, lim.max_file_bytes))


def prepare_input(files: Sequence[UploadedFile], kind: InputKind) -> PreparedInput:
    """Price every file for ``kind`` from its header, decode previews; collect messages for unusable files."""
    prepared = PreparedInput(kind=kind, files=list(files))
    sequence = kind == InputKind.IMAGE_SEQUENCE
    if sequence:
        # A zip of frames or a video becomes its image files (engine.frame_uploads), so the store and worker see frames.
        files = _expand_containers(files, prepared)
        prepared.files = list(files)
    sizes: dict[tuple[int, int], str] = {}
    headers = []
    for upload in files:  # first every header: the whole submission is priced before anything is decoded
        try:
            check_file_size(len(upload.data), upload.name)
            header = probe_image(upload.data, upload.name)
            if header.frames > 1 and not sequence:
                raise ImageDecodeError(
                    f"{upload.name}: an animated {header.format} with {header.frames} frames; upload a still image, "
                    f"or use it as an image sequence")
            if prepared.frame_count + header.frames > limits().max_frames:
                check_frames(prepared.frame_count + header.frames, header.width, header.height, upload.name)
        except IntrinsicLabError as exc:
            prepared.errors.append(str(exc))
            continue
        headers.append((upload, header))
        prepared.frame_count += header.frames
        sizes.setdefault((header.height, header.width), upload.name)
    if headers and not prepared.errors and len(sizes) == 1:
        (height, width), = sizes
        label = files[0].name if len(files) == 1 else f"these {len(files)} files"
        try:
            check_frames(prepared.frame_count, width, height, label)
        except IntrinsicLabError as exc:
            prepared.errors.append(str(exc))
            headers = []
    for upload, header in headers:  # then previews only
        room = PREVIEW_FRAMES - len(prepared.frames)
        try:
            if header.frames > 1:
                previews = preview_frames(upload.data, upload.name, room) if room > 0 else []
                prepared.notes.append(f"{upload.name}: {header.frames} frames of an animation")
            elif room > 0 or not sequence:
                decoded = decode_preview(upload.data, upload.name)
                previews = [decoded.pixels]
                prepared.notes.extend(f"{upload.name}: {note}" for note in decoded.notes)
                if decoded.bit_depth > 8:
                    prepared.notes.append(f"{upload.name}: {decoded.bit_depth}-bit precision kept")
                if decoded.alpha is not None and len(files) == 1:
                    # Matches engine.inputs: a single image's alpha becomes the foreground mask (in the worker).
                    prepared.mask = (decoded.alpha > 0.5).astype(np.float32)
                    prepared.notes.append(f"{upload.name}: transparency used as the foreground mask")
            else:
                previews = []
        except IntrinsicLabError as exc:
            prepared.errors.append(str(exc))
            prepared.frame_count -= header.frames
            continue
        prepared.frames.extend(previews)
    if sizes:
        prepared.height, prepared.width = next(iter(sizes))
    if prepared.errors or not files:
        return prepared
    problem = _frame_count_problem(kind, prepared.frame_count)
    if problem:
        prepared.errors.append(problem)
    if len(sizes) > 1:
        listed = ", ".join(f"{w}×{h}" for h, w in sorted(sizes))
        prepared.errors.append(f"All frames must have the same size; got {listed}.")
    return prepared


def _expand_containers(files: Sequence[UploadedFile], prepared: PreparedInput) -> list[UploadedFile]:
    expanded: list[UploadedFile] = []
    for upload in files:
        kind = container_kind(upload.data, upload.name)
        if kind == "image":
            expanded.append(upload)
            continue
        try:
            check_file_size(len(upload.data), upload.name)
            if kind == "video":  # priced from the container's header before any frame is decoded
                from engine.frame_uploads import probe_video

                count, width, height = probe_video(upload.data, upload.name, limits=_sequence_limits())
                check_frames(count, width, height, upload.name)
            members = expand_upload(upload.data, upload.name, limits=_sequence_limits())
        except IntrinsicLabError as exc:
            prepared.errors.append(str(exc))
            continue
        source = "sampled from the video" if kind == "video" else "from the archive"
        prepared.notes.append(f"{upload.name}: {len(members)} frames {source}")
        expanded.extend(UploadedFile(name, data) for name, data in members)
    return expanded


def check_method(prepared: PreparedInput, spec: MethodSpec, params: Mapping[str, Any] | None = None) -> None:
    """Raise the user-facing error that stops ``spec`` running on this upload: its input rules (frame count, size)
    or its declared memory at this size with these parameters (``engine.limits``)."""
    spec.check_input(prepared.method_input)
    check_job_memory(spec, prepared.frame_count, prepared.width, prepared.height, params)


def method_problems(prepared: PreparedInput,
                    requests: Sequence[tuple[MethodSpec, Mapping[str, Any]]]) -> dict[str, str]:
    """Per method name, why it cannot run on this input with the request's parameters (its own size / frame-count /
    memory rules); absent if it can."""
    problems: dict[str, str] = {}
    if not prepared.ready:
        return problems
    for spec, params in requests:
        try:
            check_method(prepared, spec, params)
        except IntrinsicLabError as exc:
            problems[spec.name] = str(exc)
    return problems
