"""What every dataset adapter provides: validation that names every problem, item listing by split, and loading.

An adapter reads a layout users already have on disk; nothing is converted or copied. A loaded :class:`Sample`
holds the input frames in the colour space the data is stored in (``linear`` for MIT and raw colour-constancy
images, ``srgb`` for photos) and the ground truth under the *roles* the metrics ask for (``reflectance``,
``shading``, ``mask``, ``target``, ``illuminant``, ``judgements``, ``normals``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from ..errors import IntrinsicLabError
from ..imaging import IMAGE_SUFFIXES
from ..registry import InputKind

#: The one folder under which the dashboard may register dataset folders (default ``$INTRINSIC_LAB_DATA/datasets``).
DATASETS_ROOT_ENV = "INTRINSIC_LAB_DATASETS"
#: Text files an adapter reads (ground-truth tables, judgements, metadata) larger than this are refused.
MAX_TEXT_BYTES = 32 << 20


def datasets_root() -> Path:
    """The configured datasets folder, absolute, symbolic links resolved (it need not exist yet)."""
    configured = os.environ.get(DATASETS_ROOT_ENV)
    if configured:
        return Path(os.path.realpath(Path(configured).expanduser()))
    data = os.environ.get("INTRINSIC_LAB_DATA") or "data"
    return Path(os.path.realpath(Path(data).expanduser() / "datasets"))


def folder_in_root(text: str, root: Path | None = None) -> tuple[Path, str]:
    """``(absolute folder, name to show)`` for a folder a dashboard user typed, relative to the datasets root.

    Refused, with one message that says nothing about the rest of the server (not whether the path exists): an
    absolute path, ``..``, or a symbolic link that leads outside the root.
    """
    root = root or datasets_root()
    raw = str(text).strip().replace("\\", "/")
    outside = DatasetError(
        f"only folders inside the server's datasets folder can be registered; give a path relative to it "
        f"(e.g. mit-test), and ask the administrator to place the data there ({DATASETS_ROOT_ENV})")
    if not raw or "\x00" in raw:
        raise DatasetError("give the folder's path, relative to the server's datasets folder")
    relative = PurePosixPath(raw)
    if raw.startswith(("~", "/")) or ".." in relative.parts or re.match(r"^[A-Za-z]:", raw):
        raise outside
    folder = Path(os.path.realpath(root / relative))
    if folder != root and root not in folder.parents:
        raise outside
    shown = folder.relative_to(root).as_posix() if folder != root else "."
    return folder, shown


def read_text_file(path: Path) -> str:
    """A small UTF-8 text file; ``DatasetError`` naming only the file's own name when it is not one."""
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise DatasetError(f"{path.name}: larger than {MAX_TEXT_BYTES >> 20} MB; not a ground-truth file")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name}: not a UTF-8 text file") from None
    except OSError:
        raise DatasetError(f"{path.name}: cannot be read") from None


class DatasetError(IntrinsicLabError):
    """A dataset folder does not have the layout its adapter expects; the message lists every problem found."""


@dataclass(frozen=True)
class Sample:
    item_id: str
    frames: tuple[np.ndarray, ...]  # float32 (H, W, 3) in [0, 1]
    colour_space: str  # of the frames: "linear" or "srgb"
    truth: dict[str, Any]  # role → array or value
    truth_colour_space: str = "linear"  # of the image-like truth layers
    mask: np.ndarray | None = None  # (H, W) bool foreground, if the dataset has one
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetAdapter:
    """Base class; subclasses set the class attributes and implement ``problems``, ``item_ids`` and ``load``."""

    kind: str = ""  # id used on the command line, e.g. "mit-intrinsic"
    title: str = ""
    task: str = ""  # the benchmark task ("intrinsic", "enhance", "derain", "illuminant", "face")
    input_kind: InputKind = InputKind.IMAGE
    metrics: tuple[str, ...] = ()  # metric names this dataset's ground truth supports
    splits: tuple[str, ...] = ("all",)
    layout: str = ""  # one line describing the expected folder layout, shown in errors

    def problems(self, folder: Path) -> list[str]:
        raise NotImplementedError

    def item_ids(self, folder: Path, split: str) -> list[str]:
        raise NotImplementedError

    def load(self, folder: Path, item_id: str) -> Sample:
        raise NotImplementedError

    # --- shared behaviour ---

    def validate(self, folder: str | Path) -> Path:
        """Return the folder as a Path, or raise DatasetError naming every problem found."""
        folder = Path(folder).expanduser()
        if not folder.exists():
            raise DatasetError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise DatasetError(f"{folder}: is a file, not a folder ({self.kind} expects {self.layout})")
        found = self.problems(folder)
        if found:
            listed = "\n".join(f"  - {p}" for p in found[:50])
            more = f"\n  … and {len(found) - 50} more" if len(found) > 50 else ""
            raise DatasetError(f"{folder} is not a valid {self.title} folder ({self.layout}):\n{listed}{more}")
        return folder

    def validate_in_root(self, text: str, root: Path | None = None) -> Path:
        """Validate a folder a dashboard user typed: only inside the datasets root (:func:`folder_in_root`), and
        every message names paths relative to it. Returns the absolute folder."""
        folder, shown = folder_in_root(text, root)
        if not folder.exists():
            raise DatasetError(f"{shown}: no such folder in the datasets folder")
        if not folder.is_dir():
            raise DatasetError(f"{shown}: is a file, not a folder ({self.kind} expects {self.layout})")
        try:
            found = self.problems(folder)
        except DatasetError as exc:
            found = [str(exc).replace(str(folder) + os.sep, "").replace(str(folder), shown)]
        except Exception:  # an unreadable or malformed file: say so without quoting it
            found = ["some files cannot be read (permissions, or not the format this layout expects)"]
        if found:
            listed = "\n".join(f"  - {p.replace(str(folder) + os.sep, '')}" for p in found[:50])
            more = f"\n  … and {len(found) - 50} more" if len(found) > 50 else ""
            raise DatasetError(f"{shown} is not a valid {self.title} folder ({self.layout}):\n{listed}{more}")
        return folder

    def items(self, folder: str | Path, split: str) -> list[str]:
        folder = self.validate(folder)
        if split not in self.splits:
            raise DatasetError(f"{self.kind}: unknown split {split!r}; this dataset has {', '.join(self.splits)}")
        ids = self.item_ids(folder, split)
        if not ids:
            raise DatasetError(f"{folder}: the {split!r} split of {self.title} is empty here"
                               + self._empty_split_hint(folder, split))
        return ids

    def _empty_split_hint(self, folder: Path, split: str) -> str:
        others = [s for s in self.splits if s != split and self.item_ids(folder, s)]
        return f"; it has items in: {', '.join(others)}" if others else ""

    # --- the contract tests' examples (tests/contract/test_datasets.py) ---

    def write_example(self, folder: Path) -> Path:
        """Write a tiny valid dataset of this kind into ``folder`` (a few 24-pixel items) and return the folder."""
        raise NotImplementedError(f"{type(self).__name__} does not write an example folder; implement write_example")

    def break_example(self, folder: Path) -> Path:
        """Spoil one file of an example folder so that validation must name it; return that file. The default
        overwrites the first image file with bytes that are no image."""
        victim = next(p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
        victim.write_bytes(b"not an image")
        return victim

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "task": self.task, "input": self.input_kind.value,
                "splits": list(self.splits), "metrics": list(self.metrics), "layout": self.layout}


# --- reading helpers shared by the adapters ------------------------------------------------------------------

def natural_key(text: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: natural_key(p.name))


def read_float(path: Path) -> np.ndarray:
    """Any 8/16-bit PNG/JPEG/TIFF → float32 (H, W, C) in [0, 1], RGB order, full bit depth kept."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DatasetError(f"{path}: cannot be read as an image (missing, truncated or not an image)")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 4:
        array = array[:, :, :3]
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    elif array.dtype in (np.float32, np.float64):
        scale = 1.0
    else:
        raise DatasetError(f"{path}: unsupported sample type {array.dtype}")
    return np.ascontiguousarray(array.astype(np.float32) / scale)


def write_png(path: Path, array: np.ndarray, bits: int = 8) -> Path:
    """Write float (H, W[, C]) values in [0, 1] as an 8- or 16-bit PNG (RGB order), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scale, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    pixels = np.round(np.clip(np.asarray(array, np.float64), 0.0, 1.0) * scale).astype(dtype)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not cv2.imwrite(str(path), pixels[:, :, ::-1] if pixels.ndim == 3 else pixels):
        raise DatasetError(f"{path}: cannot be written")
    return path


def unreadable(folder: Path, files) -> list[str]:
    """One problem line per file that is not a readable image (named relative to ``folder``)."""
    return [f"{p.relative_to(folder)}: not a readable image" for p in files if image_header(p) is None]


def as_rgb(array: np.ndarray) -> np.ndarray:
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[:, :, :3]


def image_header(path: Path) -> tuple[int, int] | None:
    """(height, width) read cheaply, or None if the file is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception:
        return None
