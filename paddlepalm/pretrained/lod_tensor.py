"""The old Paddle (fluid) per-variable tensor file, read and written without Paddle.

Released PALM / ERNIE 1.x / BERT / ELMo checkpoints are a directory with one file
per variable, written by ``fluid.io.save_params`` (C++ ``SerializeToStream`` in
``paddle/fluid/framework/lod_tensor.cc`` and ``TensorToStream`` in
``tensor_util.cc``). Each file, little-endian::

    uint32   LoDTensor version (0)
    uint64   LoD level L, then L times: uint64 byte size + that many bytes of size_t offsets
    uint32   Tensor version (0)
    int32    byte size N of the TensorDesc protobuf, then N bytes of it
    ...      raw data, C order, numel * itemsize bytes

``TensorDesc`` (``framework.proto``, ``VarType.TensorDesc``) is
``required Type data_type = 1; repeated int64 dims = 2;``: a small message we
encode and decode by hand (proto2 writes the repeated dims unpacked; packed dims
are accepted too).
"""
import io
import os
import struct
from typing import BinaryIO, Dict, List, Tuple, Union

import numpy as np

from paddlepalm.utils.fileio import atomic_open

# framework.proto VarType.Type -> numpy dtype
_PROTO_TO_DTYPE = {
    0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32, 6: np.float64,
    20: np.uint8, 21: np.int8, 23: np.complex64, 24: np.complex128,
}
_BF16 = 22  # stored as uint16 bit patterns; widened to float32 on read
_DTYPE_TO_PROTO = {np.dtype(v): k for k, v in _PROTO_TO_DTYPE.items()}


class TensorFormatError(ValueError):
    """A file that is not a tensor in the old Paddle format."""


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TensorFormatError("truncated varint in tensor description")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise TensorFormatError("varint too long in tensor description")
    if result >= 1 << 63:
        result -= 1 << 64
    return result, pos


def encode_tensor_desc(data_type: int, dims: List[int]) -> bytes:
    """``TensorDesc`` as protobuf bytes: field 1 varint, field 2 repeated varint (unpacked)."""
    out = bytearray(b"\x08" + _varint(data_type))
    for dim in dims:
        out += b"\x10" + _varint(int(dim))
    return bytes(out)


def decode_tensor_desc(buf: bytes) -> Tuple[int, List[int]]:
    data_type, dims, pos = None, [], 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            data_type, pos = _read_varint(buf, pos)
        elif field == 2 and wire == 0:
            dim, pos = _read_varint(buf, pos)
            dims.append(dim)
        elif field == 2 and wire == 2:  # packed
            length, pos = _read_varint(buf, pos)
            end = pos + length
            while pos < end:
                dim, pos = _read_varint(buf, pos)
                dims.append(dim)
        else:
            raise TensorFormatError(f"unexpected field {field} (wire type {wire}) in tensor description")
    if data_type is None:
        raise TensorFormatError("tensor description has no data type")
    return data_type, dims


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise TensorFormatError(f"file ends inside the {what} ({len(data)} of {size} bytes)")
    return data


def read_lod_tensor(stream: BinaryIO) -> Tuple[np.ndarray, List[List[int]]]:
    """One tensor and its LoD from ``stream`` (positioned at its first byte)."""
    (version,) = struct.unpack("<I", _read_exact(stream, 4, "LoDTensor version"))
    if version != 0:
        raise TensorFormatError(f"LoDTensor version {version}, expected 0")
    (lod_level,) = struct.unpack("<Q", _read_exact(stream, 8, "LoD level"))
    if lod_level > 16:
        raise TensorFormatError(f"LoD level {lod_level} is implausible")
    lod = []
    for _ in range(lod_level):
        (size,) = struct.unpack("<Q", _read_exact(stream, 8, "LoD size"))
        lod.append(np.frombuffer(_read_exact(stream, size, "LoD data"), dtype="<u8").tolist())
    (tensor_version,) = struct.unpack("<I", _read_exact(stream, 4, "tensor version"))
    if tensor_version != 0:
        raise TensorFormatError(f"tensor version {tensor_version}, expected 0")
    (desc_size,) = struct.unpack("<i", _read_exact(stream, 4, "tensor description size"))
    if not 0 < desc_size < 1 << 16:
        raise TensorFormatError(f"tensor description size {desc_size} is implausible")
    data_type, dims = decode_tensor_desc(_read_exact(stream, desc_size, "tensor description"))
    if any(d < 0 for d in dims):
        raise TensorFormatError(f"negative dimension in {dims}")
    numel = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if data_type == _BF16:
        raw = np.frombuffer(_read_exact(stream, numel * 2, "tensor data"), dtype="<u2")
        array = (raw.astype(np.uint32) << 16).view(np.float32)
    elif data_type in _PROTO_TO_DTYPE:
        dtype = np.dtype(_PROTO_TO_DTYPE[data_type]).newbyteorder("<")
        array = np.frombuffer(_read_exact(stream, numel * dtype.itemsize, "tensor data"), dtype=dtype)
    else:
        raise TensorFormatError(f"unsupported tensor data type {data_type}")
    return array.reshape(dims).copy(), lod


def write_lod_tensor(stream: BinaryIO, array: np.ndarray, lod: List[List[int]] = ()) -> None:
    """Write ``array`` the way ``fluid.io.save_params`` wrote one variable."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _DTYPE_TO_PROTO:
        raise TypeError(f"cannot write dtype {array.dtype} in the old Paddle format")
    stream.write(struct.pack("<I", 0))
    stream.write(struct.pack("<Q", len(lod)))
    for level in lod:
        data = np.asarray(level, dtype="<u8").tobytes()
        stream.write(struct.pack("<Q", len(data)) + data)
    stream.write(struct.pack("<I", 0))
    desc = encode_tensor_desc(_DTYPE_TO_PROTO[dtype], list(array.shape))
    stream.write(struct.pack("<i", len(desc)) + desc)
    stream.write(array.astype(dtype.newbyteorder("<"), copy=False).tobytes())


def load_tensor_file(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        try:
            array, _ = read_lod_tensor(f)
        except TensorFormatError as err:
            raise TensorFormatError(f"{path}: not a tensor in the old Paddle format: {err}") from None
        if f.read(1):
            raise TensorFormatError(f"{path}: trailing bytes after the tensor data")
    return array


def save_tensor_file(path: str, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        write_lod_tensor(f, array)


def looks_like_tensor_file(path: str) -> bool:
    """Cheap test: the first 24 bytes parse as the header of a tensor file."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return False
    if len(head) < 20:
        return False
    version, lod_level = struct.unpack("<IQ", head[:12])
    return version == 0 and lod_level <= 16


def read_params_dir(directory: str) -> Dict[str, np.ndarray]:
    """All per-variable files of a ``params/`` directory, keyed by variable name (the file name)."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        if not looks_like_tensor_file(path):
            continue  # e.g. a stray README; listed by the caller as not loaded
        out[name] = load_tensor_file(path)
    return out


def write_params_dir(directory: str, state: Dict[str, np.ndarray]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, array in state.items():
        if os.sep in name or name in (".", ".."):
            raise ValueError(f"variable name {name!r} cannot be a file name")
        save_tensor_file(os.path.join(directory, name), np.asarray(array))


def tensor_from_bytes(data: Union[bytes, bytearray]) -> np.ndarray:
    array, _ = read_lod_tensor(io.BytesIO(data))
    return array
