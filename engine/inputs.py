"""Loading user inputs from files into a :class:`~engine.registry.MethodInput`.

One image → one frame; several image files or a folder of frames → a sequence (sorted by name);
an animated GIF/WebP → its frames; a zip of frames or a video → its frames (see ``engine.frame_uploads``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ImageDecodeError, InputKindError
from .frame_uploads import container_kind, frames_from_upload, probe_video, zip_members
from .imaging import FRAME_SUFFIXES, decode_image, probe_image
from .limits import check_file_size, check_frames, check_job_memory, human_bytes, limits
from .registry import InputKind, MethodInput, MethodSpec, frame_size_problem


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise ImageDecodeError(f"{folder}: the folder holds no image files ({', '.join(FRAME_SUFFIXES)})")
    if len(files) > limits().max_frames:
        check_frames(len(files), 1, 1, str(folder))
    return files


def plan_files(files: list[tuple[str, bytes]], kind: InputKind, *, label: str = "input",
               spec: MethodSpec | None = None, params: Mapping[str, Any] | None = None
               ) -> tuple[list[tuple[str, bytes]], int, int, int]:
    """Price a submission from its headers alone, before anything is decoded.

    Returns ``(files, frame_count, width, height)`` where zip archives are replaced by their image members.
    Raises ``ImageDecodeError`` for unreadable headers, ``InputKindError`` for frames of different sizes, and
    ``BudgetError`` (with the numbers) when the frames, the pixels or ``spec``'s memory pass a budget.
    """
    expanded: list[tuple[str, bytes]] = []
    sizes: dict[tuple[int, int], str] = {}
    count = 0
    for name, data in files:
        check_file_size(len(data), name)
        container = container_kind(data, name) if kind == InputKind.IMAGE_SEQUENCE else "image"
        members = zip_members(data, name) if container == "zip" else [(name, data)]
        for member, payload in members:
            if container == "video":
                frames, width, height = probe_video(payload, member)
            else:
                header = probe_image(payload, member)
                frames, width, height = header.frames, header.width, header.height
                if frames > 1 and kind != InputKind.IMAGE_SEQUENCE:
                    raise ImageDecodeError(f"{member}: an animated {header.format} with {frames} frames; upload a "
                                           f"still image, or use it as an image sequence")
            sizes.setdefault((width, height), member)
            count += frames
            if count > limits().max_frames:  # stop at the first file past the frame budget
                check_frames(count, width, height, label)
        expanded.extend(members)
    if len(sizes) > 1:
        listed = ", ".join(f"{w}×{h} ({who})" for (w, h), who in sizes.items())
        raise InputKindError(f"{label}: all frames must have the same size; got {listed}")
    if not sizes:
        raise ImageDecodeError(f"{label}: no image was given")
    (width, height), = sizes
    check_frames(count, width, height, label)
    if spec is not None:
        check_job_memory(spec, count, width, height, params)
    return expanded, count, width, height


def input_from_files(files: list[tuple[str, bytes]], kind: InputKind, *, label: str = "input",
                     spec: MethodSpec | None = None, params: Mapping[str, Any] | None = None) -> MethodInput:
    """Decode named file contents into a :class:`MethodInput` for a method of input kind ``kind``.

    Sequences take every frame of every file (zip, video, animated image) in order; the alpha channel of a lone
    image becomes the foreground mask. Shared by the CLI and the worker so both read inputs the same way.
    Budgets (``engine.limits``; with ``spec``, the method's memory too) are checked from the headers first.
    """
    files, _, _, _ = plan_files(files, kind, label=label, spec=spec, params=params)
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
    problem = frame_size_problem(frames)
    if problem:
        raise InputKindError(f"{label}: {problem}")
    return MethodInput(frames=tuple(frames), mask=mask)


def read_input_file(path: str | Path) -> bytes:
    """Read one input file the user named: regular files only, size-checked before reading.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused without reading from it; an unreadable file
    gets one line; a file larger than ``INTRINSIC_LAB_MAX_FILE_BYTES`` is refused from its size, and reading stops
    at that size even if the file grows meanwhile.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open file then decides.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageDecodeError(f"{path}: cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else "cannot be opened"
        raise ImageDecodeError(f"{path}: cannot be opened ({reason.lower()})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageDecodeError(f"{path}: is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):
            what = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                    "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                    "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise ImageDecodeError(f"{path}: is {what}; give a regular image file")
        check_file_size(info.st_size, str(path))
        cap = limits().max_file_bytes
        chunks, total = [], 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise ImageDecodeError(f"{path}: cannot be read now (the file is locked or busy)") from None
                raise ImageDecodeError(f"{path}: cannot be read ({os.strerror(exc.errno).lower()})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise ImageDecodeError(f"{path}: grew past the limit of {human_bytes(cap)} while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_input(paths: list[str | Path], kind: InputKind, *, spec: MethodSpec | None = None,
               params: Mapping[str, Any] | None = None) -> MethodInput:
    """Read the files a user named for a method of input kind ``kind`` (regular files only, size-checked)."""
    paths = [Path(p) for p in paths]
    for p in paths:
        try:
            present = os.path.lexists(p) and (p.exists() or p.is_symlink())
        except OSError:
            present = False
        if not present:
            raise ImageDecodeError(f"{p}: no such file or folder")
    if len(paths) == 1 and paths[0].is_dir():
        try:
            paths = _frame_files(paths[0])
        except PermissionError:
            raise ImageDecodeError(f"{paths[0]}: the folder cannot be read (permission denied)") from None
    for p in paths:
        if p.is_dir():
            raise ImageDecodeError(f"{p}: is a folder; give either one folder or image files")
    if len(paths) > limits().max_frames:
        check_frames(len(paths), 1, 1, "the input")
    label = str(paths[0].parent if len(paths) > 1 else paths[0])
    return input_from_files([(p.name, read_input_file(p)) for p in paths], kind, label=label, spec=spec,
                            params=params)
