"""vitzoo's native CPU attention (``native_attention.c``): built once per machine, loaded with ctypes, called by the
fused inference kernels (``vitzoo.measure.fused``).

``attention(qkv, num_heads)`` computes a ViT block's whole attention, softmax(q kᵀ / √64) v for every image and head,
from the qkv projection's output (B, N, 3·H·64) to the (B, N, H·64) the output projection reads: one call, no
permuted copies of q, k and v, the scores kept in cache. On AVX-512 without AMX it is faster than PyTorch's SDPA
in fp32 and than bf16 attention as oneDNN GEMMs (``matmul_attention``), and as accurate as SDPA (measured:
README.md, *Speed where it is deployed*; tested against float64).

The C source is compiled with the system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) and OpenMP on
first use, into vitzoo's cache (``kernels/``), named by a digest of the source, the flags and the compiler, and
written atomically; later processes load that file (a read-only cache gets a build per process instead). Its OpenMP
loop runs on the runtime torch already loaded (GNU OpenMP, shared by soname), with torch's thread count.
``runs(dtype)`` says whether the kernel is used for a dtype here; ``unavailable_reason()`` why it is not (no
AVX-512, no compiler, a build that failed, ``VITZOO_ATTENTION=aten``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from vitzoo import settings
from vitzoo.files import cache_dir
from vitzoo.machine import cpu_flags
from vitzoo.models.vit import merge_heads, split_heads

__all__ = ["HEAD_DIM", "attention", "attention_op", "prefers", "runs", "unavailable_reason"]

HEAD_DIM = 64  # the kernel's head width (ViT-Ti/S/B/L; ViT-H's 80 keeps SDPA)
SOURCE = Path(__file__).with_name("native_attention.c")
FLAGS = ("-O3", "-mavx512f", "-mfma", "-fopenmp", "-shared", "-fPIC")
_SYMBOLS = {torch.float32: "vitzoo_attention_f32", torch.bfloat16: "vitzoo_attention_bf16"}


def prefers(dtype: torch.dtype, flags: frozenset[str] | None) -> bool:
    """Whether a CPU with ``flags`` runs ``dtype`` attention with this kernel rather than PyTorch's: AVX-512 without
    AMX (the kind it was measured faster on), and AVX512-BF16 for bf16. With AMX, PyTorch's SDPA computes on the
    tiles and is kept; elsewhere nothing was measured."""
    if flags is None or "avx512f" not in flags or "amx_tile" in flags:
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and {"avx512_bf16", "avx512bw", "avx512vl"} <= flags)


def _compiler() -> str | None:
    return os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def _load(compiler: str) -> ctypes.CDLL:
    """The kernel library: vitzoo's cached build (compiled there first if missing), or, where the cache cannot be
    written (a read-only shared one), a build for this process alone. OSError or CalledProcessError."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, version]).encode()).hexdigest()[:16]
    cached = cache_dir() / "kernels" / f"native_attention-{digest}.so"
    if cached.is_file():
        return _typed(ctypes.CDLL(str(cached)))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".native_attention-", suffix=".so")
        os.close(fd)
    except OSError:  # no cache to keep it in: build, load, and let the file go (the mapping stays)
        with tempfile.TemporaryDirectory(prefix="vitzoo-kernel-") as folder:
            own = Path(folder) / cached.name
            _compile(compiler, own)
            return _typed(ctypes.CDLL(str(own)))
    try:
        _compile(compiler, Path(tmp))
        os.replace(tmp, cached)  # atomic: another process sees no file or a whole one
    finally:
        Path(tmp).unlink(missing_ok=True)
    return _typed(ctypes.CDLL(str(cached)))


def _typed(lib: ctypes.CDLL) -> ctypes.CDLL:
    """``lib`` with its kernels' signatures declared (ctypes would otherwise pass pointers as 32-bit ints)."""
    for name in _SYMBOLS.values():
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, *[ctypes.c_long] * 3, ctypes.c_int]
        getattr(lib, name).restype = ctypes.c_int
    return lib


def _compile(compiler: str, target: Path) -> None:
    subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(target)], capture_output=True, text=True, check=True)


@functools.cache
def _library() -> ctypes.CDLL | str:
    """The loaded kernel library, or the one-line reason there is none on this machine."""
    if not _preferred_here(torch.float32):
        return "needs a CPU with AVX-512 and no AMX (the kind it was measured faster than PyTorch's attention on)"
    if "OpenMP" not in torch.__config__.parallel_info().split("ATen parallel backend:")[-1]:
        return "torch's parallel backend is not OpenMP"
    compiler = _compiler()
    if compiler is None:
        return "no C compiler found (set $CC, or install gcc)"
    try:
        return _load(compiler)
    except subprocess.CalledProcessError as e:
        lines = (e.stderr or "").strip().splitlines()
        return f"{compiler} could not build {SOURCE.name}: {lines[0] if lines else f'exit status {e.returncode}'}"
    except OSError as e:
        return f"could not build or load {SOURCE.name}: {e}"


def unavailable_reason() -> str | None:
    """Why the kernel cannot run in this process (one line), or None where it can (building it on first call)."""
    if settings.choice("VITZOO_ATTENTION", "native") == "aten":
        return "VITZOO_ATTENTION=aten"
    lib = _library()
    return lib if isinstance(lib, str) else None


@functools.cache
def _preferred_here(dtype: torch.dtype) -> bool:
    return prefers(dtype, cpu_flags())


def runs(dtype: torch.dtype, head_dim: int = HEAD_DIM) -> bool:
    """Whether ``attention`` computes ``dtype`` attention of this head width here (and is preferred to PyTorch's)."""
    return head_dim == HEAD_DIM and _preferred_here(dtype) and unavailable_reason() is None


def attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """softmax(q kᵀ / √64) v of every image and head, from a block's qkv projection output ``qkv`` (B, N, 3·H·64),
    rows [q; k; v] each head-major, to (B, N, H·64), heads concatenated: what ``Attention`` computes between its two
    projections. CPU, contiguous, fp32 or bf16 where ``runs``; anything else is a ValueError, never a bad read."""
    B, N, width = qkv.shape
    if not (qkv.device.type == "cpu" and qkv.is_contiguous() and width == 3 * num_heads * HEAD_DIM and runs(qkv.dtype)):
        raise ValueError(
            f"native attention takes a contiguous CPU (B, N, 3*{num_heads}*{HEAD_DIM}) qkv it runs here, not "
            f"{tuple(qkv.shape)} {qkv.dtype} on {qkv.device}"
        )
    out = torch.empty(B, N, num_heads * HEAD_DIM, dtype=qkv.dtype)
    kernel = getattr(_library(), _SYMBOLS[qkv.dtype])
    with torch.profiler.record_function("vitzoo::native_attention"):  # a ctypes call: invisible to the profiler
        status = kernel(qkv.data_ptr(), out.data_ptr(), B, N, num_heads, torch.get_num_threads())
    if status != 0:
        raise MemoryError("native attention: no memory for its scratch buffers")
    return out


@torch.library.custom_op("vitzoo::attention", mutates_args=())
def attention_op(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``attention`` as a PyTorch operator, ``torch.ops.vitzoo.attention``, for graphs that ``torch.export`` keeps
    and Inductor compiles (which cannot call ctypes): the native kernel where it ``runs`` for the dtype and head
    width, else SDPA; either way (B, N, 3·H·hd) -> (B, N, H·hd)."""
    if qkv.device.type == "cpu" and runs(qkv.dtype, qkv.shape[-1] // (3 * num_heads)):
        return attention(qkv.contiguous(), num_heads)
    return merge_heads(F.scaled_dot_product_attention(*split_heads(qkv, num_heads)))


@attention_op.register_fake
def _(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    B, N, width = qkv.shape
    return qkv.new_empty(B, N, width // 3)
