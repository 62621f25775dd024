"""The fast tier's GPU convolution: the im2col -> GEMM -> col2im of ``ops/kernels/reference/conv2d.py`` on the whole
batch, with the CuPy im2col/col2im kernels (``im2col.py`` here) and cuBLAS products.

One shortcut beside the textbook: a 1x1 stride-1 conv without padding needs no im2col. Image ``n``'s column
matrix is ``x[n]`` seen as ``(C, H*W)``, so the forward is one batched product ``W2d @ x.reshape(N, C, H*W)``,
already in ``(N, Cout, H*W)`` order, and the backward two products on the same views.

Entry points (the conv2d family's contract, ``ops/kernels/reference/conv2d.py``):
    forward(x, weight, bias, stride, padding) -> y
    backward(x, weight, gy, stride, padding, need_x, need_w) -> (dx or None, dweight or None)

CuPy is imported inside the functions, so this module imports on machines without it.
"""
from ...geometry import conv_as_gemm, is_pointwise
from . import im2col


def forward(x, weight, bias, stride, padding):
    """``x: (N, C, H, W)``, ``weight: (Cout, C, kh, kw)`` (both C-contiguous), ``bias: (Cout,)`` or None
    -> ``y: (N, Cout, OH, OW)``."""
    import cupy as cp
    kernel, (oh, ow), w2d = conv_as_gemm(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout = w2d.shape[0]
    if is_pointwise(kernel, stride, padding):
        y = cp.matmul(w2d, x.reshape(n, c, h * w))        # batched GEMM, already (N, Cout, P)
    else:
        cols = im2col.im2col(x, kernel, stride, padding)
        y = cp.ascontiguousarray((w2d @ cols).reshape(cout, n, oh * ow).transpose(1, 0, 2))
    if bias is not None:
        y += bias.reshape(cout, 1)
    return y.reshape(n, cout, oh, ow)


def backward(x, weight, gy, stride, padding, need_x, need_w):
    """Returns ``(dx or None, dweight or None)`` for ``gy: (N, Cout, OH, OW)``."""
    import cupy as cp
    kernel, (oh, ow), w2d = conv_as_gemm(x, weight, stride, padding)
    n, c, h, w = x.shape
    cout, k = w2d.shape
    gy3 = cp.ascontiguousarray(gy).reshape(n, cout, oh * ow)
    dx = dw = None
    if is_pointwise(kernel, stride, padding):
        if need_w:   # one GEMM over all pixels: (Cout, N*P) @ (N*P, C); no (N, Cout, C) intermediate
            gy2d = cp.ascontiguousarray(gy3.transpose(1, 0, 2)).reshape(cout, -1)
            x2d = cp.ascontiguousarray(x.reshape(n, c, h * w).transpose(1, 0, 2)).reshape(c, -1)
            dw = (gy2d @ x2d.T).reshape(weight.shape)
        if need_x:
            dx = cp.matmul(w2d.T, gy3).reshape(x.shape)
        return dx, dw
    gy2d = cp.ascontiguousarray(gy3.transpose(1, 0, 2)).reshape(cout, n * oh * ow)
    if need_w:
        dw = (gy2d @ im2col.im2col(x, kernel, stride, padding).T).reshape(weight.shape)
    if need_x:
        dx = im2col.col2im(w2d.T @ gy2d, x.shape, kernel, stride, padding)
    return dx, dw
