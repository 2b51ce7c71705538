"""Minimal safetensors reader and writer (standard library + torch), for the fixture
generators, the weight converter and the benchmarks run with Debian's /usr/bin/python3.

File layout: an 8-byte little-endian header length, a JSON header
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
padded with spaces to a multiple of 8 bytes, then the raw little-endian data in header order.

    import st
    st.save("w.safetensors", model.state_dict(), {"arch": "vgg11"})
    tensors = st.load("w.safetensors")        # name -> torch.Tensor
    meta = st.metadata("w.safetensors")       # the "__metadata__" map
"""
import json
import os
import struct
import sys

import torch

_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
_TORCH = {v: k for k, v in _DTYPES.items()}

if sys.byteorder != "little":
    raise ImportError("st.py writes raw tensor bytes and supports little-endian machines only")


def _bytes(t):
    """The raw bytes of a tensor in row-major order."""
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def save(path, tensors, metadata=None, dtype=torch.float32):
    """Writes a dict name -> tensor. Floating-point tensors are stored as dtype (float32 by
    default; dtype=None keeps them as they are); other dtypes (e.g. int64
    num_batches_tracked) are kept. metadata: optional dict of strings. The file is written
    beside path and renamed over it, so a reader never sees half a file."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError("tensor names must be strings, got %r" % (name,))
        if not torch.is_tensor(t):
            raise TypeError("%s is not a tensor" % name)
        if t.is_floating_point() and dtype is not None:
            t = t.to(dtype)
        if t.dtype not in _DTYPES:
            raise TypeError("%s: unsupported dtype %s" % (name, t.dtype))
        data = _bytes(t)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    return header, memoryview(raw)[8 + n:]


def load(path):
    """Reads a whole file: dict name -> torch.Tensor (in header order)."""
    header, data = _read(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _TORCH.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError("%s: tensor %s lies outside the file" % (path, name))
        buf = bytearray(data[begin:end])
        shape = info["shape"]
        if len(buf) == 0:
            out[name] = torch.zeros(shape, dtype=dt)
        else:
            out[name] = torch.frombuffer(buf, dtype=dt).reshape(shape).clone()
    return out


def metadata(path):
    """The header's "__metadata__" map (empty when absent)."""
    return dict(_read(path)[0].get("__metadata__", {}))
