"""Read TensorFlow checkpoints (the "tensor bundle" format) with numpy only -- no TensorFlow.

A checkpoint ``prefix`` is two kinds of file:

* ``prefix.index``: a LevelDB-style sorted string table (SSTable). Its data blocks map each variable name to a
  ``BundleEntryProto`` (dtype, shape, shard id, byte offset and size in that shard, crc32c); the empty key maps to a
  ``BundleHeaderProto`` (number of shards, endianness). The table ends with a 48-byte footer holding two block handles
  (meta-index, index) and a magic number; the index block maps separator keys to the data blocks' handles.
* ``prefix.data-SSSSS-of-NNNNN``: the shards, each a plain concatenation of the tensors' raw bytes.

SSTable details handled here: each block is followed by a 5-byte trailer (1 compression byte, 4 bytes masked
crc32c); keys are prefix-compressed against the previous key (``shared, non_shared, value_length`` varints) with the
compression reset at each restart point (listed at the block's end). TensorFlow writes bundle indexes without
compression; a snappy-compressed block would say so in its trailer byte and is refused with a clear error.

Protobuf messages are decoded by hand (only varint, 64-bit, length-delimited and 32-bit wire types occur).

Example::

    >>> from engine.convert.tf_checkpoint import list_variables, read_checkpoint
    >>> info = list_variables("model/Decom/RetinexNet-tensorflow")     # doctest: +SKIP
    >>> info["DecomNet/recon_layer/kernel"].shape                         # doctest: +SKIP
    (3, 3, 64, 4)
    >>> tensors = read_checkpoint("model/Decom/RetinexNet-tensorflow")  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
BLOCK_TRAILER_SIZE = 5
COMPRESSION_NAMES = {0: "none", 1: "snappy", 2: "zlib"}

#: tensorflow.DataType enum value → numpy dtype (little-endian); strings and resources are not plain bytes.
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
TF_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


class CheckpointFormatError(ValueError):
    """The file is not a readable TensorFlow tensor-bundle checkpoint (the message says what is wrong)."""


# --- crc32c (Castagnoli), as LevelDB masks it ---------------------------------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """LevelDB stores crc32c values rotated and offset so that a crc of data containing crcs stays well-mixed."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- protobuf wire format -----------------------------------------------------------------------------------

def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointFormatError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one serialized protobuf message; unknown fields are skipped by callers."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise CheckpointFormatError("truncated length-delimited protobuf field")
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointFormatError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor's bytes are and how to read them."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool = False  # partitioned variables store slices elsewhere; not supported

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype not in TF_DTYPES:
            label = TF_DTYPE_NAMES.get(self.dtype, f"enum {self.dtype}")
            raise CheckpointFormatError(f"{self.name}: dtype {label} is not a plain numeric tensor")
        return TF_DTYPES[self.dtype]


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in iter_fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = next((_signed64(v) for f, _, v in iter_fields(value) if f == 1), 0)
            dims.append(size)
        elif field == 3 and value:
            raise CheckpointFormatError("tensor of unknown rank")
    return tuple(dims)


def parse_entry(name: str, buf: bytes) -> TensorEntry:
    fields = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": None, "sliced": False}
    for field, _, value in iter_fields(buf):
        if field == 1:
            fields["dtype"] = value
        elif field == 2:
            fields["shape"] = _parse_shape(value)
        elif field == 3:
            fields["shard_id"] = value
        elif field == 4:
            fields["offset"] = _signed64(value)
        elif field == 5:
            fields["size"] = _signed64(value)
        elif field == 6:
            fields["crc32c"] = value
        elif field == 7:
            fields["sliced"] = True
    return TensorEntry(name=name, **fields)


def parse_header(buf: bytes) -> dict[str, int]:
    header = {"num_shards": 1, "endianness": 0}
    for field, _, value in iter_fields(buf):
        if field == 1:
            header["num_shards"] = value
        elif field == 2:
            header["endianness"] = value
    return header


# --- SSTable ------------------------------------------------------------------------------------------------

def _block_handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return offset, size, pos


def read_block(table: bytes, offset: int, size: int, *, verify: bool = True) -> bytes:
    """The contents of one block, after checking its trailer (compression byte and masked crc32c)."""
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointFormatError(f"block at {offset} (+{size}) runs past the end of the index file")
    contents = table[offset:end]
    compression = table[end]
    if compression != 0:
        name = COMPRESSION_NAMES.get(compression, f"type {compression}")
        raise CheckpointFormatError(f"block at {offset} is {name}-compressed; TensorFlow bundle indexes are not, "
                                    f"so this file was written by something else")
    if verify:
        stored = unmask_crc(struct.unpack_from("<I", table, end + 1)[0])
        if crc32c(table[offset:end + 1]) != stored:
            raise CheckpointFormatError(f"block at {offset}: crc32c mismatch (the index file is corrupt)")
    return contents


def iter_block(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of one block, undoing the prefix compression of keys."""
    if len(block) < 4:
        raise CheckpointFormatError("block too short for its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    data_end = len(block) - 4 - 4 * num_restarts
    if data_end < 0:
        raise CheckpointFormatError(f"block claims {num_restarts} restart points, more than fit")
    restarts = set(struct.unpack_from(f"<{num_restarts}I", block, data_end)) if num_restarts else set()
    pos, key = 0, b""
    while pos < data_end:
        at_restart = pos in restarts
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_length, pos = read_varint(block, pos)
        if at_restart and shared:
            raise CheckpointFormatError(f"entry at restart point {pos} shares {shared} bytes with a previous key")
        if shared > len(key) or pos + non_shared + value_length > data_end:
            raise CheckpointFormatError("corrupt block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_length]
        pos += value_length


def iter_table(table: bytes, *, verify: bool = True) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in memory, in key order."""
    if len(table) < FOOTER_SIZE:
        raise CheckpointFormatError(f"{len(table)} bytes is too short for an SSTable footer")
    footer = table[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0]
    if magic != TABLE_MAGIC:
        raise CheckpointFormatError("not an SSTable (wrong magic number at the end of the file)")
    _, _, pos = _block_handle(footer)  # meta-index handle: no filters or stats are needed
    index_offset, index_size, _ = _block_handle(footer, pos)
    index = read_block(table, index_offset, index_size, verify=verify)
    for _, handle in iter_block(index):
        offset, size, _ = _block_handle(handle)
        yield from iter_block(read_block(table, offset, size, verify=verify))


# --- checkpoints --------------------------------------------------------------------------------------------

def checkpoint_prefix(path: str | Path) -> Path:
    """``prefix``, ``prefix.index`` or ``prefix.data-…`` → ``prefix``."""
    path = Path(path)
    name = path.name
    if name.endswith(".index"):
        return path.with_name(name[: -len(".index")])
    if ".data-" in name:
        return path.with_name(name.split(".data-")[0])
    return path


def find_checkpoints(path: str | Path) -> list[Path]:
    """Checkpoint prefixes under ``path``: a prefix or one of its files, a folder holding one checkpoint (the
    ``checkpoint`` file's ``model_checkpoint_path`` wins, as in TensorFlow), or a folder of such folders (sorted)."""
    path = Path(path)
    prefix = checkpoint_prefix(path)
    if prefix.with_name(prefix.name + ".index").is_file():
        return [prefix]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no TensorFlow checkpoint (expected PREFIX.index or a folder)")
    found = _checkpoint_in_folder(path)
    if found:
        return [found]
    nested = [p for p in (_checkpoint_in_folder(d) for d in sorted(path.iterdir()) if d.is_dir()) if p]
    if not nested:
        raise FileNotFoundError(f"{path}: no TensorFlow checkpoint (.index file) in it or its sub-folders")
    return nested


def _checkpoint_in_folder(folder: Path) -> Path | None:
    state = folder / "checkpoint"
    if state.is_file():
        for line in state.read_text(errors="replace").splitlines():
            if line.startswith("model_checkpoint_path:"):
                name = line.split(":", 1)[1].strip().strip('"')
                prefix = Path(name) if Path(name).is_absolute() else folder / name
                # The recorded path is often absolute on the authors' machine; fall back to the local file name.
                for candidate in (prefix, folder / Path(name).name):
                    if candidate.with_name(candidate.name + ".index").is_file():
                        return candidate
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) > 1:
        raise FileNotFoundError(f"{folder}: {len(indexes)} checkpoints and no `checkpoint` file saying which one")
    return checkpoint_prefix(indexes[0]) if indexes else None


def _single_prefix(path: str | Path) -> Path:
    """A checkpoint prefix from a prefix, one of its files, or a folder holding exactly one checkpoint."""
    path = Path(path)
    if path.is_dir():
        found = find_checkpoints(path)
        if len(found) != 1:
            raise FileNotFoundError(f"{path}: holds {len(found)} checkpoints; name one of them")
        return found[0]
    return checkpoint_prefix(path)


def read_index(prefix: str | Path, *, verify: bool = True) -> tuple[dict[str, int], dict[str, TensorEntry]]:
    """The bundle header and every tensor entry of ``prefix.index``, by variable name."""
    prefix = _single_prefix(prefix)
    index_path = prefix.with_name(prefix.name + ".index")
    try:
        table = index_path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{index_path}: no such checkpoint index") from None
    header, entries = None, {}
    try:
        for key, value in iter_table(table, verify=verify):
            if key == b"":
                header = parse_header(value)
            else:
                name = key.decode("utf-8")
                entries[name] = parse_entry(name, value)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{index_path}: {exc}") from None
    if header is None:
        raise CheckpointFormatError(f"{index_path}: no bundle header (is this a TensorFlow V2 checkpoint index?)")
    if header["endianness"] != 0:
        raise CheckpointFormatError(f"{index_path}: big-endian checkpoints are not supported")
    return header, entries


def list_variables(prefix: str | Path) -> dict[str, TensorEntry]:
    """Variable name → entry (dtype, shape, where its bytes are), reading only the index."""
    return read_index(prefix)[1]


def shard_path(prefix: Path, shard_id: int, num_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard_id:05d}-of-{num_shards:05d}")


def read_checkpoint(prefix: str | Path, include: Callable[[str], bool] | None = None, *,
                    verify: bool = True) -> dict[str, np.ndarray]:
    """Variable name → numpy array for every (or every ``include``-d) variable of a checkpoint.

    The bytes of each tensor are checked against the entry's crc32c when ``verify`` (pure Python, about a second per
    few megabytes). Raises :class:`CheckpointFormatError` if a shard is missing, too short or corrupt.
    """
    prefix = _single_prefix(prefix)
    header, entries = read_index(prefix, verify=verify)
    wanted = [e for name, e in entries.items() if include is None or include(name)]
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for entry in wanted:
        if entry.sliced:
            raise CheckpointFormatError(f"{entry.name}: partitioned (sliced) variables are not supported")
        dtype = entry.numpy_dtype
        if entry.shard_id not in shards:
            path = shard_path(prefix, entry.shard_id, header["num_shards"])
            try:
                shards[entry.shard_id] = path.read_bytes()
            except FileNotFoundError:
                raise CheckpointFormatError(f"{path}: data shard missing") from None
        shard = shards[entry.shard_id]
        if entry.offset + entry.size > len(shard):
            raise CheckpointFormatError(
                f"{entry.name}: needs bytes {entry.offset}–{entry.offset + entry.size} but the data shard has "
                f"{len(shard)} bytes (truncated or empty data file)")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CheckpointFormatError(f"{entry.name}: {entry.size} bytes do not hold a {dtype} tensor of shape "
                                        f"{entry.shape}")
        raw = shard[entry.offset:entry.offset + entry.size]
        if verify and entry.crc32c is not None and crc32c(raw) != unmask_crc(entry.crc32c):
            raise CheckpointFormatError(f"{entry.name}: crc32c mismatch (the data file is corrupt)")
        tensors[entry.name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
    return tensors
