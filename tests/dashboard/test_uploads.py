"""Bad and unusual uploads through ``dashboard.uploads.prepare_input``, the function the Decompose page calls."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboard.uploads import UploadedFile, method_problems, prepare_input
from engine.registry import InputKind, get_method
from helpers.badfiles import cases, gradient, huge_png_header, png_bytes

GOOD = png_bytes(np.round(gradient() * 255).astype(np.uint8)[:, :, ::-1])


def one(name: str, data: bytes, kind: InputKind = InputKind.IMAGE):
    return prepare_input([UploadedFile(name, data)], kind)


@pytest.mark.parametrize("name, data, expected", [
    ("empty.png", b"", "empty.png: the file is empty (0 bytes)"),
    ("cut.png", GOOD[: len(GOOD) // 2], "cut.png: the image data is truncated or corrupt"),
    ("notes.png", b"shopping list: eggs, milk, bread\n" * 3, "notes.png: not a recognised image (its content looks like text)"),
    ("bomb.png", huge_png_header(), "bomb.png: the image is 50000×50000 = 2500.0 megapixels, above the limit of 64 megapixels"),
    ("anim.gif", [c for c in cases() if c[0] == "animated.gif"][0][1], "anim.gif: an animated GIF with 3 frames"),
])
def test_bad_file_gives_its_message_and_nothing_to_run(name, data, expected):
    prepared = one(name, data)
    assert len(prepared.errors) == 1
    assert prepared.errors[0].startswith(expected)
    assert not prepared.ready and prepared.frames == []


def test_bad_file_among_good_ones_keeps_the_good_frames():
    prepared = prepare_input([UploadedFile("a.png", GOOD), UploadedFile("b.png", b"")], InputKind.IMAGE_PAIR)
    assert prepared.errors == ["b.png: the file is empty (0 bytes)"]
    assert len(prepared.frames) == 1 and prepared.frames[0].shape == (24, 32, 3)


def test_good_image_decodes_to_the_project_convention():
    prepared = one("g.png", GOOD)
    assert prepared.ready and prepared.errors == []
    frame = prepared.frames[0]
    assert frame.dtype == np.float32 and frame.shape == (24, 32, 3)
    np.testing.assert_allclose(frame, gradient(), atol=0.5 / 255)
    assert prepared.size_label == "32×24 px"


def test_alpha_becomes_the_mask_and_is_mentioned():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, 6:, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    prepared = one("cut-out.png", buffer.getvalue())
    assert prepared.mask is not None and prepared.mask[:, :6].max() == 0 and prepared.mask[:, 6:].min() == 1
    assert any("transparency used as the foreground mask" in n for n in prepared.notes)


def test_sixteen_bit_precision_is_kept_and_reported():
    deep = png_bytes(np.round(gradient() * 65535).astype(np.uint16)[:, :, ::-1])
    prepared = one("deep.png", deep)
    assert prepared.ready and any("16-bit" in n for n in prepared.notes)
    np.testing.assert_allclose(prepared.frames[0], gradient(), atol=1 / 65535)


def test_frame_counts_and_sizes_for_pairs_and_sequences():
    assert one("a.png", GOOD, InputKind.IMAGE_PAIR).errors == [
        "This input needs a pair of images: add another image (1 of 2 so far)."]
    three = [UploadedFile(f"{i}.png", GOOD) for i in range(3)]
    assert prepare_input(three, InputKind.IMAGE_PAIR).errors == [
        "This input needs a pair of images, but 3 images were given; remove 1."]
    small = png_bytes(np.zeros((8, 8, 3), np.uint8))
    mixed = prepare_input([UploadedFile("a.png", GOOD), UploadedFile("b.png", small)], InputKind.IMAGE_SEQUENCE)
    assert mixed.errors == ["All frames must have the same size; got 8×8, 32×24."]


def test_animated_gif_is_a_sequence_of_frames():
    gif = [c for c in cases() if c[0] == "animated.gif"][0][1]
    prepared = one("anim.gif", gif, InputKind.IMAGE_SEQUENCE)
    assert prepared.ready and len(prepared.frames) == 3
    assert [round(float(f.mean()), 3) for f in prepared.frames] == [0.0, round(128 / 255, 3), 1.0]


def test_the_memory_check_reads_each_requests_settings():
    """A 12 MP photo: Ma et al. at its default max_side runs; raised to 2048, its network would need 3.2 GB (2.8 GB
    measured), so the page says so, naming the setting, before anything is queued."""
    import engine.methods  # noqa: F401 - registers the methods

    prepared = one("phone.png", png_bytes(np.zeros((3000, 4000, 3), np.uint8)))
    spec = get_method("ma2018")
    assert method_problems(prepared, [(spec, {})]) == {}
    problems = method_problems(prepared, [(spec, {"max_side": 2048})])
    assert "with max_side=2048, above the budget" in problems["ma2018"]
    assert "lower max_side" in problems["ma2018"]


def test_method_rules_are_checked_before_enqueueing():
    tiny = png_bytes(np.full((4, 6, 3), 90, np.uint8))
    prepared = one("tiny.png", tiny)
    assert prepared.ready  # a fine image, just too small for JieP
    problems = method_problems(prepared, [(get_method("jiep"), {})])
    assert problems == {"jiep": "jiep: the image is 6×4 pixels; at least 8×8 is needed"}
    assert method_problems(one("g.png", GOOD), [(get_method("jiep"), {})]) == {}
