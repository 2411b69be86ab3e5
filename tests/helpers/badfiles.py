"""Hostile and unusual image files, generated in code so no binary fixtures live in the repo.

Shared by the engine, CLI and dashboard bad-input tests: each entry is (filename, bytes, expected outcome) where
the outcome is either a substring of the error message or ``None`` for "decodes to a correct image".
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG signature + IHDR declaring a giant image, with a tiny (bogus) IDAT: a decompression-bomb shape."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x / (w - 1), y / (h - 1), 0.5 * np.ones_like(x)], axis=2).astype(np.float32)


def cases() -> list[tuple[str, bytes, str | None]]:
    base = gradient()
    rgb8 = np.round(base * 255).astype(np.uint8)
    good_png = png_bytes(rgb8[:, :, ::-1])
    png16 = png_bytes(np.round(base * 65535).astype(np.uint16)[:, :, ::-1])

    cmyk = io.BytesIO()
    Image.fromarray(rgb8).convert("CMYK").save(cmyk, format="JPEG", quality=95)

    gif = io.BytesIO()
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)

    one = io.BytesIO()
    Image.fromarray(np.array([[[200, 100, 50]]], np.uint8)).save(one, format="PNG")

    return [
        ("empty.png", b"", "empty"),
        ("truncated.png", good_png[: len(good_png) // 2], "truncated or corrupt"),
        ("notes.png", b"this is a plain text file, not a picture\n" * 4, "looks like text"),
        ("bomb.png", huge_png_header(), "megapixels"),
        ("tiny.png", one.getvalue(), None),
        ("cmyk.jpg", cmyk.getvalue(), None),
        ("deep.png", png16, None),
        ("animated.gif", gif.getvalue(), "animated GIF with 3 frames"),
    ]
