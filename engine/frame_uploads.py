"""Turning uploaded files into the frames of an image sequence (see ``engine.sequence_layers`` for its layers).

A sequence arrives as any mix of: several image files (one frame each; an animated GIF/WebP/TIFF gives all its
frames), a zip archive of frames, or a short video from which ``n_frames`` frames are sampled evenly.
Every path ends in :func:`check_same_size`, whose error names the frames that differ.

Uploads are hostile until proven otherwise. Zip archives are read in memory (nothing is extracted to disk), and
are refused when a member name could escape a folder (``..``, absolute or drive paths), when they hold too many
members, or when the declared or the actually inflated size passes a limit (zip bombs declare small sizes, so
inflation is metered while reading). Videos are written to a private temporary file because OpenCV's
``VideoCapture`` only reads from paths; the file is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import cv2
import numpy as np

from .errors import ImageDecodeError, ImageTooLargeError, InputKindError
from .imaging import decode_frames, max_pixels
from .limits import check_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
ZIP_SUFFIXES = (".zip",)
#: File types a sequence upload may have (for file pickers), without dots.
UPLOAD_TYPES = tuple(s.lstrip(".") for s in IMAGE_SUFFIXES + ZIP_SUFFIXES + VIDEO_SUFFIXES)


@dataclass(frozen=True)
class SequenceLimits:
    """What one upload may cost. Defaults allow a few hundred full-HD frames and refuse bombs."""

    max_frames: int = 400
    max_zip_members: int = 2000
    max_zip_bytes: int = 1 << 30  # total inflated size of the members we read
    max_member_ratio: float = 200.0  # inflated / compressed; PNG/JPEG frames barely compress, bombs do
    max_video_bytes: int = 512 << 20
    video_frames: int = 20  # frames sampled from a video


DEFAULT_LIMITS = SequenceLimits()


@dataclass
class Frame:
    pixels: np.ndarray  # float32 (H, W, 3) in [0, 1]
    label: str  # where it came from, for error messages ("clip.mp4 frame 12", "frames.zip:b/003.png")


# --- size check ------------------------------------------------------------------------------------------------

def check_same_size(frames: list[Frame]) -> None:
    """Raise ``InputKindError`` naming the first frame whose size differs from the first frame's."""
    if not frames:
        raise InputKindError("the sequence holds no frames")
    h0, w0 = frames[0].pixels.shape[:2]
    odd = [f for f in frames if f.pixels.shape[:2] != (h0, w0)]
    if odd:
        h, w = odd[0].pixels.shape[:2]
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise InputKindError(
            f"all frames of a sequence must have the same size: {odd[0].label} is {w}×{h} but "
            f"{frames[0].label} is {w0}×{h0}{more}; resize or crop them to one size"
        )


# --- zip archives ----------------------------------------------------------------------------------------------

def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _unsafe_member_name(name: str) -> bool:
    if not name or "\x00" in name:
        return True
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or flavour.root or ".." in flavour.parts:
            return True
    return False


def _read_member_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, label: str) -> bytes:
    """Inflate one member, stopping as soon as it passes ``budget`` or its declared size (sizes can lie)."""
    limit = min(budget, info.file_size)
    chunks, total = [], 0
    with archive.open(info) as stream:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise ImageTooLargeError(
                    f"{label}: inflates past {'its declared size' if limit == info.file_size else 'the size limit'}"
                    f" ({limit / 1e6:.0f} MB); the archive is refused as a possible zip bomb"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def zip_members(data: bytes, name: str = "frames.zip", limits: SequenceLimits = DEFAULT_LIMITS
                ) -> list[tuple[str, bytes]]:
    """The image members of a zip archive as ``(label, bytes)``, in natural name order (``2.png`` before
    ``10.png``), after every safety check; nothing is decoded."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: not a readable zip archive ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise ImageTooLargeError(f"{name}: {len(members)} entries, above the limit of {limits.max_zip_members}")
        unsafe = [m.filename for m in members if _unsafe_member_name(m.filename)]
        if unsafe:
            raise ImageDecodeError(
                f"{name}: refused, entry {unsafe[0]!r} points outside the archive's folder (absolute path or '..')"
            )
        images = [
            m for m in members
            if not m.is_dir() and m.filename.lower().endswith(IMAGE_SUFFIXES)
            and not any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(m.filename).parts)
        ]
        if not images:
            raise ImageDecodeError(f"{name}: the archive holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        if len(images) > limits.max_frames:
            raise ImageTooLargeError(f"{name}: {len(images)} images, above the limit of {limits.max_frames} frames")
        if any(m.flag_bits & 0x1 for m in images):
            raise ImageDecodeError(f"{name}: encrypted archives are not supported")
        declared = sum(m.file_size for m in images)
        if declared > limits.max_zip_bytes:
            raise ImageTooLargeError(
                f"{name}: the images inflate to {declared / 1e6:.0f} MB, above the limit of "
                f"{limits.max_zip_bytes / 1e6:.0f} MB"
            )
        for m in images:
            if m.compress_size > 0 and m.file_size / m.compress_size > limits.max_member_ratio:
                raise ImageTooLargeError(
                    f"{name}: {m.filename} compresses {m.file_size / m.compress_size:.0f}:1, which image files never "
                    f"do; the archive is refused as a possible zip bomb"
                )
        out, budget = [], limits.max_zip_bytes
        for m in sorted(images, key=lambda m: _natural_key(m.filename)):
            label = f"{name}:{m.filename}"
            try:
                payload = _read_member_bounded(archive, m, budget, label)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise ImageDecodeError(f"{label}: cannot be read from the archive ({exc})") from None
            budget -= len(payload)
            out.append((label, payload))
    return out


def frames_from_zip(data: bytes, name: str = "frames.zip", limits: SequenceLimits = DEFAULT_LIMITS) -> list[Frame]:
    """Decode every image member of a zip archive, in natural name order."""
    from .imaging import probe_image

    members = zip_members(data, name, limits)
    count = 0
    for label, payload in members:  # priced from the headers before anything is decoded (engine.limits)
        header = probe_image(payload, label)
        count += header.frames
        if count > limits.max_frames:
            raise ImageTooLargeError(f"{name}: more than {limits.max_frames} frames")
        check_frames(count, header.width, header.height, name)
    frames: list[Frame] = []
    for label, payload in members:
        decoded = decode_frames(payload, label)
        frames.extend(Frame(p, label if len(decoded) == 1 else f"{label} frame {k + 1}") for k, p in enumerate(decoded))
    return frames


# --- videos ----------------------------------------------------------------------------------------------------

def _evenly_spaced(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, wanted)})


def _bgr_to_float_rgb(bgr: np.ndarray) -> np.ndarray:
    scale = 65535.0 if bgr.dtype == np.uint16 else 255.0
    return np.ascontiguousarray(bgr[:, :, 2::-1], dtype=np.float32) / scale


def _bgr_to_png(bgr: np.ndarray) -> bytes:
    if bgr.dtype == np.uint16:
        bgr = (bgr >> 8).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr[:, :, :3]))
    if not ok:
        raise ImageDecodeError("a video frame could not be re-encoded")
    return buf.tobytes()


def frames_from_video(data: bytes, name: str = "video", n_frames: int | None = None,
                      limits: SequenceLimits = DEFAULT_LIMITS, *, convert=_bgr_to_float_rgb) -> list[Frame]:
    """Sample ``n_frames`` evenly spaced frames from a video (all of them if it is shorter).

    ``convert`` turns each decoded BGR frame into what ``Frame.pixels`` holds (default: float RGB), one frame at a
    time, so a caller that only re-encodes (``expand_upload``) never holds more than one decoded frame.
    """
    wanted = limits.video_frames if n_frames is None else int(n_frames)
    if wanted < 1:
        raise InputKindError(f"{name}: the number of frames to sample must be at least 1, got {wanted}")
    with _video_file(data, name, limits) as path:
        return _sample_video(path, name, wanted, limits, convert)


@contextlib.contextmanager
def _video_file(data: bytes, name: str, limits: SequenceLimits):
    """The uploaded video's bytes, size-checked, as a temporary file OpenCV can open (removed afterwards)."""
    if len(data) == 0:
        raise ImageDecodeError(f"{name}: the file is empty (0 bytes)")
    if len(data) > limits.max_video_bytes:
        raise ImageTooLargeError(
            f"{name}: the video is {len(data) / 1e6:.0f} MB, above the limit of {limits.max_video_bytes / 1e6:.0f} MB"
        )
    suffix = os.path.splitext(name)[1].lower() or ".bin"
    handle, path = tempfile.mkstemp(prefix="intrinsic-lab-video-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield path
    finally:
        os.unlink(path)


def _open_capture(path: str, name: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise ImageDecodeError(f"{name}: not a video OpenCV can read (tried as {os.path.splitext(name)[1] or 'video'})")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_pixels():
        capture.release()
        raise ImageTooLargeError(f"{name}: frames of {width}×{height} exceed the pixel limit")
    return capture


def probe_video(data: bytes, name: str = "video", n_frames: int | None = None,
                limits: SequenceLimits = DEFAULT_LIMITS) -> tuple[int, int, int]:
    """``(frames that would be sampled, width, height)`` from the container's header, decoding no frame."""
    wanted = limits.video_frames if n_frames is None else int(n_frames)
    with _video_file(data, name, limits) as path:
        capture = _open_capture(path, name)
        try:
            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            capture.release()
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{name}: the video declares no frame size")
    frames = min(wanted, limits.max_frames, declared) if declared > 0 else min(wanted, limits.max_frames)
    return max(1, frames), width, height


def _sample_video(path: str, name: str, wanted: int, limits: SequenceLimits, convert=_bgr_to_float_rgb
                  ) -> list[Frame]:
    # The container's frame count is often missing or wrong, so count by grabbing (no decoding), then decode
    # only the chosen frames on a second pass; both passes stop at a hard cap.
    cap_count = 100_000
    capture = _open_capture(path, name)
    try:
        count = 0
        while count < cap_count and capture.grab():
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise ImageDecodeError(f"{name}: the video holds no decodable frames")
    chosen = set(_evenly_spaced(count, min(wanted, limits.max_frames)))
    frames: list[Frame] = []
    capture = _open_capture(path, name)
    try:
        check_frames(len(chosen), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), name)
        for index in range(max(chosen) + 1):
            if not capture.grab():
                break
            if index in chosen:
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    raise ImageDecodeError(f"{name}: frame {index + 1} cannot be decoded")
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                frames.append(Frame(convert(bgr), f"{name} frame {index + 1}"))
    finally:
        capture.release()
    if not frames:
        raise ImageDecodeError(f"{name}: no frame could be decoded")
    return frames


# --- dispatch --------------------------------------------------------------------------------------------------

def _looks_like_video(data: bytes, name: str) -> bool:
    if name.lower().endswith(VIDEO_SUFFIXES):
        return True
    head = data[:16]
    return (head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"  # MP4/MOV, Matroska/WebM
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def container_kind(data: bytes, name: str) -> str:
    """What an uploaded file holds: ``"zip"`` (frames in an archive), ``"video"`` or ``"image"`` (still or animated)."""
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(ZIP_SUFFIXES):
        return "zip"
    return "video" if _looks_like_video(data, name) else "image"


def frames_from_upload(data: bytes, name: str, *, n_video_frames: int | None = None,
                       limits: SequenceLimits = DEFAULT_LIMITS) -> list[Frame]:
    """Frames of one uploaded file: a zip of frames, a video, or an (optionally animated) image."""
    kind = container_kind(data, name)
    if kind == "zip":
        return frames_from_zip(data, name, limits)
    if kind == "video":
        return frames_from_video(data, name, n_video_frames, limits)
    decoded = decode_frames(data, name)
    return [Frame(p, name if len(decoded) == 1 else f"{name} frame {k + 1}") for k, p in enumerate(decoded)]


def expand_upload(data: bytes, name: str, *, n_video_frames: int | None = None,
                  limits: SequenceLimits = DEFAULT_LIMITS) -> list[tuple[str, bytes]]:
    """One upload as image files ``(name, bytes)``: a zip's image members as they are, a video's sampled frames as
    8-bit PNGs, any other file unchanged. Lets a store keep plain image files whatever the user uploaded."""
    kind = container_kind(data, name)
    if kind == "zip":
        return zip_members(data, name, limits)
    if kind == "video":
        return [(f"{f.label}.png", f.pixels)
                for f in frames_from_video(data, name, n_video_frames, limits, convert=_bgr_to_png)]
    return [(name, data)]


def decode_sequence(files: list[tuple[str, bytes]], *, n_video_frames: int | None = None,
                    limits: SequenceLimits = DEFAULT_LIMITS) -> list[np.ndarray]:
    """Decode uploaded files (``(name, bytes)`` in the user's order) into same-size frames.

    Raises ``ImageDecodeError`` / ``ImageTooLargeError`` for unreadable or hostile files and ``InputKindError``
    naming the offending frame when sizes differ.
    """
    frames: list[Frame] = []
    for name, data in files:
        frames.extend(frames_from_upload(data, name, n_video_frames=n_video_frames, limits=limits))
        if len(frames) > limits.max_frames:
            raise ImageTooLargeError(f"the upload holds more than {limits.max_frames} frames")
    check_same_size(frames)
    return [f.pixels for f in frames]
