"""A small, dependency-free reader/writer for the safetensors format.

Debian has no `safetensors` package, so `scored` carries its own. Only numpy is
required; torch is used when the caller asks for torch tensors.

File layout (all integers little-endian):

    u64  N                      length of the JSON header in bytes
    N    bytes of UTF-8 JSON    {"__metadata__": {str: str, ...},
                                 "<name>": {"dtype": "F32", "shape": [..],
                                            "data_offsets": [begin, end]}, ...}
    ...  data                   raw little-endian, C-order tensor bytes

`data_offsets` are relative to the first byte after the header.  The writer
pads the header with trailing spaces so that 8 + N is a multiple of 8, writes
the tensors contiguously in the order given (no holes, no overlap) and puts
`__metadata__` first.  The reader checks every tensor's byte count against
dtype x shape and that the tensors exactly tile the data section.

Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.  numpy has no
bfloat16: the numpy reader widens BF16 to float32 (exact), the torch reader
returns torch.bfloat16.  The writer rounds float32 -> BF16 to nearest even.
"""

import json
import struct

import numpy as np

__all__ = ["save", "load", "load_torch", "read_header", "DTYPES"]

# safetensors dtype -> (numpy dtype, bytes per element); BF16 is stored as uint16.
DTYPES = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1),
}

_NP_TO_ST = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}

_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def _f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bit patterns, round to nearest even."""
    a = np.ascontiguousarray(a, dtype="<f4")
    bits = a.view("<u4").astype(np.uint64)
    nan = np.isnan(a)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    out[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)  # keep NaN a (quiet) NaN
    return out


def _bf16_bits_to_f32(u):
    return (np.asarray(u, dtype="<u2").astype("<u4") << 16).view("<f4")


def _to_numpy(t):
    """numpy array from numpy / torch / python input (torch bf16 -> float32 values)."""
    if isinstance(t, np.ndarray):
        return t
    mod = type(t).__module__
    if mod.startswith("torch"):
        import torch

        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.float().numpy()
        return t.contiguous().numpy()
    return np.asarray(t)


def _encode(name, t, dtype):
    arr = _to_numpy(t)
    if dtype is None:
        if arr.dtype not in _NP_TO_ST:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {arr.dtype}")
        dtype = _NP_TO_ST[arr.dtype]
    dtype = dtype.upper()
    if dtype not in DTYPES:
        raise SafetensorsError(f"tensor {name!r}: unknown safetensors dtype {dtype!r}")
    if dtype == "BF16":
        if arr.dtype.kind != "f":
            raise SafetensorsError(f"tensor {name!r}: BF16 needs a floating-point tensor")
        data = _f32_to_bf16_bits(arr.astype(np.float32))
    else:
        npd = DTYPES[dtype][0]
        if arr.dtype.kind == "f" and npd.kind in "iub":
            raise SafetensorsError(f"tensor {name!r}: refusing to cast {arr.dtype} to {dtype}")
        data = np.ascontiguousarray(arr, dtype=npd)
    return dtype, list(arr.shape), data.tobytes(order="C")


def save(path, tensors, metadata=None, dtype=None):
    """Write `tensors` (mapping name -> numpy array or torch tensor, written in
    iteration order) to `path`.

    dtype: None keeps each tensor's own dtype (float64 -> F64, float32 -> F32,
    torch.bfloat16 -> BF16 ...); a string such as "F16"/"BF16"/"F32" converts every
    floating-point tensor to it; a dict {name: dtype} converts only the named ones
    (unnamed keep their own).  metadata: {str: str} stored as "__metadata__".
    """
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("__metadata__ keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    chunks = []
    offset = 0
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__" or not name:
            raise SafetensorsError(f"bad tensor name {name!r}")
        want = None
        if isinstance(dtype, str):
            want = dtype if _is_float(t) else None
        elif isinstance(dtype, dict):
            want = dtype.get(name)
        if want is None and is_torch_bf16(t):
            want = "BF16"
        st, shape, raw = _encode(name, t, want)
        header[name] = {"dtype": st, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)


def is_torch_bf16(t):
    if type(t).__module__.startswith("torch"):
        import torch

        return t.dtype == torch.bfloat16
    return False


def _is_float(t):
    if type(t).__module__.startswith("torch"):
        return t.is_floating_point()
    return np.asarray(t).dtype.kind == "f"


def read_header(path_or_bytes):
    """Returns (header dict without __metadata__, metadata dict, data start offset)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf = bytes(path_or_bytes[:8])
        get = lambda n: bytes(path_or_bytes[8 : 8 + n])  # noqa: E731
    else:
        with open(path_or_bytes, "rb") as f:
            buf = f.read(8)
            n0 = struct.unpack("<Q", buf)[0] if len(buf) == 8 else 0
            hbytes = f.read(min(n0, _MAX_HEADER))
        get = lambda n: hbytes  # noqa: E731
    if len(buf) != 8:
        raise SafetensorsError("file too short for a safetensors header")
    n = struct.unpack("<Q", buf)[0]
    if n > _MAX_HEADER:
        raise SafetensorsError(f"header length {n} is implausible")
    hb = get(n)
    if len(hb) != n:
        raise SafetensorsError("truncated header")
    try:
        header = json.loads(hb.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header must be a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsError("__metadata__ must map strings to strings")
    return header, meta, 8 + n


def _decode_all(data, header):
    """Validates entries against the data section; returns {name: (dtype, shape, bytes)}."""
    spans = []
    out = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"tensor {name!r}: malformed entry")
        dt = info.get("dtype")
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if dt not in DTYPES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {dt!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError(f"tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            raise SafetensorsError(f"tensor {name!r}: bad data_offsets {offs!r}")
        b, e = offs
        count = 1
        for s in shape:
            count *= s
        if not (0 <= b <= e <= len(data)):
            raise SafetensorsError(f"tensor {name!r}: data_offsets {offs} outside data ({len(data)} bytes)")
        if e - b != count * DTYPES[dt][1]:
            raise SafetensorsError(
                f"tensor {name!r}: {e - b} bytes for {dt} {shape} (expected {count * DTYPES[dt][1]})")
        spans.append((b, e, name))
        out[name] = (dt, shape, data[b:e])
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise SafetensorsError(f"tensor {name!r}: data not contiguous (starts at {b}, expected {pos})")
        pos = e
    if pos != len(data):
        raise SafetensorsError(f"{len(data) - pos} trailing bytes after the last tensor")
    return out


def _read(path):
    with open(path, "rb") as f:
        blob = f.read()
    header, meta, start = read_header(blob)
    return _decode_all(memoryview(blob)[start:], header), meta


def load(path, bf16_as_float32=True):
    """Returns (OrderedDict name -> numpy array, metadata dict).  Tensors come in
    header order.  BF16 becomes float32 (or raw uint16 bits if bf16_as_float32=False)."""
    entries, meta = _read(path)
    out = {}
    for name, (dt, shape, raw) in entries.items():
        a = np.frombuffer(raw, dtype=DTYPES[dt][0]).reshape(shape).copy()
        if dt == "BF16" and bf16_as_float32:
            a = _bf16_bits_to_f32(a).reshape(shape)
        out[name] = a
    return out, meta


def load_torch(path):
    """Returns (dict name -> torch tensor with the file's dtype, metadata dict)."""
    import torch

    entries, meta = _read(path)
    out = {}
    for name, (dt, shape, raw) in entries.items():
        a = np.frombuffer(raw, dtype=DTYPES[dt][0]).reshape(shape).copy()
        if dt == "BF16":
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a)
        out[name] = t
    return out, meta
