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


# --- hostile inputs of issue 20, and a fuzz of mutated files ------------------------------------------------------

def solid_png(side: int = 7999) -> bytes:
    """A single-colour ``side``×``side`` PNG: ~200 kB on disk, 64 MP (768 MB as float32) once decoded."""
    return png_bytes(np.full((side, side, 3), 200, np.uint8))


def zip_of(members: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def many_frame_gif(frames: int = 20_000, side: int = 16) -> bytes:
    """An animated GIF of ``frames`` tiny frames, written directly (Pillow's writer is slow for 20,000 frames):
    one global palette, then per frame a graphic-control extension and a 1-colour LZW image."""
    head = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    # LZW, minimum code size 2 (so 3-bit codes): clear (4), literal pixel codes, end (5). A clear code after
    # every second literal keeps the code table from growing, so every code stays 3 bits wide.
    frames_data = []
    for k in range(2):
        codes = [4]
        for i in range(side * side):
            codes.append(k)
            if i % 2 == 1:
                codes.append(4)
        codes.append(5)
        bits, nbits, out = 0, 0, bytearray()
        for code in codes:
            bits |= code << nbits
            nbits += 3
            while nbits >= 8:
                out.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
        if nbits:
            out.append(bits & 0xFF)
        blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
        frame = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, side, side, 0)
                 + b"\x02" + blocks + b"\x00")
        frames_data.append(frame)
    body = b"".join(frames_data[k % 2] for k in range(frames))
    return head + loop + body + b"\x3b"


def float_tiff(values: np.ndarray) -> bytes:
    """A 32-bit float greyscale TIFF (Pillow mode F) holding ``values`` (H, W)."""
    out = io.BytesIO()
    Image.fromarray(values.astype(np.float32), mode="F").save(out, format="TIFF")
    return out.getvalue()


def rgb_tiff(h: int = 24, w: int = 32) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.round(gradient(h, w) * 255).astype(np.uint8)).save(out, format="TIFF")
    return out.getvalue()


def byte_flipped(data: bytes, start: int = 8, step: int = 7) -> bytes:
    """Every ``step``-th byte from ``start`` inverted: headers survive partly, offsets and sizes turn hostile."""
    array = bytearray(data)
    for i in range(start, len(array), step):
        array[i] ^= 0xFF
    return bytes(array)


def encoded(array: np.ndarray, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **params)
    return out.getvalue()


def fuzz_seeds() -> dict[str, bytes]:
    """Small valid files of every format the decoder takes, the starting points of the mutants."""
    rgb8 = np.round(gradient(24, 32) * 255).astype(np.uint8)
    rgba = np.concatenate([rgb8, np.full((24, 32, 1), 128, np.uint8)], axis=2)
    return {
        "png": png_bytes(rgb8[:, :, ::-1]),
        "png16": png_bytes(np.round(gradient(24, 32) * 65535).astype(np.uint16)[:, :, ::-1]),
        "pngA": encoded(rgba, "PNG"),
        "jpeg": encoded(rgb8, "JPEG", quality=90),
        "jpegP": encoded(rgb8, "JPEG", quality=80, progressive=True),
        "tiff": encoded(rgb8, "TIFF"),
        "tiffZ": encoded(rgb8, "TIFF", compression="tiff_deflate"),
        "tiffF": float_tiff(gradient(24, 32)[:, :, 0]),
        "webp": encoded(rgb8, "WEBP", quality=80),
        "webpL": encoded(rgb8, "WEBP", lossless=True),
    }


_SUFFIX = {"png": ".png", "png16": ".png", "pngA": ".png", "jpeg": ".jpg", "jpegP": ".jpg", "tiff": ".tif",
           "tiffZ": ".tif", "tiffF": ".tif", "webp": ".webp", "webpL": ".webp"}


def _mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    array = bytearray(data)
    kind = int(rng.integers(0, 9))
    n = len(array)
    if kind == 0:  # flip a few random bytes
        for _ in range(int(rng.integers(1, 8))):
            array[int(rng.integers(0, n))] ^= int(rng.integers(1, 256))
        return "flip", bytes(array)
    if kind == 1:  # truncate
        return "truncate", bytes(array[: int(rng.integers(0, n))])
    if kind == 2:  # overwrite a header byte with an extreme value (sizes, offsets, counts live there)
        pos = int(rng.integers(0, min(n, 64)))
        array[pos] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
        return "header", bytes(array)
    if kind == 3:  # a 4-byte field set to a huge or zero number
        pos = int(rng.integers(0, max(1, n - 4)))
        array[pos:pos + 4] = struct.pack(">I", int(rng.choice([0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 65_000])))
        return "field", bytes(array)
    if kind == 4:  # duplicate a slice (repeated chunks, segments, IFDs)
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.integers(1, 256)))
        return "duplicate", bytes(array[:b] + array[a:b] * int(rng.integers(1, 20)) + array[b:])
    if kind == 5:  # zero a range
        a = int(rng.integers(0, n))
        array[a:a + int(rng.integers(1, 64))] = b"\x00" * len(array[a:a + 64])
        return "zero", bytes(array[:n])
    if kind == 6:  # insert random bytes
        a = int(rng.integers(0, n))
        return "insert", bytes(array[:a]) + rng.bytes(int(rng.integers(1, 64))) + bytes(array[a:])
    if kind == 7:  # delete a range
        a = int(rng.integers(0, n))
        return "delete", bytes(array[:a] + array[a + int(rng.integers(1, 64)):])
    # splice the tail of one random position onto garbage
    a = int(rng.integers(0, n))
    return "splice", rng.bytes(int(rng.integers(0, 32))) + bytes(array[a:])


def fuzz_cases(count: int = 1000, seed: int = 20) -> list[tuple[str, bytes]]:
    """``count`` mutants ``(name, bytes)`` of the :func:`fuzz_seeds`, reproducible from ``seed``; mutants that
    happen to equal their seed file are kept (they must decode)."""
    rng = np.random.default_rng(seed)
    seeds = fuzz_seeds()
    names = sorted(seeds)
    out = []
    for index in range(count):
        base = names[index % len(names)]
        how, data = _mutate(seeds[base], rng)
        if rng.random() < 0.25:  # a second mutation on a quarter of them
            how2, data = _mutate(data or b"\x00", rng)
            how = f"{how}+{how2}"
        out.append((f"fuzz{index:04d}-{base}-{how}{_SUFFIX[base]}", data))
    return out
