"""Uploads → sequence frames: several files, zips (hostile ones refused), videos, and the size check."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest

from engine import frame_uploads as sequences  # noqa: the tests say "sequences" for the upload module
from engine.errors import ImageDecodeError, ImageTooLargeError, InputKindError
from engine.imaging import encode_png
from engine.inputs import load_input
from engine.registry import InputKind


def png(value: float, h: int = 6, w: int = 8) -> bytes:
    return encode_png(np.full((h, w, 3), value, np.float32), bit_depth=8)


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_frames_in_natural_order_and_junk_skipped():
    data = make_zip({"seq/f10.png": png(0.8), "seq/f2.png": png(0.2), "seq/notes.txt": b"hello",
                     "__MACOSX/seq/._f2.png": b"junk", "seq/f1.png": png(0.1)})
    frames = sequences.decode_sequence([("frames.zip", data)])
    assert [round(float(f.mean()), 2) for f in frames] == [0.1, 0.2, 0.8]
    assert all(f.shape == (6, 8, 3) and f.dtype == np.float32 for f in frames)


@pytest.mark.parametrize("evil", ["../escape.png", "a/../../escape.png", "/etc/escape.png", "C:/escape.png",
                                  "..\\escape.png"])
def test_zip_with_path_traversal_is_refused(evil):
    data = make_zip({"ok.png": png(0.5), evil: png(0.5)})
    with pytest.raises(ImageDecodeError, match="refused.*outside the archive"):
        sequences.frames_from_zip(data, "evil.zip")


def test_zip_bomb_is_refused_before_inflating():
    data = make_zip({"a.png": png(0.5), "bomb.png": b"\0" * (8 << 20)})  # 8 MB of zeros → a few kB
    with pytest.raises(ImageTooLargeError, match="zip bomb"):
        sequences.frames_from_zip(data, "bomb.zip")


def test_zip_member_that_lies_about_its_size_gives_a_clear_error():
    data = bytearray(make_zip({"a.png": png(0.5)}, compression=zipfile.ZIP_STORED))
    real = len(png(0.5))
    # shrink the declared size in both headers: reading stops at the declared size and the checksum fails
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(header) + offset
        data[at:at + 4] = (real // 2).to_bytes(4, "little")
    with pytest.raises(ImageDecodeError, match="liar.zip:a.png: cannot be read"):
        sequences.frames_from_zip(bytes(data), "liar.zip")


def test_zip_limits_on_members_and_total_size():
    many = make_zip({f"{i}.png": png(0.5) for i in range(5)})
    with pytest.raises(ImageTooLargeError, match="entries"):
        sequences.frames_from_zip(many, "many.zip", sequences.SequenceLimits(max_zip_members=4))
    with pytest.raises(ImageTooLargeError, match="inflate"):
        sequences.frames_from_zip(many, "big.zip", sequences.SequenceLimits(max_zip_bytes=100))


def test_not_a_zip_and_empty_zip_give_clear_errors():
    with pytest.raises(ImageDecodeError, match="not a readable zip"):
        sequences.frames_from_zip(b"PK\x03\x04 broken", "broken.zip")
    with pytest.raises(ImageDecodeError, match="no image files"):
        sequences.frames_from_zip(make_zip({"readme.txt": b"x"}), "empty.zip")


def test_mismatched_frame_sizes_name_the_offending_frame():
    files = [("a.png", png(0.1)), ("b.png", png(0.2)), ("c.png", png(0.3, h=7, w=9))]
    with pytest.raises(InputKindError) as caught:
        sequences.decode_sequence(files)
    message = str(caught.value)
    assert "c.png is 9×7" in message and "a.png is 8×6" in message and "same size" in message


def write_video(path, values, size=(32, 24), fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for value in values:
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, :] = (value, 255 - value, 128)  # BGR
        writer.write(frame)
    writer.release()


def test_tiny_video_is_sampled_evenly(tmp_path):
    values = [10 * i for i in range(12)]
    path = tmp_path / "clip.avi"
    write_video(path, values)
    frames = sequences.frames_from_video(path.read_bytes(), "clip.avi", n_frames=4)
    assert len(frames) == 4
    expected = [values[i] for i in (0, 4, 7, 11)]  # round(linspace(0, 11, 4)) = 0, 4, 7, 11
    for frame, value in zip(frames, expected):
        assert frame.pixels.shape == (24, 32, 3)
        red, green, blue = frame.pixels.reshape(-1, 3).mean(0) * 255  # BGR written → RGB read
        assert abs(blue - value) < 6 and abs(green - (255 - value)) < 6 and abs(red - 128) < 6
    # the same through the generic upload path and the CLI loader, by content and by suffix
    assert len(sequences.frames_from_upload(path.read_bytes(), "upload.bin", n_video_frames=3)) == 3
    loaded = load_input([path], InputKind.IMAGE_SEQUENCE)
    assert len(loaded.frames) == min(12, sequences.DEFAULT_LIMITS.video_frames)


def test_garbage_video_gives_a_clear_error():
    with pytest.raises(ImageDecodeError, match="not a video"):
        sequences.frames_from_video(b"RIFF\0\0\0\0AVI garbage", "bad.avi")


def test_load_input_accepts_a_zip_of_frames(tmp_path):
    path = tmp_path / "frames.zip"
    path.write_bytes(make_zip({"1.png": png(0.25), "2.png": png(0.75)}))
    loaded = load_input([path], InputKind.IMAGE_SEQUENCE)
    assert [round(float(f.mean()), 2) for f in loaded.frames] == [0.25, 0.75]


def test_container_kind_by_content_and_name():
    assert sequences.container_kind(make_zip({"1.png": png(0.5)}), "upload") == "zip"
    assert sequences.container_kind(b"\0\0\0\x18ftypisom", "clip") == "video"
    assert sequences.container_kind(b"RIFF\0\0\0\0AVI LIST", "clip") == "video"
    assert sequences.container_kind(png(0.5), "clip.mov") == "video"
    assert sequences.container_kind(png(0.5), "frame.png") == "image"
    assert {"zip", "mp4", "avi", "png", "gif"} <= set(sequences.UPLOAD_TYPES)


def test_expand_upload_gives_plain_image_files(tmp_path):
    members = sequences.expand_upload(make_zip({"b/2.png": png(0.2), "b/10.png": png(0.9)}), "f.zip")
    assert [n for n, _ in members] == ["f.zip:b/2.png", "f.zip:b/10.png"] and members[0][1] == png(0.2)
    path = tmp_path / "clip.avi"
    write_video(path, [0, 100, 200])
    frames = sequences.expand_upload(path.read_bytes(), "clip.avi", n_video_frames=2)
    assert [n for n, _ in frames] == ["clip.avi frame 1.png", "clip.avi frame 3.png"]
    assert cv2.imdecode(np.frombuffer(frames[1][1], np.uint8), cv2.IMREAD_COLOR).shape == (24, 32, 3)
    assert sequences.expand_upload(png(0.5), "one.png") == [("one.png", png(0.5))]


def test_dashboard_zip_upload_runs_and_shading_frames_are_browsable(data_dir):
    """End to end through the Decompose page: a zip of frames → Weiss → a frame slider over the shading."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from dashboard import state
    from db.session import make_engine, make_sessions, migrate
    from engine.worker import Worker, WorkerConfig

    migrate()
    engine = make_engine()
    try:
        rng = np.random.default_rng(0)
        reflectance = rng.uniform(0.2, 0.9, (12, 16, 3)).astype(np.float32)
        archive = make_zip({f"f{i}.png": encode_png(reflectance * s, bit_depth=8)
                            for i, s in enumerate((0.4, 0.7, 1.0))})
        app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
        at = AppTest.from_file(app, default_timeout=60).run()
        at.segmented_control(key=state.INPUT_KIND).set_value("image_sequence").run()
        at.file_uploader(key=state.upload_key("image_sequence")).set_value(
            ("frames.zip", archive, "application/zip")).run()
        assert not at.error, [e.value for e in at.error]
        captions = " ".join(str(c.value) for c in at.caption)
        assert "16×12 px × 3 frames" in captions and "frames.zip: 3 frames from the archive" in captions
        at.multiselect(key=state.methods_key("image_sequence")).set_value(["weiss"])
        at.button(key=state.RUN).click().run()
        [job_id] = at.session_state[state.SUBMITTED_JOBS]
        Worker(WorkerConfig(worker_id="test", device="cpu"), sessions=make_sessions(engine)).run(until_empty=True)
        at.run()
        slider = at.slider(key=state.frame_key(job_id, "shading"))
        assert (slider.min, slider.max, slider.value) == (1, 3, 1)
        slider.set_value(2).run()
        shown = [c for image in at.image for c in image.captions]
        assert "input frame 2" in shown and any(c.startswith("shading frame 2:") for c in shown)
        assert {"PNG of frame 2", "All 3 frames (zip)"} <= {b.label for b in at.download_button}
    finally:
        engine.dispose()
