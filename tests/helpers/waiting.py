"""Polling for a condition that another process makes true."""

from __future__ import annotations

import time


def wait_until(check, timeout: float = 20.0, what: str = "the condition", interval: float = 0.1):
    """``check()``'s first truthy value, polled every ``interval`` seconds; AssertionError after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
