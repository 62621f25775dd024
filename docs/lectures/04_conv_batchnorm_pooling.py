# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lecture 4: convolution, batch norm and pooling
#
# Every box in the Inception papers' figures is a convolution followed by batch norm and a ReLU, and between
# the boxes sit pooling layers. This lecture derives the backward pass of each, checks it in float64, and
# compares it with the library's ops.

# %%
import numpy as np
import matplotlib.pyplot as plt

import autograd
import ops
from autograd import Function, Tensor, gradcheck, name_scope
from ops.kernels.reference.im2col import col2im, im2col

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(4)

# %% [markdown]
# ## Convolution = im2col + one matrix product
#
# With `cols = im2col(x)` of shape $(C k_h k_w, N \cdot OH \cdot OW)$ and the weight reshaped to
# $W_2: (C_{out}, C k_h k_w)$, the output is $Y_2 = W_2 \cdot \text{cols}$. A matrix product $Y = AB$ has the
# gradients $\partial L/\partial A = G B^\top$ and $\partial L/\partial B = A^\top G$, where
# $G = \partial L/\partial Y$. So:
#
# - $\partial L/\partial W_2 = G\, \text{cols}^\top$ (the forward's columns are kept for this);
# - $\partial L/\partial \text{cols} = W_2^\top G$, and col2im turns that into $\partial L/\partial x$ (lecture 3).

# %%
class TeachingConv2d(Function):
    """Convolution by im2col, one GEMM and col2im. x: (N, C, H, W), weight: (O, C, kh, kw) -> (N, O, OH, OW)."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight):
        o, c, kh, kw = weight.shape
        self.x_shape, self.weight = x.shape, weight
        self.cols = im2col(x, (kh, kw), self.stride, self.padding)         # (C*kh*kw, N*OH*OW)
        y = weight.reshape(o, -1) @ self.cols                                # (O, N*OH*OW)
        n, _, h, w = x.shape
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3).copy()

    def backward(self, gy):
        o, c, kh, kw = self.weight.shape
        g = gy.transpose(1, 0, 2, 3).reshape(o, -1)                          # G: (O, N*OH*OW)
        gw = (g @ self.cols.T).reshape(self.weight.shape)                    # G cols^T
        gcols = self.weight.reshape(o, -1).T @ g                             # W2^T G
        gx = col2im(gcols, self.x_shape, (kh, kw), self.stride, self.padding)
        return gx, gw


x = Tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True, name="x")
w = Tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True, name="weight")
gradcheck(lambda a, b: TeachingConv2d((2, 1), (1, 1))(a, b), [x, w])
print("TeachingConv2d: gradients match central differences")

y = TeachingConv2d((2, 1), (1, 1))(x, w)
y_lib = ops.conv2d(x, w, stride=(2, 1), padding=1)
print("output", y.shape, "; ops.conv2d agrees:", np.allclose(y.data, y_lib.data))

# %% [markdown]
# ## Batch norm: three terms in the backward
#
# In training mode, batch norm normalises each channel with the mean $\mu$ and the (biased) variance
# $\sigma^2$ of the batch, over the $M$ values of that channel: $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$,
# then $y = \gamma \hat x + \beta$. Both $\mu$ and $\sigma^2$ depend on *every* $x$ of the channel, so the
# gradient of one $x$ has three parts: the direct path, the path through $\mu$, and the path through
# $\sigma^2$. Summed over the channel (with $g = \partial L/\partial y$):
#
# $$\frac{\partial L}{\partial \beta} = \sum g, \qquad \frac{\partial L}{\partial \gamma} = \sum g\,\hat x,
# \qquad \frac{\partial L}{\partial x} = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
# \Big(g - \frac{1}{M}\frac{\partial L}{\partial \beta} - \frac{\hat x}{M}\frac{\partial L}{\partial \gamma}\Big)$$
#
# Write it in NumPy and compare it with the library's op:

# %%
def batch_norm_backward(g, x, gamma, eps):
    """The three-term backward of training-mode batch norm. g, x: (N, C, H, W); gamma: (C,)."""
    axes, m = (0, 2, 3), x.shape[0] * x.shape[2] * x.shape[3]
    mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)         # biased variance
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    gbeta, ggamma = g.sum(axes), (g * xhat).sum(axes)
    gx = gamma.reshape(1, -1, 1, 1) * invstd * (g - gbeta.reshape(1, -1, 1, 1) / m
                                                 - xhat * ggamma.reshape(1, -1, 1, 1) / m)
    return gx, ggamma, gbeta


c = 3
xb = Tensor(rng.standard_normal((4, c, 5, 5)) * 2 + 1, requires_grad=True, name="x")
gamma = Tensor(rng.uniform(0.5, 1.5, c), requires_grad=True, name="gamma")
beta = Tensor(rng.standard_normal(c), requires_grad=True, name="beta")
g = rng.standard_normal(xb.shape)                                  # a random upstream gradient

yb = ops.batch_norm(xb, gamma, beta, None, None, training=True, eps=1e-3)
(yb * Tensor(g)).sum().backward()
mine = batch_norm_backward(g, xb.data, gamma.data, 1e-3)
for name, ours, lib in zip(("x", "gamma", "beta"), mine, (xb.grad, gamma.grad, beta.grad)):
    print(f"d/d{name:<6s} agrees with ops.batch_norm: {np.allclose(ours, lib)}")

gradcheck(lambda a, gm, bt: ops.batch_norm(a, gm, bt, None, None, training=True, eps=1e-3),
          [Tensor(xb.data, requires_grad=True, name="x"), Tensor(gamma.data, requires_grad=True, name="gamma"),
           Tensor(beta.data, requires_grad=True, name="beta")])
print("batch norm (training mode): gradients match central differences")

# %% [markdown]
# The two extra terms make $\sum \partial L/\partial x = 0$ in every channel: shifting a whole channel changes
# nothing after normalisation. So an upstream gradient of all ones would see a gradient of zero and could not
# tell a right backward from a wrong one; gradient checks use a random upstream gradient.

# %%
print("per-channel sum of dL/dx:", np.round(xb.grad.sum(axis=(0, 2, 3)), 12) + 0.0)

# %% [markdown]
# ## Pooling: where the gradient goes
#
# Max pooling passes each window's largest value; its backward sends the gradient only to that pixel (the
# first one, when several tie). Average pooling spreads it evenly over the window. With overlapping windows
# (3x3, stride 2, as in the Inception reductions) a pixel can be the maximum of several windows and collects
# the gradient of each, so the backward must *add*.
#
# Below: the gradient of `sum(max_pool2d(x))` counts, for every pixel, the windows whose maximum it is.

# %%
image = Tensor(rng.standard_normal((1, 1, 9, 9)), requires_grad=True)
ops.max_pool2d(image, 3, stride=2).sum().backward()
max_grad = image.grad[0, 0].copy()
image.grad = None
ops.avg_pool2d(image, 3, stride=2).sum().backward()
avg_grad = image.grad[0, 0]

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
panels = ((image.data[0, 0], "input 9x9", "coolwarm"), (max_grad, "max pool 3x3/2: gradient", "magma"),
          (avg_grad, "avg pool 3x3/2: gradient", "magma"))
for ax, (values, title, cmap) in zip(axes, panels):
    ax.imshow(values, cmap=cmap)
    ax.set_title(title)
    ax.axis("off")
for (r, col), value in np.ndenumerate(max_grad):
    if value:
        axes[1].text(col, r, int(value), ha="center", va="center", color="black" if value > 1 else "white")
plt.show()

# %%
gradcheck(lambda t: ops.max_pool2d(t, 3, stride=2), [Tensor(rng.standard_normal((2, 3, 9, 8)),
                                                             requires_grad=True, name="x")])
gradcheck(lambda t: ops.avg_pool2d(t, 3, stride=2, padding=1), [Tensor(rng.standard_normal((2, 3, 9, 8)),
                                                                         requires_grad=True, name="x")])
print("max and average pooling: gradients match central differences (random inputs: no ties)")

# %% [markdown]
# ## The box: conv, batch norm, ReLU
#
# {py:class}`nn.ConvBNReLU <minception.nn.ConvBNReLU>` is the box the figures draw. Built with `fuse_relu=False` it
# runs three ops, one per idea; the networks fuse the ReLU into the batch-norm op (the same numbers, one pass over
# the data fewer). The trace shows the gradient flowing back through the three, with the parameters named.

# %%
from minception import nn

nn.init.manual_seed(0)
box = nn.ConvBNReLU(3, 4, (3, 3), stride=2, padding=1, fuse_relu=False).to(dtype=np.float64)
xin = Tensor(rng.standard_normal((2, 3, 7, 5)), requires_grad=True, name="x")
gradcheck(lambda t: box(t), [xin], params=box.named_parameters())
print("ConvBNReLU: gradients of the input and all parameters match")
with name_scope("box"):
    out = box(xin)
records = autograd.trace((out * out).mean(), names=box.named_parameters(), width=100)

# %% [markdown]
# ## Read next
#
# - `ops/kernels/reference/conv2d.py` and `ops/conv.py`: the convolution and its op, {py:func}`ops.conv2d`;
# - `ops/kernels/reference/batch_norm.py` and `ops/normalization.py` ({py:func}`ops.batch_norm`): the derivation
#   above, running statistics, the fused ReLU, evaluation mode;
# - `ops/kernels/reference/pooling.py` and `ops/pooling.py` ({py:func}`ops.max_pool2d`, {py:func}`ops.avg_pool2d`):
#   max pooling's first maximum, average pooling's divisor;
# - `minception/nn/conv_bn_relu.py`: the box.
#
# **Exercises** (`python -m minception.course new DIR`): conv2d forward and backward through your im2col, max
# and average pooling, batch norm in training and evaluation mode.
