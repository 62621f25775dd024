"""Which integer type the CuPy kernels use for their index arithmetic: 32-bit when every index fits, 64-bit else.

A GPU kernel spends much of its time decoding a flat thread index into (n, c, y, x) with ``/`` and ``%``. On
NVIDIA GPUs 64-bit integer division is a long software routine, 32-bit division a few instructions, so the kernels
are compiled in two variants (CuPy's own elementwise indexer makes the same choice). Each kernel module says
which number bounds every index and intermediate it computes (usually the size of its largest array) and asks
``index_type`` for the variant; the 64-bit one stays for arrays of 2**31 elements or more.

Every kernel source declares ``typedef ... idx_t;`` (``preamble``) and does its arithmetic in ``idx_t``.
"""

INT32_MAX = 2 ** 31 - 1

#: C type of the index arithmetic -> the CuPy parameter type of the size arguments
PARAM_TYPE = {"int": "int32", "long long": "int64"}


def index_type(bound):
    """``"int"`` when every index and intermediate value is at most ``bound`` and that fits in int32, else
    ``"long long"``."""
    return "int" if bound <= INT32_MAX else "long long"


def preamble(itype):
    """The line every kernel source starts with: ``typedef <itype> idx_t;``."""
    if itype not in PARAM_TYPE:
        raise ValueError(f"index type must be one of {sorted(PARAM_TYPE)}, got {itype!r}")
    return f"typedef {itype} idx_t;\n"
