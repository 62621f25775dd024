"""The fast tier's GPU kernels (CuPy), one file per family, plus the GPU-only helpers.

Each kernel file computes what its reference (``ops/kernels/reference/``, same file name) computes, with the same
functions and arguments (the family's contract), and agrees with it to rounding:

* ``im2col.py``        im2col and col2im
* ``conv2d.py``        im2col -> cuBLAS GEMM on the whole batch (1x1 convs without im2col)
* ``pooling.py``       max and average pooling
* ``batch_norm.py``    batch normalisation with its fused ReLU, and the running-statistics update
* ``scatter.py``       the scatter-add of the fancy-indexing backward, deterministic (``cupy.bincount`` is not)
* ``indexing.py``      32- or 64-bit index arithmetic for the kernels above
* ``multi_tensor.py``  the optimizers' one-launch updates (SGD, RMSProp, EMA, gradient clipping), reached through
  ``ops.kernels.multi_tensor``

The elementwise family has no file here: CuPy's own elementwise kernels already use the whole device, so the fast
tier runs ``reference/elementwise.py`` on the GPU. Every module imports CuPy only inside its functions: they import
(and their index arithmetic is tested) on a machine without CuPy or a GPU.
"""
