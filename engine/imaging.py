"""The one image convention of Intrinsic Lab, and every conversion to and from it.

At every boundary an image is a ``numpy.float32`` array of shape ``(H, W, C)`` with values in ``[0, 1]``.
``C`` is 3 for colour layers and 1 for single-channel layers. Unless a name says otherwise, values are
**sRGB-encoded** (as stored in ordinary photo files); ``srgb_to_linear`` / ``linear_to_srgb`` convert.
Torch code uses ``(N, C, H, W)`` tensors; ``to_tensor`` / ``from_tensor`` convert.

Decoding is defensive: empty, truncated, non-image and oversized files raise ``ImageDecodeError`` /
``ImageTooLargeError`` with a message meant for the user; 16-bit PNG/TIFF keep their precision (Pillow
truncates 16-bit RGB, so those go through OpenCV); EXIF orientation is honoured; greyscale becomes RGB;
alpha is returned separately.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, ImageTooLargeError, IntrinsicLabError
from .limits import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, PREVIEW_DECODE_PIXELS, PREVIEW_SIDE,  # noqa: F401
                     check_frames, limits)
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
#: File name suffixes of the still images the project reads (datasets, training data, frame folders, uploads), all
#: readable by both OpenCV and :func:`decode_image`; FRAME_SUFFIXES adds GIF, whose frames :func:`decode_frames` reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FRAME_SUFFIXES = IMAGE_SUFFIXES + (".gif",)
SUPPORTED_LABEL = "PNG, JPEG, BMP, TIFF, WebP"

# We enforce our own limit before decoding; Pillow's warning-then-error scheme would otherwise fire first.
Image.MAX_IMAGE_PIXELS = None

_EXIF_ORIENTATION_TAG = 0x0112


@dataclass
class DecodedImage:
    """A decoded image in the project convention plus what we learnt about the file."""

    pixels: np.ndarray  # float32 (H, W, 3) in [0, 1], sRGB-encoded as stored
    alpha: np.ndarray | None  # float32 (H, W, 1) in [0, 1], or None
    format: str
    bit_depth: int
    original_mode: str
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def max_pixels() -> int:
    return limits().max_pixels


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header declares, read without decoding any pixel."""

    format: str
    width: int
    height: int
    frames: int
    mode: str


def _frame_count(img: Image.Image, name: str) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return max(1, int(getattr(img, "n_frames", 1) or 1))
    except Exception:  # counting walks the frame headers, which may be corrupt
        raise ImageDecodeError(f"{name}: the frames of this animated image cannot be read (corrupt file)") from None


def probe_image(data: bytes, name: str = "image") -> ImageHeader:
    """The format, size and frame count a file declares; raises ``ImageDecodeError`` for unreadable headers and
    ``ImageTooLargeError`` above the per-frame pixel limit. Nothing is decoded."""
    img = _open_header(data, name, max_pixels())
    return ImageHeader(img.format, img.size[0], img.size[1], _frame_count(img, name), img.mode)


def _describe_content(data: bytes) -> str:
    head = data[:64]
    try:
        text = head.decode("utf-8")
        if text.isprintable() or all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            return "its content looks like text"
    except UnicodeDecodeError:
        pass
    return f"it starts with bytes {head[:8].hex(' ')}"


def _open_header(data: bytes, name: str, limit: int) -> Image.Image:
    if len(data) == 0:
        raise ImageDecodeError(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hostile headers make Pillow warn; the user gets our message instead
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"{name}: not a recognised image ({_describe_content(data)}); expected {SUPPORTED_LABEL}"
        ) from None
    except Exception:  # Pillow raises many types on hostile headers
        raise ImageDecodeError(f"{name}: the image header is corrupt or unsupported") from None
    if img.format not in SUPPORTED_FORMATS:
        img.close()
        raise ImageDecodeError(f"{name}: {img.format} images are not supported; expected {SUPPORTED_LABEL}")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{name}: the header declares an empty image ({width}×{height})")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: the image is {width}×{height} = {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.0f} megapixels (set {MAX_PIXELS_ENV} to raise it)"
        )
    return img


def _exif_orientation(img: Image.Image) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:
        return 1


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.rot90(np.swapaxes(a, 0, 1), k=2),
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.shape[2] == 4:
        return array[:, :, :3], array[:, :, 3:4]
    if array.shape[2] == 2:
        return np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:2]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2), None
    return array[:, :, :3], None


def _decode_high_depth(data: bytes, name: str) -> tuple[np.ndarray, int] | None:
    """Decode PNG/TIFF with OpenCV to keep 16-bit precision. Returns None if the file is 8-bit."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageDecodeError(f"{name}: the image data is truncated or corrupt")
    if decoded.dtype == np.uint8:
        return None
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    elif decoded.shape[2] == 3:
        decoded = decoded[:, :, ::-1]
    elif decoded.shape[2] == 4:
        decoded = decoded[:, :, [2, 1, 0, 3]]
    if decoded.dtype == np.uint16:
        return decoded.astype(np.float32) / 65535.0, 16
    if decoded.dtype in (np.float32, np.float64):
        return np.clip(_refuse_non_finite(decoded.astype(np.float32), name), 0.0, 1.0), 32
    raise ImageDecodeError(f"{name}: unsupported sample type {decoded.dtype}")


def _refuse_non_finite(array: np.ndarray, name: str) -> np.ndarray:
    """Float files may hold NaN or infinity, which no method can use: refuse them, saying how many."""
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ImageDecodeError(f"{name}: {bad} pixel value(s) are not finite numbers (NaN or infinity); "
                               f"replace them before uploading")
    return array


def decode_image(data: bytes, name: str = "image", *, limit: int | None = None, allow_animation: bool = False
                 ) -> DecodedImage:
    """Decode one still image from bytes into the project convention.

    Raises ``ImageDecodeError`` (or its subclass ``ImageTooLargeError``) with a user-facing message; any other
    failure inside a decoder (hostile files make Pillow and OpenCV raise many types) becomes an
    ``ImageDecodeError`` too. An animated file raises unless ``allow_animation`` (then the first frame is used;
    see ``decode_frames``).
    """
    try:
        return _decode_image(data, name, limit=limit, allow_animation=allow_animation)
    except (IntrinsicLabError, MemoryError):
        raise
    except Exception:
        raise ImageDecodeError(f"{name}: the image data is corrupt or unsupported") from None


def _decode_image(data: bytes, name: str, *, limit: int | None, allow_animation: bool) -> DecodedImage:
    limit = max_pixels() if limit is None else limit
    img = _open_header(data, name, limit)
    n_frames = _frame_count(img, name)
    notes: list[str] = []
    if n_frames > 1:
        if not allow_animation:
            raise ImageDecodeError(
                f"{name}: an animated {img.format} with {n_frames} frames; upload a still image, "
                f"or use it as an image sequence"
            )
        notes.append(f"animated {img.format}: first of {n_frames} frames used")
    fmt, mode = img.format, img.mode
    orientation = _exif_orientation(img)
    high = None
    if fmt in ("PNG", "TIFF") and mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
        high = _decode_high_depth(data, name)  # 16-bit greyscale modes I;16 etc.
    elif fmt == "PNG" and _png_bit_depth(data) == 16:
        high = _decode_high_depth(data, name)
    elif fmt == "TIFF" and mode in ("RGB", "RGBA") and _tiff_bits(img) > 8:
        high = _decode_high_depth(data, name)
    if high is not None:
        array, depth = high
        array = _apply_orientation(array, orientation)
        if orientation != 1:
            notes.append(f"EXIF orientation {orientation} applied")
    else:
        depth = 8
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img.load()
                if orientation != 1:
                    img = ImageOps.exif_transpose(img)
                    notes.append(f"EXIF orientation {orientation} applied")
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageDecodeError(f"{name}: the image data is truncated or corrupt ({exc})") from None
        if img.mode == "CMYK":
            notes.append("CMYK converted to RGB")
        target = "RGBA" if ("A" in img.mode or "transparency" in img.info) else "RGB"
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(img, dtype=np.float32)[:, :, None] / 65535.0
            depth = 16
        elif img.mode == "F":
            array = np.clip(_refuse_non_finite(np.asarray(img, dtype=np.float32), name), 0, 1)[:, :, None]
            depth = 32
        else:
            array = np.asarray(img.convert(target), dtype=np.float32) / 255.0
    if array.shape[0] != img.size[1] or array.shape[1] != img.size[0]:
        if orientation not in (5, 6, 7, 8) or array.shape[:2] != (img.size[0], img.size[1]):
            raise ImageDecodeError(f"{name}: the decoded size differs from the header's (corrupt file)")
    rgb, alpha = _split_alpha(array)
    return DecodedImage(
        pixels=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        format=fmt, bit_depth=depth, original_mode=mode, notes=notes,
    )


def decode_frames(data: bytes, name: str = "frames", *, limit: int | None = None) -> list[np.ndarray]:
    """Decode every frame of an animated GIF/WebP/TIFF (or the single frame of a still image).

    The frame count and size come from the header first and are checked against the frame and pixel budgets
    (``engine.limits``) before any frame is decoded.
    """
    limit = max_pixels() if limit is None else limit
    img = _open_header(data, name, limit)
    n_frames = _frame_count(img, name)
    if n_frames == 1:
        return [decode_image(data, name, limit=limit).pixels]
    check_frames(n_frames, img.size[0], img.size[1], name)
    frames = []
    try:
        for index in range(n_frames):
            img.seek(index)
            frame = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            if frame.shape[:2] != (img.size[1], img.size[0]):
                raise ValueError("frame size differs from the header")
            frames.append(frame)
    except (IntrinsicLabError, MemoryError):
        raise
    except Exception:
        raise ImageDecodeError(f"{name}: frame {len(frames) + 1} is truncated or corrupt") from None
    return frames


def preview_frames(data: bytes, name: str = "frames", count: int = 8, *, side: int = PREVIEW_SIDE
                   ) -> list[np.ndarray]:
    """The first ``count`` frames of an animated image, each reduced to ``side`` on its longest side (8-bit)."""
    img = _open_header(data, name, max_pixels())
    total = _frame_count(img, name)
    frames = []
    try:
        for index in range(min(count, total)):
            img.seek(index)
            frame = img.convert("RGB")
            if max(frame.size) > side:
                frame.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            frames.append(np.asarray(frame, dtype=np.float32) / 255.0)
    except (IntrinsicLabError, MemoryError):
        raise
    except Exception:
        raise ImageDecodeError(f"{name}: frame {len(frames) + 1} is truncated or corrupt") from None
    return frames


def decode_preview(data: bytes, name: str = "image", *, side: int = PREVIEW_SIDE,
                   allow_animation: bool = False) -> DecodedImage:
    """The image reduced so that its longest side is at most ``side``, decoding no more than needed.

    Small images are decoded exactly as :func:`decode_image` does. Larger ones are decoded 8 bits per sample by
    Pillow (JPEG at reduced scale straight from the DCT, so a 50 MP photo never exists at full size), then
    shrunk; the array at full size is never converted to float. For the dashboard, which only shows previews.
    """
    img = _open_header(data, name, max_pixels())
    n_frames = _frame_count(img, name)
    if n_frames > 1 and not allow_animation:
        raise ImageDecodeError(
            f"{name}: an animated {img.format} with {n_frames} frames; upload a still image, "
            f"or use it as an image sequence"
        )
    width, height = img.size
    if max(width, height) <= side:
        return decode_image(data, name, allow_animation=allow_animation)
    notes = [f"preview at reduced size (the image is {width}×{height})"]
    if img.format != "JPEG" and width * height > PREVIEW_DECODE_PIXELS:
        # Decoding any preview of a PNG/TIFF/WebP means inflating all of it: not in the dashboard's process.
        scale = side / max(width, height)
        grey = np.full((max(1, round(height * scale)), max(1, round(width * scale)), 3), 0.5, np.float32)
        notes = [f"no preview for an image this large ({width}×{height}); it is checked from its header and "
                 f"decoded by the worker"]
        return DecodedImage(pixels=grey, alpha=None, format=img.format, bit_depth=8, original_mode=img.mode,
                            notes=notes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fmt, mode = img.format, img.mode
            orientation = _exif_orientation(img)
            if fmt == "JPEG":
                img.draft("RGB", (side, side))
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                grey = np.asarray(img, dtype=np.float32)
                scale = 1.0 if img.mode == "F" else 65535.0
                grey = np.clip(_refuse_non_finite(grey, name) / scale, 0, 1)
                img = Image.fromarray(np.round(grey * 255).astype(np.uint8), "L")
            target = "RGBA" if ("A" in img.mode or "transparency" in img.info) else "RGB"
            img = img.convert(target)
            img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
                notes.append(f"EXIF orientation {orientation} applied")
            array = np.asarray(img, dtype=np.float32) / 255.0
    except (IntrinsicLabError, MemoryError):
        raise
    except Exception:
        raise ImageDecodeError(f"{name}: the image data is corrupt or unsupported") from None
    rgb, alpha = _split_alpha(array)
    return DecodedImage(
        pixels=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        format=fmt, bit_depth=8, original_mode=mode, notes=notes,
    )


def _png_bit_depth(data: bytes) -> int:
    # IHDR is the first chunk: 8-byte signature, 4 length, 4 type, 4 width, 4 height, 1 bit depth.
    return data[24] if len(data) > 24 and data[12:16] == b"IHDR" else 8


def _tiff_bits(img: Image.Image) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bits = img.tag_v2.get(258, (8,))  # BitsPerSample
        return int(bits[0] if isinstance(bits, tuple) else bits)
    except Exception:
        return 8


def read_image(path: str | Path, **kwargs) -> DecodedImage:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{path}: is a folder, not an image file") from None
    return decode_image(data, path.name, **kwargs)


# --- colour -------------------------------------------------------------------------------------------------
# The IEC 61966-2-1 sRGB curve, once, for numpy arrays (float32 out) and torch tensors (dtype and device kept; the
# clamps keep gradients finite, so training code uses the same functions). Negative values clip to 0.

def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def srgb_to_linear(x):
    """IEC 61966-2-1 sRGB decoding (values in [0, 1]); negative values clip to 0."""
    if _is_tensor(x):
        import torch

        return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.0) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x):
    """IEC 61966-2-1 sRGB encoding; negative values clip to 0."""
    if _is_tensor(x):
        import torch

        x = x.clamp(min=0)
        return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055
                    ).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma weights as used by MATLAB's rgb2gray (JieP's grey image). (H, W, 3) → (H, W)."""
    return (0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]).astype(np.float32)


# --- encoding -----------------------------------------------------------------------------------------------

def encode_png(image: np.ndarray, *, bit_depth: int = 16) -> bytes:
    """Encode an (H, W, C) float image in [0, 1] (values outside are clipped) as an 8- or 16-bit PNG.

    C may be 1, 3 or 4. Integer label maps (uint8) are written as they are.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.uint8:
        out = array
    else:
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 65535.0 if bit_depth == 16 else 255.0
        out = np.round(np.clip(array, 0.0, 1.0) * scale).astype(np.uint16 if bit_depth == 16 else np.uint8)
    if out.shape[2] == 3:
        out = out[:, :, ::-1]
    elif out.shape[2] == 4:
        out = out[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def to_display(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB view of any layer for showing in a browser (single channel → grey)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array
    return np.round(np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)


# --- torch bridge -------------------------------------------------------------------------------------------

def to_tensor(image: np.ndarray, device=None):
    """(H, W, C) float32 numpy → (1, C, H, W) torch tensor on ``device``."""
    import torch

    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"Expected (H, W, C) image, got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device or "cpu")


def from_tensor(tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) torch tensor → (H, W, C) float32 numpy on the CPU."""
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"Expected a batch of one, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"Expected (C, H, W) or (1, C, H, W), got shape {tuple(t.shape)}")
    return np.ascontiguousarray(t.float().cpu().numpy().transpose(1, 2, 0))
