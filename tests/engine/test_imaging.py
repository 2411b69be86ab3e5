import io

import numpy as np
import pytest
from PIL import Image

from engine import imaging
from engine.errors import ImageDecodeError, ImageTooLargeError

from helpers.badfiles import cases, gradient, png_bytes


@pytest.mark.parametrize("name,data,expected", cases(), ids=[c[0] for c in cases()])
def test_bad_and_unusual_files(name, data, expected):
    if expected is None:
        decoded = imaging.decode_image(data, name)
        assert decoded.pixels.dtype == np.float32 and decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
        assert 0.0 <= decoded.pixels.min() and decoded.pixels.max() <= 1.0
    else:
        with pytest.raises(ImageDecodeError) as info:
            imaging.decode_image(data, name)
        assert expected in str(info.value)
        assert name in str(info.value)


def test_huge_header_is_refused_before_decoding():
    from helpers.badfiles import huge_png_header

    with pytest.raises(ImageTooLargeError, match="50000×50000"):
        imaging.decode_image(huge_png_header(), "bomb.png")


def test_sixteen_bit_png_keeps_precision():
    base = gradient(40, 50)
    data = png_bytes(np.round(base * 65535).astype(np.uint16)[:, :, ::-1])
    decoded = imaging.decode_image(data, "deep.png")
    assert decoded.bit_depth == 16
    np.testing.assert_allclose(decoded.pixels, base, atol=1 / 65535)
    # 8-bit quantisation would be off by up to 1/510; 16-bit must be far closer.
    assert np.abs(decoded.pixels - base).max() < 1e-4


def test_cmyk_jpeg_colours_are_close():
    base = gradient()
    decoded = imaging.decode_image(dict((n, d) for n, d, _ in cases())["cmyk.jpg"], "cmyk.jpg")
    assert np.abs(decoded.pixels - base).mean() < 0.05


def test_exif_orientation_is_applied():
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :5] = 255  # white band on the left
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=100)
    decoded = imaging.decode_image(buf.getvalue(), "rotated.jpg")
    assert decoded.pixels.shape[:2] == (20, 10)
    assert decoded.pixels[:5].mean() > 0.9 and decoded.pixels[-5:].mean() < 0.1  # band now on top


def test_greyscale_and_alpha():
    grey = Image.fromarray(np.full((8, 9), 128, np.uint8), mode="L")
    buf = io.BytesIO()
    grey.save(buf, format="PNG")
    decoded = imaging.decode_image(buf.getvalue(), "grey.png")
    assert decoded.pixels.shape == (8, 9, 3) and decoded.alpha is None
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:4, :, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    decoded = imaging.decode_image(buf.getvalue(), "alpha.png")
    assert decoded.alpha is not None and decoded.alpha[:4].max() == 0 and decoded.alpha[4:].min() == 1


def test_animated_frames_decode_as_sequence():
    data = dict((n, d) for n, d, _ in cases())["animated.gif"]
    frames = imaging.decode_frames(data, "animated.gif")
    assert len(frames) == 3
    assert [round(float(f.mean()), 2) for f in frames] == [0.0, 0.5, 1.0]


def test_png_roundtrip_and_srgb():
    base = gradient()
    decoded = imaging.decode_image(imaging.encode_png(base), "x.png")
    np.testing.assert_allclose(decoded.pixels, base, atol=1 / 65535)
    x = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(imaging.linear_to_srgb(imaging.srgb_to_linear(x)), x, atol=1e-5)
    assert imaging.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)
