"""The reference kernel tier: every kernel family in plain array code, one file per family. Read these first.

* ``im2col.py``       im2col and col2im: every input window copied into a column, and back
* ``conv2d.py``       pad -> im2col -> one GEMM -> reshape, and its backward (GEMMs -> col2im)
* ``pooling.py``      max and average pooling, forward and backward
* ``batch_norm.py``   batch normalisation (with its optional ReLU), forward and backward, running statistics
* ``elementwise.py``  ReLU, add, multiply, concat, residual add
* ``scatter.py``      the scatter-add of the fancy-indexing backward
* ``loss.py``         softmax cross-entropy with label smoothing, forward and backward

Each file's docstring states its family's *contract*: the functions, their arguments, shapes and dtypes, and what
they may assume and must not do. Every tier's kernels follow it, and ``ops.kernels.check(family, implementation)``
tests an implementation of your own against this tier. The files use only what NumPy and CuPy share
(``xp = get_array_module(x)``), so this tier runs on the GPU too. Nothing here imports the fast tier.
"""
