"""Dataset adapters on tiny folders written by the tests (and on ../shared when present)."""

import json

import cv2
import numpy as np
import pytest

from engine.datasets import DatasetError, get_adapter


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[:, :, ::-1]
    assert cv2.imwrite(str(path), array)


def make_mit_object(folder, name, size=24):
    obj = folder / name
    refl = np.full((size, size, 3), 30000, np.uint16)
    refl[:, :, 0] = 60000
    write(obj / "reflectance.png", refl)
    write(obj / "shading.png", np.full((size, size), 20000, np.uint16))
    mask = np.zeros((size, size), np.uint16)
    mask[4:20, 4:20] = 65535
    write(obj / "mask.png", mask)
    write(obj / "diffuse.png", np.full((size, size, 3), 12345, np.uint16))
    return obj


def test_mit_loads_16bit_linear_truth(tmp_path):
    make_mit_object(tmp_path, "apple")
    make_mit_object(tmp_path, "pear")
    mit = get_adapter("mit-intrinsic")
    assert mit.items(tmp_path, "train") == ["apple"] and mit.items(tmp_path, "test") == ["pear"]
    sample = mit.load(tmp_path, "apple")
    assert sample.colour_space == "linear" and sample.meta["input_file"] == "diffuse.png"
    assert sample.frames[0][0, 0, 0] == pytest.approx(12345 / 65535)
    assert sample.truth["reflectance"][0, 0] == pytest.approx([60000 / 65535, 30000 / 65535, 30000 / 65535])
    assert sample.truth["shading"].shape == (24, 24, 1)
    assert sample.truth["mask"].sum() == 16 * 16


def test_mit_names_every_problem(tmp_path):
    make_mit_object(tmp_path, "apple")
    (tmp_path / "apple" / "shading.png").unlink()
    obj = make_mit_object(tmp_path, "box")
    write(obj / "mask.png", np.zeros((10, 10), np.uint16))
    with pytest.raises(DatasetError) as err:
        get_adapter("mit-intrinsic").validate(tmp_path)
    text = str(err.value)
    assert "apple: missing shading.png" in text
    assert "box: layers differ in size" in text and "mask.png 10×10" in text
    with pytest.raises(DatasetError, match="no such folder"):
        get_adapter("mit-intrinsic").validate(tmp_path / "nope")


def test_mit_empty_split_points_to_the_others(tmp_path):
    make_mit_object(tmp_path, "apple")
    with pytest.raises(DatasetError, match="empty here; it has items in: train, all"):
        get_adapter("mit-intrinsic").items(tmp_path, "test")


def test_lol_pairs_and_mismatch(tmp_path):
    write(tmp_path / "eval15/low/1.png", np.full((8, 12, 3), 10, np.uint8))
    write(tmp_path / "eval15/high/1.png", np.full((8, 12, 3), 200, np.uint8))
    lol = get_adapter("lol")
    assert lol.items(tmp_path, "test") == ["test/1"]
    sample = lol.load(tmp_path, "test/1")
    assert sample.colour_space == "srgb" and sample.truth["target"][0, 0, 0] == pytest.approx(200 / 255)
    write(tmp_path / "eval15/low/2.png", np.zeros((8, 12, 3), np.uint8))
    write(tmp_path / "eval15/high/3.png", np.zeros((9, 12, 3), np.uint8))
    with pytest.raises(DatasetError) as err:
        lol.validate(tmp_path)
    assert "eval15/low/2.png: no matching target image" in str(err.value)
    assert "eval15/high/3.png: no matching input image" in str(err.value)


def test_raindrop_test_a_layout(tmp_path):
    write(tmp_path / "data/0_rain.png", np.zeros((8, 8, 3), np.uint8))
    write(tmp_path / "gt/0_clean.png", np.ones((8, 8, 3), np.uint8))
    assert get_adapter("raindrop").items(tmp_path, "test") == ["test/0"]


def test_colour_constancy_json_and_csv(tmp_path):
    tau = tmp_path / "tau"
    write(tau / "a.png", np.full((4, 4, 3), 1000, np.uint16))
    (tau / "a_metadata.json").write_text(json.dumps({"illuminant_color_raw": [0.5, 0.4, 0.2]}))
    write(tau / "b.png", np.full((4, 4, 3), 1000, np.uint16))
    cc = get_adapter("color-constancy")
    with pytest.raises(DatasetError, match="1 image\\(s\\) without a ground-truth illuminant, e.g. b"):
        cc.validate(tau)
    (tau / "b_metadata.json").write_text(json.dumps({"illuminant_color_raw": [1, 1, 1]}))
    assert cc.load(tau, "a").truth["illuminant"] == pytest.approx([0.5, 0.4, 0.2])
    cube = tmp_path / "cube"
    for i in (1, 2, 10):
        write(cube / f"{i}.png", np.full((4, 4, 3), 1000, np.uint16))
    (cube / "cube+_gt.txt").write_text("0.1 0.2 0.3\n0.4 0.5 0.6\n0.7 0.8 0.9\n")
    assert cc.load(cube, "10").truth["illuminant"] == pytest.approx([0.7, 0.8, 0.9])  # natural order: 1, 2, 10
    (cube / "cube+_gt.txt").write_text("image,r,g,b\n2.png,1,2,3\n")
    with pytest.raises(DatasetError, match="2 image\\(s\\) without"):
        cc.validate(cube)


def test_iiw_split_and_missing_json(tmp_path):
    for i in range(6):
        write(tmp_path / f"{i + 100}.png", np.zeros((4, 4, 3), np.uint8))
        (tmp_path / f"{i + 100}.json").write_text(json.dumps({"intrinsic_points": [], "intrinsic_comparisons": []}))
    iiw = get_adapter("iiw")
    assert iiw.items(tmp_path, "test") == ["100", "105"]
    write(tmp_path / "7.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="7.png: no 7.json judgement file"):
        iiw.validate(tmp_path)


def test_sequences_and_faces(tmp_path):
    seq = tmp_path / "seq" / "scene"
    for i in range(3):
        write(seq / f"f{i}.png", np.full((6, 6, 3), 50 * i, np.uint8))
    write(seq / "f9.png", np.zeros((7, 6, 3), np.uint8))
    with pytest.raises(DatasetError, match="scene: frames differ in size"):
        get_adapter("image-sequence").validate(tmp_path / "seq")
    (seq / "f9.png").unlink()
    sample = get_adapter("image-sequence").load(tmp_path / "seq", "scene")
    assert len(sample.frames) == 3 and sample.colour_space == "srgb"
    faces = tmp_path / "faces"
    write(faces / "1_face.png", np.zeros((16, 16, 3), np.uint8))
    big = np.zeros((64, 64, 3), np.uint8)
    big[:32] = 255
    write(faces / "1_mask.png", big)
    normals = np.zeros((16, 16, 3), np.uint8)
    normals[..., 2] = 255
    normals[..., :2] = 128
    write(faces / "normals" / "1_face.png", normals)
    sample = get_adapter("faces").load(faces, "1")
    assert sample.truth["mask"].shape == (16, 16) and sample.truth["mask"].mean() == pytest.approx(0.5)
    assert sample.truth["normals"][0, 0] == pytest.approx([0, 0, 1], abs=0.01)
    write(faces / "2.png", np.zeros((16, 16, 3), np.uint8))
    write(faces / "2_mask.png", np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="2_mask.png: 32×16 does not have the shape"):
        get_adapter("faces").validate(faces)


def test_shared_mit_object(shared_dir):
    folder = shared_dir / "data" / "mit-intrinsic"
    if not folder.is_dir():
        pytest.skip("../shared/data/mit-intrinsic is absent")
    mit = get_adapter("mit-intrinsic")
    assert len(mit.items(folder, "all")) == 10
    sample = mit.load(folder, "apple")
    raw = cv2.imread(str(folder / "apple" / "diffuse.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    assert sample.frames[0][..., 0] == pytest.approx(raw[..., 2] / 65535.0)  # RGB order from OpenCV's BGR
    assert 0.05 < sample.truth["mask"].mean() < 0.95
