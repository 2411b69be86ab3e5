"""Content-addressed files: an artifact's key is the sha256 of its bytes, stored at ``ab/cdef…`` under a root.

Two backends with the same keys, hashing and atomicity, chosen by one setting, ``INTRINSIC_LAB_ARTIFACTS``
(read by :func:`open_artifacts`, which every process uses):

* a local folder (the default, ``$INTRINSIC_LAB_DATA/artifacts``; :class:`ArtifactStore`). Writes go to a
  temporary file in the destination folder and are moved into place with ``os.replace``, so a reader never sees
  half a file and two writers of the same bytes cannot corrupt each other;
* any S3-compatible object store (``s3://bucket/prefix``; :class:`S3ArtifactStore`: AWS S3, MinIO, SeaweedFS,
  Ceph), with the usual AWS variables for credentials, region and endpoint. An object appears whole or not at
  all (one PUT), and every PUT carries the key as its SHA-256 checksum, so the service itself refuses bytes that
  do not hash to their key.

On both, writing bytes that are already there is a no-op, keys are checked before they touch a path or a bucket
(no ``..``, no absolute paths), :meth:`~ArtifactStore.open` streams an artifact in chunks and
:meth:`~ArtifactStore.put_file` stores one from a file without loading it whole.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, BinaryIO, Iterator
from urllib.parse import urlsplit

from .session import data_dir

_KEY = re.compile(r"[0-9a-f]{64}")
#: The setting that chooses the backend: a folder (default ``$INTRINSIC_LAB_DATA/artifacts``) or ``s3://bucket/prefix``.
ARTIFACTS_ENV = "INTRINSIC_LAB_ARTIFACTS"
#: Whether the dashboard links downloads straight to the bucket (presigned URLs): ``auto`` (the default: yes for an
#: S3 store), ``off``, or the endpoint URL that browsers use when it differs from the servers' (a proxy, compose).
LINKS_ENV = "INTRINSIC_LAB_ARTIFACTS_LINKS"
CHUNK = 1 << 20  # streaming and hashing read this many bytes at a time
LINK_SECONDS = 3600


class ArtifactError(Exception):
    """A malformed key, or a missing or corrupt artifact file."""


class ArtifactStorageUnavailable(ArtifactError, OSError):
    """The storage itself failed: unreachable, credentials refused, no such bucket. An ``OSError``, so a worker
    treats it as infrastructure and retries the job later."""


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ArtifactError(f"not an artifact key (64 lowercase hex digits): {key!r}")
    return key


def _hash_stream(handle: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class _Store:
    """What both backends share: everything built on ``open``, ``put_file`` and ``keys``."""

    url: str

    def get(self, key: str, *, verify: bool = False) -> bytes:
        """The bytes stored under ``key``; ``verify`` re-hashes them (catches an object damaged in storage)."""
        with self.open(key) as handle:
            data = handle.read()  # one buffer of the file's size (the raw file's readall)
        if verify and content_key(data) != key:
            raise ArtifactError(f"artifact {key} is corrupt (its content hash differs)")
        return data

    def open(self, key: str) -> BinaryIO:  # pragma: no cover - each backend has its own
        raise NotImplementedError

    def put_file(self, source: str | Path | IO[bytes]) -> str:
        """Store a file's bytes (a path, or a binary file read from where it stands) without loading it whole; a
        file already stored is not written again."""
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                return self.put_file(handle)
        start = source.tell()
        key, size = _hash_stream(source)
        if self._stored_size(key) != size:
            self._upload(source, start, key, size)
        return key

    def _stored_size(self, key: str) -> int | None:  # pragma: no cover - each backend has its own
        raise NotImplementedError

    def _upload(self, source: IO[bytes], start: int, key: str, size: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def keys(self) -> Iterator[str]:  # pragma: no cover - each backend has its own
        raise NotImplementedError

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its key; storing bytes that are already there does nothing."""
        return self.put_file(io.BytesIO(bytes(data)))

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.open(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def open_file(self, key: str) -> BinaryIO:
        """The artifact as a seekable binary file (what Streamlit's download button reads): the stored file itself
        for a local store, else a temporary copy streamed to disk in chunks (deleted when closed)."""
        with tempfile.TemporaryFile() as spool, self.open(key) as source:
            shutil.copyfileobj(source, spool, CHUNK)
            return reader_of(spool)

    def hash_matches(self, key: str) -> bool:
        """Whether the stored bytes still hash to ``key``, read in chunks (a missing artifact raises)."""
        with self.open(key) as handle:
            return _hash_stream(handle)[0] == key

    def link(self, key: str, filename: str | None = None, mime: str = "application/octet-stream") -> str | None:
        """A URL a browser can download the artifact from directly, or None (a local store serves no links)."""
        check_key(key)
        return None

    def check(self) -> None:
        """Raise :class:`ArtifactStorageUnavailable` with the reason if the store cannot be used (a folder always
        can: it is made on the first write)."""


class ArtifactStore(_Store):
    """Files by sha256 under ``root`` (default ``$INTRINSIC_LAB_DATA/artifacts``): the local backend."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else data_dir() / "artifacts"

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    @property
    def url(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:]

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ArtifactError(f"artifact {key} is missing from {self.root}") from None

    def open(self, key: str) -> BinaryIO:
        """The artifact as a binary file opened for reading (read it in chunks; close it, or use ``with``)."""
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise ArtifactError(f"artifact {key} is missing from {self.root}") from None

    def open_file(self, key: str) -> BinaryIO:
        return self.open(key)

    def put(self, data: bytes) -> str:
        data = bytes(data)
        key = content_key(data)
        if self._stored_size(key) != len(data):
            self._write(self.path(key), lambda handle: handle.write(data))
        return key

    def _stored_size(self, key: str) -> int | None:
        target = self.path(key)
        return target.stat().st_size if target.is_file() else None

    def _upload(self, source: IO[bytes], start: int, key: str, size: int) -> None:
        def copy(handle):
            source.seek(start)
            digest = hashlib.sha256()
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
            if digest.hexdigest() != key:
                raise ArtifactError("the file changed while it was being stored")

        self._write(self.path(key), copy)

    def _write(self, target: Path, write) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
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

    def delete(self, key: str) -> bool:
        """Remove one file; returns whether it was there. The caller checks that no row refers to it."""
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def keys(self) -> Iterator[str]:
        """Every stored key (temporary files of writes in progress are skipped), in sorted order."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for file in sorted(folder.iterdir()):
                key = folder.name + file.name
                if _KEY.fullmatch(key) and file.is_file():
                    yield key


LocalArtifactStore = ArtifactStore


class _ObjectReader(io.RawIOBase):
    """An S3 object's body as a raw binary file: read in chunks, ``read()`` with no size reads the rest."""

    def __init__(self, body, size: int, describe: str):
        self._body, self._left, self._describe = body, size, describe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        try:
            data = self._body.read(min(len(buffer), self._left))
        except Exception as exc:  # noqa: BLE001 -- a broken connection mid-object
            raise ArtifactStorageUnavailable(f"reading {self._describe} failed: {exc}") from exc
        buffer[:len(data)] = data
        self._left -= len(data)
        if not data:
            raise ArtifactStorageUnavailable(f"{self._describe} ended early")
        return len(data)

    def readall(self) -> bytes:
        # One allocation of the object's size (RawIOBase's default joins a list of chunks: twice the memory).
        if self._left <= 0:
            return b""
        data = self._body.read(self._left)
        self._left -= len(data)
        if self._left:
            raise ArtifactStorageUnavailable(f"{self._describe} ended early")
        return data

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ArtifactStore(_Store):
    """Objects by sha256 at ``prefix/ab/cdef…`` in an S3 bucket (any S3-compatible service).

    Credentials, region and endpoint come from boto3's usual sources: ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` and, for a service other than AWS, ``AWS_ENDPOINT_URL_S3``
    (or ``AWS_ENDPOINT_URL``); or pass ``client``. With an explicit endpoint, requests use path-style addressing
    (``endpoint/bucket/key``), which every S3-compatible server understands.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client=None, links: str | None = None):
        if not bucket:
            raise ArtifactError("an s3:// artifact URL needs a bucket: s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._client = client
        self._links = (os.environ.get(LINKS_ENV) or "auto").strip() if links is None else links
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.url!r})"

    def __getstate__(self) -> dict:
        """Pickled (e.g. sent to a Ray worker) without its client and lock: the receiving process builds its own
        client from its own credentials and endpoint variables."""
        return {"bucket": self.bucket, "prefix": self.prefix, "_links": self._links}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._client = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = _make_client()
            return self._client

    def object_name(self, key: str) -> str:
        key = check_key(key)
        name = f"{key[:2]}/{key[2:]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, action, *args, **kwargs):
        """Run one S3 call; turn the storage failing into :class:`ArtifactStorageUnavailable` with the reason."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return action(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") and what != "bucket":
                raise
            if code == "NoSuchBucket" or (what == "bucket" and status == 404):
                raise ArtifactStorageUnavailable(f"the bucket {self.bucket!r} does not exist ({self.url})") from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden") \
                    or status == 403:
                raise ArtifactStorageUnavailable(
                    f"{self.url}: access refused ({code or status}); check AWS_ACCESS_KEY_ID and "
                    f"AWS_SECRET_ACCESS_KEY and the bucket's permissions") from None
            raise ArtifactStorageUnavailable(f"{self.url}: {what} failed: {code or status}: {exc}") from None
        except NoCredentialsError:
            raise ArtifactStorageUnavailable(
                f"{self.url}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
        except BotoCoreError as exc:
            raise ArtifactStorageUnavailable(f"{self.url}: {what} failed: {exc}") from None

    @staticmethod
    def _missing(exc) -> bool:
        error = exc.response.get("Error", {})
        return str(error.get("Code", "")) in ("NoSuchKey", "404", "NotFound") or \
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404

    def check(self) -> None:
        """Raise :class:`ArtifactStorageUnavailable` with a clear reason unless the bucket is there and usable."""
        self._call("bucket", self.client.head_bucket, Bucket=self.bucket)

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        name = self.object_name(key)
        try:
            return self._call("head", self.client.head_object, Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ArtifactError(f"artifact {key} is missing from {self.url}")
        return int(head["ContentLength"])

    def open(self, key: str) -> BinaryIO:
        """The object as a binary file streamed from the service (read it in chunks; close it, or use ``with``)."""
        from botocore.exceptions import ClientError

        name = self.object_name(key)
        try:
            response = self._call("get", self.client.get_object, Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if self._missing(exc):
                raise ArtifactError(f"artifact {key} is missing from {self.url}") from None
            raise
        return io.BufferedReader(_ObjectReader(response["Body"], int(response["ContentLength"]), f"{self.url}/{key}"),
                                 buffer_size=CHUNK)

    def _stored_size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def _upload(self, source: IO[bytes], start: int, key: str, size: int) -> None:
        """One streamed PUT (an object appears whole or not at all) that carries the SHA-256 the key was made from,
        so the service refuses the upload if what arrives hashes differently."""
        source.seek(start)
        body = source if start == 0 else _Window(source, start, size)
        self._call("put", self.client.put_object, Bucket=self.bucket, Key=self.object_name(key), Body=body,
                   ContentLength=size, ContentType="application/octet-stream",
                   ChecksumSHA256=base64.b64encode(bytes.fromhex(key)).decode())

    def delete(self, key: str) -> bool:
        """Remove one object; returns whether it was there. The caller checks that no row refers to it."""
        if self._head(key) is None:
            return False
        self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=self.object_name(key))
        return True

    def keys(self) -> Iterator[str]:
        """Every stored key, in sorted order (objects under the prefix that are not artifacts are skipped)."""
        start = f"{self.prefix}/" if self.prefix else ""
        pages = iter(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start))
        while (page := self._call("list", next, pages, None)) is not None:
            for item in page.get("Contents", []):
                rest = item["Key"][len(start):]
                key = rest.replace("/", "", 1)
                if len(rest) == 65 and rest[2] == "/" and _KEY.fullmatch(key):
                    yield key

    def link(self, key: str, filename: str | None = None, mime: str = "application/octet-stream") -> str | None:
        """A presigned GET URL (valid an hour) that downloads the object as ``filename``; None when links are off
        (``INTRINSIC_LAB_ARTIFACTS_LINKS=off``). Signing is local: it makes no request."""
        if self._links.lower() in ("off", "0", "no", "false", "none"):
            return None
        client = self.client
        if self._links.lower() not in ("", "auto", "on", "1", "yes", "true"):
            client = _make_client(endpoint_url=self._links)  # the endpoint as browsers reach it
        params = {"Bucket": self.bucket, "Key": self.object_name(key), "ResponseContentType": mime}
        if filename:
            safe = re.sub(r'[^A-Za-z0-9._-]', "_", filename)
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        return client.generate_presigned_url("get_object", Params=params, ExpiresIn=LINK_SECONDS)


class _Window(io.RawIOBase):
    """``size`` bytes of a file from ``start`` on (to PUT the rest of a file that was not read from its start)."""

    def __init__(self, handle: IO[bytes], start: int, size: int):
        self._handle, self._start, self._size, self._pos = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: offset, 1: self._pos + offset, 2: self._size + offset}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(max(0, min(len(buffer), self._size - self._pos)))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def reader_of(spool: IO[bytes]) -> BinaryIO:
    """A plain read-only file (``io.BufferedReader``, from the start) on the same open file as ``spool``, which the
    caller may then close: an unlinked temporary file lives on until the reader is closed too. ``read()`` of the
    whole reader allocates once, at the file's size."""
    spool.flush()
    reader = open(os.dup(spool.fileno()), "rb")
    reader.seek(0)
    return reader


def _make_client(endpoint_url: str | None = None):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - boto3 is in requirements.txt
        raise ArtifactError("an s3:// artifact store needs boto3 (pip install -r requirements.txt)") from None
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(signature_version="s3v4", retries={"max_attempts": 4, "mode": "standard"},
                    connect_timeout=10, read_timeout=60,
                    s3={"addressing_style": "path"} if endpoint else None)
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint, config=config,
                          region_name=session.region_name or ("us-east-1" if endpoint else None))


def parse_url(url: str) -> tuple[str, str, str]:
    """``("s3", bucket, prefix)`` for ``s3://bucket/prefix``, ``("file", path, "")`` for a folder."""
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise ArtifactError(f"an s3:// artifact URL has no query or fragment: {url!r}")
        return "s3", parts.netloc, parts.path.strip("/")
    if "://" in url and not url.startswith("file://"):
        raise ArtifactError(f"artifact storage must be a folder or s3://bucket/prefix, not {url!r}")
    return "file", url.removeprefix("file://"), ""


@functools.lru_cache(maxsize=16)
def _cached_s3(bucket: str, prefix: str, environment: tuple) -> S3ArtifactStore:
    return S3ArtifactStore(bucket, prefix)


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", LINKS_ENV)


def artifacts_url() -> str:
    """The configured artifact storage: ``$INTRINSIC_LAB_ARTIFACTS``, else the data folder's ``artifacts``."""
    return os.environ.get(ARTIFACTS_ENV) or str(data_dir() / "artifacts")


def open_artifacts(url: str | Path | None = None) -> ArtifactStore | S3ArtifactStore:
    """The artifact store at ``url`` (default :func:`artifacts_url`): a folder or ``s3://bucket/prefix``.

    S3 stores are cached per URL and credentials (one client, with its connection pool, per process); nothing
    connects until the first request.
    """
    kind, where, prefix = parse_url(str(url) if url is not None else artifacts_url())
    if kind == "file":
        return ArtifactStore(where)
    return _cached_s3(where, prefix, tuple(os.environ.get(name) for name in _S3_ENV))


def copy_store(source, target, *, progress=None) -> dict[str, int]:
    """Copy every artifact of ``source`` into ``target`` and check each one's hash where it lands.

    Objects already in ``target`` are not uploaded again but are verified like the rest, so running it twice is
    safe and the second run checks the first. Returns counts: ``copied``, ``skipped`` (already there),
    ``verified``, ``corrupt_source`` (a source file whose bytes no longer match its key: not copied) and
    ``corrupt_target`` (a target object that does not match its key).
    """
    counts = dict(copied=0, skipped=0, verified=0, corrupt_source=0, corrupt_target=0)
    for key in source.keys():
        if target.exists(key):
            counts["skipped"] += 1
        else:
            with tempfile.TemporaryFile() as spool:  # streamed: a big artifact never sits in memory whole
                with source.open(key) as handle:
                    shutil.copyfileobj(handle, spool, CHUNK)
                spool.seek(0)
                if _hash_stream(spool)[0] != key:
                    counts["corrupt_source"] += 1
                    if progress:
                        progress(key, "corrupt in the source: not copied")
                    continue
                spool.seek(0)
                target.put_file(spool)
            counts["copied"] += 1
        _tally(target, key, counts, "verified", "corrupt_target", "corrupt in the target", progress)
    return counts


def verify_store(store, *, progress=None) -> dict[str, int]:
    """Re-hash every artifact of a store: counts of ``ok`` and ``corrupt``."""
    counts = dict(ok=0, corrupt=0)
    for key in store.keys():
        _tally(store, key, counts, "ok", "corrupt", "corrupt", progress)
    return counts


def _tally(store, key: str, counts: dict[str, int], good: str, bad: str, problem: str, progress) -> None:
    """Re-hash one artifact and count it as ``good`` or ``bad`` (reporting a bad one to ``progress``)."""
    if store.hash_matches(key):
        counts[good] += 1
        return
    counts[bad] += 1
    if progress:
        progress(key, problem)
