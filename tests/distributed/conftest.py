"""A real local Ray cluster (2 CPUs, no dashboard) per test module, stopped after it (so it does not idle beside the
rest of the suite); the tests skip without ray."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[client]>=2.60,<2.61')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024 ** 2)
    yield ray
    ray.shutdown()
