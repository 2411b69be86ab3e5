"""The TensorFlow checkpoint reader: a hand-built SSTable exercising restarts and prefix compression, and the
authors' real RetinexNet index/data files (skipped without ../shared)."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from engine.convert import tf_checkpoint as tfc

OFFICIAL = "weights/retinexnet-official"


# --- a minimal writer, used only to produce test inputs with known content -----------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(items: list[tuple[bytes, bytes]], restart_every: int) -> bytes:
    body, restarts, previous = bytearray(), [], b""
    for n, (key, value) in enumerate(items):
        shared = 0
        if n % restart_every == 0:
            restarts.append(len(body))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    body += struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    return bytes(body)


def _with_trailer(block: bytes, compression: int = 0) -> bytes:
    crc = tfc.crc32c(block + bytes([compression]))
    return block + bytes([compression]) + struct.pack("<I", _mask(crc))


def write_checkpoint(prefix, tensors: dict[str, np.ndarray], restart_every: int = 2) -> None:
    data, entries = bytearray(), []
    for name in sorted(tensors):
        array = np.asarray(tensors[name], dtype="<f4")  # not ascontiguousarray: it makes scalars 1-D
        raw = array.tobytes()
        shape = b"".join(_field(2, 2, _field(1, 0, d)) for d in array.shape)
        entry = (_field(1, 0, 1) + _field(2, 2, shape) + _field(4, 0, len(data)) + _field(5, 0, len(raw))
                 + b"\x35" + struct.pack("<I", _mask(tfc.crc32c(raw))))
        entries.append((name.encode(), entry))
        data += raw
    header = (b"", _field(1, 0, 1))
    items = [header, *entries]
    # Two data blocks, so that the index block really points at more than one.
    half = len(items) // 2
    blocks, table, handles = [items[:half], items[half:]], bytearray(), []
    for chunk in blocks:
        raw = _block(chunk, restart_every)
        handles.append((chunk[-1][0], _varint(len(table)) + _varint(len(raw))))
        table += _with_trailer(raw)
    meta = _block([], 1)
    meta_handle = _varint(len(table)) + _varint(len(meta))
    table += _with_trailer(meta)
    index = _block(handles, 1)
    index_handle = _varint(len(table)) + _varint(len(index))
    table += _with_trailer(index)
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", tfc.TABLE_MAGIC)
    table += footer
    (prefix.parent / (prefix.name + ".index")).write_bytes(bytes(table))
    (prefix.parent / (prefix.name + ".data-00000-of-00001")).write_bytes(bytes(data))


@pytest.fixture
def synthetic(tmp_path, rng):
    tensors = {
        "net/layer_a/kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
        "net/layer_a/bias": rng.standard_normal(4).astype(np.float32),
        "net/layer_ab/kernel": rng.standard_normal((1, 1, 4, 2)).astype(np.float32),
        "net/layer_b/bias": np.arange(5, dtype=np.float32),
        "other/scalar": np.array(2.5, dtype=np.float32),
    }
    prefix = tmp_path / "model.ckpt"
    write_checkpoint(prefix, tensors, restart_every=2)
    return prefix, tensors


def test_synthetic_round_trip_with_prefix_compression(synthetic):
    prefix, tensors = synthetic
    entries = tfc.list_variables(prefix)
    assert sorted(entries) == sorted(tensors)
    assert entries["net/layer_ab/kernel"].shape == (1, 1, 4, 2)
    assert entries["other/scalar"].shape == ()
    read = tfc.read_checkpoint(str(prefix) + ".index")
    for name, value in tensors.items():
        np.testing.assert_array_equal(read[name], value)
    only = tfc.read_checkpoint(prefix, include=lambda n: n.endswith("bias"))
    assert sorted(only) == ["net/layer_a/bias", "net/layer_b/bias"]


def test_block_keys_are_rebuilt_across_restarts():
    items = [(b"abc", b"1"), (b"abd", b"2"), (b"abde", b"3"), (b"b", b"4"), (b"bz", b"5")]
    assert list(tfc.iter_block(_block(items, restart_every=2))) == items
    assert list(tfc.iter_block(_block(items, restart_every=16))) == items


def test_corrupt_data_and_compressed_blocks_are_refused(synthetic):
    prefix, _ = synthetic
    data = prefix.parent / (prefix.name + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(tfc.CheckpointFormatError, match="crc32c"):
        tfc.read_checkpoint(prefix)
    assert tfc.read_checkpoint(prefix, verify=False)  # the same bytes read fine without the check
    data.write_bytes(b"")
    with pytest.raises(tfc.CheckpointFormatError, match="empty data file"):
        tfc.read_checkpoint(prefix)

    index = prefix.parent / (prefix.name + ".index")
    table = bytearray(index.read_bytes())
    # Rewrite the first data block's trailer as snappy-compressed (its size is the first index entry's handle).
    footer = bytes(table[-48:])
    _, _, pos = tfc._block_handle(footer)
    index_offset, index_size, _ = tfc._block_handle(footer, pos)
    _, handle = next(tfc.iter_block(bytes(table[index_offset:index_offset + index_size])))
    offset, size, _ = tfc._block_handle(handle)
    table[offset + size] = 1
    index.write_bytes(bytes(table))
    with pytest.raises(tfc.CheckpointFormatError, match="snappy"):
        tfc.list_variables(prefix)


def test_not_an_sstable(tmp_path):
    prefix = tmp_path / "x"
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(tfc.CheckpointFormatError, match="magic"):
        tfc.list_variables(prefix)


# --- the authors' files ----------------------------------------------------------------------------------------

def test_official_decom_checkpoint(shared_dir):
    folder = shared_dir / OFFICIAL / "Decom"
    header, entries = tfc.read_index(folder)
    assert header == {"num_shards": 1, "endianness": 0}
    assert entries["DecomNet/shallow_feature_extraction/kernel"].shape == (9, 9, 4, 64)
    assert entries["DecomNet/recon_layer/kernel"].shape == (3, 3, 64, 4)
    assert entries["DecomNet/activated_layer_3/kernel/AdamOptimizer_1"].shape == (3, 3, 64, 64)
    tensors = tfc.read_checkpoint(folder, include=lambda n: n.startswith("DecomNet/") and "Adam" not in n)
    assert len(tensors) == 14
    kernel = tensors["DecomNet/activated_layer_0/kernel"]
    assert kernel.dtype == np.float32 and np.isfinite(kernel).all() and 0.05 < kernel.std() < 1.0


def test_official_relight_index_and_folder_search(shared_dir):
    root = shared_dir / OFFICIAL
    assert [p.parent.name for p in tfc.find_checkpoints(root)] == ["Decom", "Relight"]
    entries = tfc.list_variables(root / "Relight")
    shapes = {n: e.shape for n, e in entries.items() if n.startswith("RelightNet/") and "Adam" not in n}
    assert shapes["RelightNet/conv2d/kernel"] == (3, 3, 4, 64)
    assert shapes["RelightNet/conv2d_7/kernel"] == (1, 1, 192, 64)
    assert shapes["RelightNet/conv2d_8/kernel"] == (3, 3, 64, 1)
    assert len(shapes) == 18
    with pytest.raises(tfc.CheckpointFormatError, match="empty data file"):
        tfc.read_checkpoint(root / "Relight", include=lambda n: n == "RelightNet/conv2d/kernel")


def test_official_copy_with_flipped_byte_fails_crc(shared_dir, tmp_path):
    source = shared_dir / OFFICIAL / "Decom"
    for f in source.iterdir():
        shutil.copy(f, tmp_path / f.name)
    data = tmp_path / "RetinexNet-tensorflow.data-00000-of-00001"
    entry = tfc.list_variables(tmp_path)["DecomNet/recon_layer/bias"]
    raw = bytearray(data.read_bytes())
    raw[entry.offset] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(tfc.CheckpointFormatError, match="recon_layer/bias: crc32c"):
        tfc.read_checkpoint(tmp_path, include=lambda n: n == "DecomNet/recon_layer/bias")
