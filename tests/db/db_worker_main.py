"""Entry point of the worker processes the tests start: the real CLI, plus the test-only methods.

Usage: python tests/db/db_worker_main.py [worker options]   (with the repository root on PYTHONPATH)
"""

import os
import sys

os.environ.setdefault("INTRINSIC_LAB_WARM", "none")  # these workers time lease and signal handling, not warm-ups

import db_test_methods  # noqa: F401  (registers the test-only methods in this process)
from engine.cli import main

sys.exit(main(["worker", *sys.argv[1:]]))
