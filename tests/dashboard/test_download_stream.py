"""Big results reach the browser without the dashboard holding them whole: zips are built in chunks on disk, a PNG
button reads its file only when clicked, and object storage serves the file itself through a presigned link."""

from __future__ import annotations

import os
import tracemalloc
import zipfile

import pytest

from dashboard import backend, results
from db.artifacts import CHUNK, open_artifacts

BIG = 16 * CHUNK  # each file: many streaming chunks, so holding one whole would show
BOUND = BIG // 3  # a few chunks in flight (the S3 client reads ahead), far from a whole file


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_artifacts(tmp_path / "artifacts")
    return open_artifacts(f"s3://{request.getfixturevalue('s3_bucket')}/lab")


def _peak(call):
    """(result, peak bytes allocated by Python during ``call``)."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        value = call()
        return value, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_zip_of_big_results_is_built_in_chunks(store):
    files = [os.urandom(BIG) for _ in range(3)]
    keys = [store.put(data) for data in files]
    store.link(keys[0])  # (an S3 store makes its client on first use)
    members = [(f"layer{i}.png", key) for i, key in enumerate(keys)] + [("result.json", b"{}")]
    handle, peak = _peak(lambda: results.zip_file(members, store))
    assert peak < BOUND, f"building the zip held {peak / 1e6:.1f} MB (one file is {BIG / 1e6:.1f} MB)"
    with handle, zipfile.ZipFile(handle) as archive:
        assert [archive.read(f"layer{i}.png") for i in range(3)] == files
        assert archive.read("result.json") == b"{}"


def test_a_png_button_gets_a_file_to_read_once_or_a_link(store):
    data = os.urandom(BIG)
    key = store.put(data)
    link = backend.artifact_link(key, "big.png", artifacts=store)
    assert (link is None) == (store.url.startswith("s3://") is False)  # object storage: the browser fetches it
    handle, peak = _peak(lambda: backend.artifact_file(key, store))
    assert peak < BOUND, f"opening the download held {peak / 1e6:.1f} MB"
    with handle:
        assert handle.read() == data  # what Streamlit does on the click: one read of the whole file


def test_result_pages_draw_links_for_a_bucket(s3_bucket, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INTRINSIC_LAB_ARTIFACTS", f"s3://{s3_bucket}/lab")
    key = open_artifacts().put(b"\x89PNG a layer")

    def page():
        import os

        import streamlit as st

        from dashboard import views

        views.download_png(st, "PNG", os.environ["LAYER_KEY"], "jiep_1_shading.png", "button")

    monkeypatch.setenv("LAYER_KEY", key)
    app = AppTest.from_function(page).run()
    assert not app.exception
    (button,) = app.get("link_button")
    assert button.proto.url.startswith(os.environ["AWS_ENDPOINT_URL_S3"] + f"/{s3_bucket}/lab/{key[:2]}/")
    assert "jiep_1_shading.png" in button.proto.url
    monkeypatch.setenv("INTRINSIC_LAB_ARTIFACTS_LINKS", "off")  # a bucket browsers cannot reach: a button
    app = AppTest.from_function(page).run()
    assert not app.exception and not app.get("link_button") and len(app.get("download_button")) == 1
