"""Run the CUDA source of a CuPy ``RawKernel`` on the CPU, for tests on machines without a GPU.

The kernel source is compiled by the host C++ compiler (g++, C++20) with a few definitions in front: ``threadIdx``
and ``blockIdx`` become thread-local variables, ``__syncthreads()`` a barrier shared by the block's threads,
``__shared__`` arrays static variables, and the math functions those of ``<cmath>``. A launch runs the grid's blocks
one after the other, each as ``blockDim`` real threads (``std::thread``), so shared memory and barriers behave as
on a GPU (the blocks never overlap, which a correct kernel must not rely on either way). Pointers are host
pointers: pass NumPy arrays, and device addresses in tables become the arrays' host addresses.

It checks what the kernel computes, not how fast, and it cannot see GPU-only problems (warp-level code, memory
coalescing, races between blocks); the GPU tests run the same kernels on a real GPU.

    kernels = compile_kernels(source, ["moments"], {"T": np.float32})
    kernels["moments"](grid, block, x, np.int32(n), ...)
"""
import ctypes
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

_PRELUDE = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>
using std::isfinite; using std::max; using std::min; using std::sqrt;
struct Dim3 { unsigned x = 0, y = 0, z = 0; };
thread_local Dim3 threadIdx, blockIdx;
static std::barrier<>* block_barrier;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
#define __global__
#define __device__
#define __shared__ static
template <class Kernel, class... Args> void launch(Kernel kernel, unsigned grid, unsigned block, Args... args) {
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> barrier(block);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([=] { threadIdx.x = t; blockIdx.x = b; kernel(args...); });
        for (auto& thread : threads) thread.join();
    }
}
"""

_C_TYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "double": ctypes.c_double,
            "float": ctypes.c_float, "bool": ctypes.c_bool}

_compiled = {}


def compiler_problem():
    """None when g++ can build the emulation, else why not (the tests that need it skip with this reason)."""
    if shutil.which("g++") is None:
        return "g++ is not installed"
    try:
        compile_kernels('extern "C" __global__ void probe(int* out) { __syncthreads(); out[0] = 1; }', ["probe"])
    except RuntimeError as e:
        return f"g++ cannot build the CUDA emulation: {str(e)[-300:]}"
    return None


def compile_kernels(source, names, types=None):
    """Compile ``source`` (CUDA C++ with ``extern "C" __global__`` kernels) and return ``{name: launch}`` where
    ``launch(grid, block, *args)`` runs kernel ``name`` over ``grid`` blocks of ``block`` threads. ``types`` maps
    type names used in the signatures (e.g. ``"T"``) to NumPy dtypes."""
    types = {k: np.dtype(v) for k, v in (types or {}).items()}
    signatures = {}
    wrappers = []
    for name in names:
        match = re.search(r"void\s+" + name + r"\s*\(([^)]*)\)", source)
        if match is None:
            raise ValueError(f"kernel {name!r} not found in the source")
        params = [p.strip() for p in match.group(1).split(",") if p.strip()]
        arg_names = [re.split(r"[\s*]+", p)[-1] for p in params]
        signatures[name] = params
        wrappers.append(f'extern "C" void launch_{name}(unsigned grid, unsigned block, {", ".join(params)}) '
                        f"{{ launch({name}, grid, block, {', '.join(arg_names)}); }}")
    code = _PRELUDE + source + "\n" + "\n".join(wrappers) + "\n"
    if code not in _compiled:
        folder = tempfile.mkdtemp(prefix="cuda_on_cpu_")
        with open(os.path.join(folder, "kernels.cpp"), "w") as f:
            f.write(code)
        r = subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-o", "kernels.so",
                            "kernels.cpp"], cwd=folder, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        _compiled[code] = ctypes.CDLL(os.path.join(folder, "kernels.so"))
    library = _compiled[code]
    return {name: _launcher(getattr(library, f"launch_{name}"), signatures[name], types) for name in names}


def _c_type(param, types):
    declared = re.sub(r"\bconst\b", "", param).strip()
    if "*" in declared:
        return ctypes.c_void_p
    type_name = declared.rsplit(" ", 1)[0].strip()
    if type_name in types:
        return np.ctypeslib.as_ctypes_type(types[type_name])
    return _C_TYPES[type_name]


def _launcher(function, params, types):
    arg_types = [_c_type(p, types) for p in params]
    function.argtypes = [ctypes.c_uint, ctypes.c_uint] + arg_types
    function.restype = None

    def launch(grid, block, *args):
        if len(args) != len(params):
            raise TypeError(f"expected {len(params)} kernel arguments ({', '.join(params)}), got {len(args)}")
        values = [a.ctypes.data if isinstance(a, np.ndarray) else (a.item() if isinstance(a, np.generic) else a)
                  for a in args]
        function(int(grid), int(block), *values)
    return launch
