"""Kernels behind the differentiable ops: families of kernels, tiers of implementations, one table.

* ``reference/``  the readable array code, one file per family (read it first): its docstring is the family's
  contract (functions, arguments, shapes, dtypes, what they may assume and must not do);
* ``cpu/``        the fast tier's Numba kernels, and ``cpu/runtime/`` (threads, BLAS control, buffers, malloc);
* ``cuda/``       the fast tier's CuPy kernels, with the optimizers' multi-tensor kernels and the scatter kernel;
* ``tiers.py``    the table: which tier is active and what each family runs in it;
* ``contracts/``  the check of an implementation against its family's contract;
* ``registry.py`` tiers of your own.

    ops.kernels.use("reference")               # switch; or `with ops.kernels.use("reference"): ...`
    ops.kernels.current()                      # 'reference', 'fast' or a registered tier
    print(ops.kernels.describe())              # which implementation each family runs in the active tier
    ops.kernels.register("student", "im2col", my_im2col)    # checked against the contract, then usable
    ops.kernels.check("im2col", my_im2col)     # the contract check alone: a report
    MINCEPTION_KERNELS=reference python ...    # the built-in tiers, from the environment

Importing this package compiles nothing and imports neither Numba nor CuPy.
"""
from .contracts import ContractReport, KernelContractError, assert_contract, check
from .registry import register, unregister
from .tiers import ENV_VAR, FAMILIES, TIERS, current, describe, lookup, multi_tensor, registered_tiers, use

__all__ = ["use", "current", "lookup", "describe", "registered_tiers", "register", "unregister", "check",
           "assert_contract", "KernelContractError", "ContractReport", "multi_tensor", "FAMILIES", "TIERS", "ENV_VAR"]
