"""Peak extra memory of serving a 12 MP result through the dashboard's download paths, before and after streaming.

    python scripts/bench_artifact_stream.py            # local store; with TEST_S3_URL set, an S3 bucket too

A job result of three 12 MP (4000×3000) 16-bit PNG layers (like JieP's enhanced / illumination / reflectance) is
stored, then each download path runs the way a click runs it, up to the bytes Streamlit keeps to serve the file
(Streamlit's own ``convert_data_to_bytes_and_infer_mime``, which the download button calls). Python's tracemalloc
reports the peak of memory allocated during the path, above what was allocated before it, and what is still held
after it (the copy Streamlit keeps). "before" is the code of the dashboard before this change (commit 4d5257c):
the PNG bytes read while the page is drawn, and zips built in a ``BytesIO`` from whole files. On an S3 store
"before" is that same code reading from the bucket (the dashboard had no S3 backend before).

The S3 server for ``TEST_S3_URL`` is the test one: ``url=$(scripts/s3-test-server.sh start)``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import tracemalloc
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dashboard import results  # noqa: E402
from db.artifacts import open_artifacts  # noqa: E402
from engine.imaging import encode_png  # noqa: E402

try:
    from streamlit.runtime.download_data_util import convert_data_to_bytes_and_infer_mime
except ImportError:  # pragma: no cover - another Streamlit version
    convert_data_to_bytes_and_infer_mime = None


def streamlit_bytes(data) -> bytes:
    """What st.download_button keeps: the file's bytes (read from a file object if given one)."""
    if convert_data_to_bytes_and_infer_mime is None:
        return data if isinstance(data, bytes) else data.read()
    return convert_data_to_bytes_and_infer_mime(data, unsupported_error=TypeError(type(data)))[0]


def make_layers(side=(3000, 4000), count=3) -> list[bytes]:
    rng = np.random.default_rng(0)
    h, w = side
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.5 + 0.4 * np.sin(x / 300), 0.5 + 0.4 * np.cos(y / 200), (x + y) / (w + h)], axis=2)
    layers = []
    for i in range(count):  # a smooth picture with sensor-like noise: compresses like a real photo's layers
        noise = rng.normal(0, 0.01, (h, w, 3)).astype(np.float32)
        layers.append(encode_png(np.clip(base * (0.7 + 0.1 * i) + noise, 0, 1), bit_depth=16))
    return layers


def measure(label: str, path, sizes: dict) -> dict:
    tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    kept = path()
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {"path": label, "peak_extra_MB": round((peak - start) / 1e6, 1), "held_after_MB": round((now - start) / 1e6, 1),
           **sizes}
    del kept
    print(json.dumps(row))
    return row


def old_png(store, key):
    """Before: every PNG button read its file while the page was drawn, and handed Streamlit the bytes."""
    return streamlit_bytes(store.get(key))


def old_zip(store, members):
    """Before: dashboard.results.result_zip built the archive in memory from whole files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members:
            archive.writestr(name, content if isinstance(content, bytes) else store.get(content))
    return streamlit_bytes(buffer.getvalue())


def new_png(store, key, filename):
    """After: a presigned link for object storage (the file never passes through the dashboard), else the file
    opened on click and read once by Streamlit."""
    link = store.link(key, filename, "image/png")
    if link is not None:
        return link
    return streamlit_bytes(store.open_file(key))


def new_zip(store, members):
    with results.zip_file(members, store) as handle:
        return streamlit_bytes(handle)


def bench(store, layers: list[bytes], name: str) -> list[dict]:
    keys = [store.put(data) for data in layers]
    store.link(keys[0], "warm-up.png")  # an S3 store makes its client (and reads its service model) on first use
    members = [(f"layer{i}.png", key) for i, key in enumerate(keys)] + [("result.json", b"{}")]
    png = {"file_MB": round(len(layers[0]) / 1e6, 1)}
    archive = {"zip_MB": round(sum(map(len, layers)) / 1e6, 1)}
    rows = [
        # Drawing a result page with one PNG button: before, the file was read for the button; after, nothing is.
        measure(f"{name}: page drawn (PNG button not clicked), before", lambda: old_png(store, keys[0]), png),
        measure(f"{name}: page drawn (PNG button not clicked), after", lambda: store.link(keys[0], "l.png"), png),
        measure(f"{name}: PNG download, before", lambda: old_png(store, keys[0]), png),
        measure(f"{name}: PNG download, after", lambda: new_png(store, keys[0], "layer0.png"), png),
        measure(f"{name}: zip of the job, before", lambda: old_zip(store, members), archive),
        measure(f"{name}: zip of the job, after", lambda: new_zip(store, members), archive),
    ]
    if name == "s3":
        from db.artifacts import S3ArtifactStore

        unlinked = S3ArtifactStore(store.bucket, store.prefix, links="off")
        unlinked.exists(keys[0])  # its S3 client is made on first use: not part of a download
        rows.append(measure("s3 (links off): PNG download, after", lambda: new_png(unlinked, keys[0], "l.png"), png))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    args = parser.parse_args()
    layers = make_layers(tuple(args.side))
    with tempfile.TemporaryDirectory() as folder:
        bench(open_artifacts(folder), layers, "local")
    url = os.environ.get("TEST_S3_URL")
    if not url:
        print("TEST_S3_URL is not set: the S3 paths were not measured", file=sys.stderr)
        return 0
    import boto3

    parts = urlsplit(url)
    os.environ.update(AWS_ENDPOINT_URL_S3=f"{parts.scheme}://{parts.hostname}:{parts.port}",
                      AWS_ACCESS_KEY_ID=parts.username, AWS_SECRET_ACCESS_KEY=parts.password,
                      AWS_DEFAULT_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    try:
        bench(open_artifacts(f"s3://{bucket}/lab"), layers, "s3")
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
