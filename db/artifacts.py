"""Content-addressed files: an artifact's key is the sha256 of its bytes, stored at ``ab/cdef…`` under a root.

Writes go to a temporary file in the destination folder and are moved into place with ``os.replace``, so a
reader never sees half a file and two writers of the same bytes cannot corrupt each other. Writing the same
bytes twice is a no-op. Keys are checked before they touch the file system (no ``..``, no absolute paths).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from .session import data_dir

_KEY = re.compile(r"[0-9a-f]{64}")


class ArtifactError(Exception):
    """A malformed key, or a missing or corrupt artifact file."""


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ArtifactError(f"not an artifact key (64 lowercase hex digits): {key!r}")
    return key


class ArtifactStore:
    """Files by sha256 under ``root`` (default ``$INTRINSIC_LAB_DATA/artifacts``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else data_dir() / "artifacts"

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:]

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its key; storing bytes that are already there does nothing."""
        data = bytes(data)
        key = content_key(data)
        target = self.path(key)
        if target.is_file() and target.stat().st_size == len(data):
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[2:10]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            raise
        return key

    def get(self, key: str, *, verify: bool = False) -> bytes:
        """The bytes stored under ``key``; ``verify`` re-hashes them (catches a file damaged on disk)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {key} is missing from {self.root}") from None
        if verify and content_key(data) != key:
            raise ArtifactError(f"artifact {key} is corrupt (its content hash differs)")
        return data

    def delete(self, key: str) -> bool:
        """Remove one file; returns whether it was there. The caller checks that no row refers to it."""
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False
