"""What ranks send each other: JSON data with numpy arrays inside, as bytes; never a pickle.

Layout: 8 bytes (little-endian length of the JSON head), the head (the object with each array replaced by
``{"__array__": i}``, and each array's dtype and shape), then the arrays' raw bytes in order.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def encode(obj: Any) -> bytes:
    """JSON data (dicts, lists, str, numbers, None) with numpy arrays inside, as bytes (no pickle)."""
    arrays: list[np.ndarray] = []

    def strip(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biuf":
                raise TypeError(f"cannot exchange an array of dtype {x.dtype}")
            arrays.append(np.ascontiguousarray(x))
            return {"__array__": len(arrays) - 1}
        if isinstance(x, dict):
            if "__array__" in x:
                raise TypeError("'__array__' is reserved")
            return {str(k): strip(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [strip(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    body = strip(obj)
    meta = [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]
    head = json.dumps({"obj": body, "arrays": meta}).encode()
    return len(head).to_bytes(8, "little") + head + b"".join(a.tobytes() for a in arrays)


def decode(blob: bytes) -> Any:
    """The inverse of ``encode`` (tuples come back as lists)."""
    n = int.from_bytes(blob[:8], "little")
    head = json.loads(blob[8 : 8 + n])
    offset, arrays = 8 + n, []
    for meta in head["arrays"]:
        dtype, shape = np.dtype(meta["dtype"]), tuple(meta["shape"])
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        arrays.append(np.frombuffer(blob, dtype, count=size // dtype.itemsize, offset=offset).reshape(shape).copy())
        offset += size

    def fill(x: Any) -> Any:
        if isinstance(x, dict):
            return arrays[x["__array__"]] if set(x) == {"__array__"} else {k: fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fill(v) for v in x]
        return x

    return fill(head["obj"])
