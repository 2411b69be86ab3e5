"""Shared test fixtures. Tests run on the CPU; CUDA tests skip when there is no GPU; tests that need the
shared data folder (``../shared`` beside the checkout) skip with a reason when it is absent."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", REPO.parent / "shared"))

torch.set_num_threads(min(2, torch.get_num_threads()))

# The CLI processes the tests start never meet a warm CLI server the developer may have running (engine/cli_server.py):
# the tests that want one start their own, in their own folder.
os.environ["INTRINSIC_LAB_CLI_SERVER_DIR"] = tempfile.mkdtemp(prefix="intrinsic-lab-tests-")
atexit.register(shutil.rmtree, os.environ["INTRINSIC_LAB_CLI_SERVER_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (set INTRINSIC_LAB_SHARED)")
    return SHARED


@pytest.fixture
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    return torch.device("cuda")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An isolated data folder (database + artifacts) for one test."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("INTRINSIC_LAB_DATA", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


@pytest.fixture
def sessions(data_dir):
    """The session factory of a freshly migrated SQLite store in ``data_dir`` (tests/db has its own, for every
    database URL it is given)."""
    from db.session import make_engine, make_sessions, migrate

    migrate()
    engine = make_engine()
    yield make_sessions(engine)
    engine.dispose()


S3_ENV = "TEST_S3_URL"


@pytest.fixture(scope="session")
def s3_server() -> dict[str, str]:
    """The throw-away S3 server of ``make test`` (``scripts/s3-test-server.sh``): endpoint and credentials, read
    from ``TEST_S3_URL`` (``http://ACCESS:SECRET@127.0.0.1:PORT``)."""
    from urllib.parse import urlsplit

    url = os.environ.get(S3_ENV)
    if not url:
        pytest.skip(f"{S3_ENV} is not set: no S3 server (`make test` starts SeaweedFS with scripts/s3-test-server.sh "
                    f"once requirements-test.txt is installed)")
    parts = urlsplit(url)
    return {"AWS_ENDPOINT_URL_S3": f"{parts.scheme}://{parts.hostname}:{parts.port}",
            "AWS_ACCESS_KEY_ID": parts.username, "AWS_SECRET_ACCESS_KEY": parts.password}


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket on the test S3 server, with the AWS variables pointing at it; emptied and removed after."""
    import uuid

    import boto3

    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE", "INTRINSIC_LAB_ARTIFACTS_LINKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL_S3"])
    bucket = f"lab-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
