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
# # Lecture 3: im2col and col2im
#
# A convolution slides a small kernel over an image and takes a dot product at every position. Written as
# loops it is slow; written as *one matrix product* it runs at the speed of the BLAS library. The trick is to
# copy every window the kernel visits into a column of a matrix first: **im2col**. Its partner **col2im** goes
# the other way, adding every column entry back onto the pixel it came from, and that is exactly what the
# backward pass needs.
#
# This lecture draws both, then proves that col2im is the transpose (the *adjoint*) of im2col.

# %%
import numpy as np
import matplotlib.pyplot as plt

from autograd import Function, Tensor, gradcheck
from ops.kernels.reference.im2col import col2im, im2col

# %% [markdown]
# ## Windows become columns
#
# Take one 6x6 image whose pixels are numbered 0 to 35, a 3x3 kernel, stride 1 and one pixel of zero padding.
# The output is again 6x6: 36 positions, so 36 columns. Each column holds the 9 pixels the kernel sees there,
# one row per kernel offset $(i, j)$. For an input of shape $(N, C, H, W)$ the matrix is
# $(C \cdot k_h k_w,\; N \cdot OH \cdot OW)$: row $r = (c k_h + i) k_w + j$,
# column $q = (n \cdot OH + oy) \cdot OW + ox$.

# %%
x = np.arange(36.0).reshape(1, 1, 6, 6)
geometry = ((3, 3), (1, 1), (1, 1))           # kernel (kh, kw), stride (sh, sw), padding (ph, pw)
cols = im2col(x, *geometry)
print("x:", x.shape, "-> cols:", cols.shape)

fig, (ax_img, ax_cols) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 3.2]})
ax_img.imshow(x[0, 0], cmap="viridis", vmin=0, vmax=35)
for (r, c), value in np.ndenumerate(x[0, 0]):
    ax_img.text(c, r, int(value), ha="center", va="center", color="white", fontsize=8)
ax_img.add_patch(plt.Rectangle((0.5, 0.5), 3, 3, fill=False, edgecolor="red", linewidth=2))
ax_img.set_title("input; red: window 14")
ax_cols.imshow(cols, cmap="viridis", vmin=0, vmax=35, aspect="auto")
ax_cols.add_patch(plt.Rectangle((13.5, -0.5), 1, 9, fill=False, edgecolor="red", linewidth=2))
ax_cols.set(xlabel="column = output position (oy, ox)", ylabel="row = kernel offset (i, j)",
            title="im2col: one column per window (dark = padding, 0)")
ax_img.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Output position 14 is $(oy, ox) = (2, 2)$; with the padding its window starts at pixel $(1, 1)$ of the image:

# %%
print(cols[:, 14].reshape(3, 3))
print(x[0, 0, 1:4, 1:4])

# %% [markdown]
# With the columns in hand, a convolution with $C_{out}$ filters is one product: the weights reshaped to
# $(C_{out}, C \cdot k_h k_w)$ times `cols`, giving $(C_{out}, N \cdot OH \cdot OW)$. Lecture 4 builds it.
#
# ## col2im: adding columns back
#
# The backward pass of that product gives a gradient for every entry of `cols`. Each entry is a copy of one input
# pixel, so each pixel's gradient is the sum of the gradients of all its copies. col2im does that sum. Fed a
# matrix of ones, it counts **how many windows cover each pixel**:

# %%
def coverage(shape, geometry):
    """col2im of ones: for each pixel of an (N, C, H, W) input, the number of windows that contain it."""
    ones = np.ones(im2col(np.zeros(shape), *geometry).shape)
    return col2im(ones, shape, *geometry)[0, 0]


cases = {"3x3, stride 1, padding 1": ((1, 1, 6, 6), ((3, 3), (1, 1), (1, 1))),
         "3x3, stride 2, no padding": ((1, 1, 7, 7), ((3, 3), (2, 2), (0, 0))),
         "2x2, stride 2 (no overlap)": ((1, 1, 6, 6), ((2, 2), (2, 2), (0, 0)))}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (title, (shape, geo)) in zip(axes, cases.items()):
    counts = coverage(shape, geo)
    ax.imshow(counts, cmap="magma", vmin=0, vmax=9)
    for (r, c), value in np.ndenumerate(counts):
        ax.text(c, r, int(value), ha="center", va="center", color="white" if value < 5 else "black")
    ax.set_title(title)
    ax.axis("off")
fig.suptitle("col2im of ones: how many windows cover each pixel")
plt.show()

# %% [markdown]
# Stride 1 with padding 1: an inner pixel lies in 9 windows, an edge pixel in 6 and a corner in 4 (no window is
# centred outside the image; the padding entries of the windows at the border are dropped). Stride 2 with a 3x3
# kernel: windows overlap on every other row and column, so those pixels get gradient from 2 or 4 positions. A col2im that writes with `=` instead of adding gets exactly these
# overlapping pixels wrong, and nothing else.
#
# ## col2im is the adjoint of im2col
#
# im2col is linear: `cols = A x` for some (huge, sparse) matrix $A$ that only copies. The backward pass of a
# linear map multiplies by its transpose: $\partial L/\partial x = A^\top\, \partial L/\partial \text{cols}$.
# So col2im must be $A^\top$, which we can test without ever writing $A$ down: for every $x$ and every $c$,
# $\langle A x, c \rangle = \langle x, A^\top c \rangle$.

# %%
rng = np.random.default_rng(3)
xs = rng.standard_normal((2, 3, 7, 6))
geo = ((3, 2), (2, 1), (1, 1))                # odd shapes: kernel 3x2, stride (2, 1), padding 1
c = rng.standard_normal(im2col(xs, *geo).shape)
left = np.sum(im2col(xs, *geo) * c)
right = np.sum(xs * col2im(c, xs.shape, *geo))
print(f"<im2col(x), c> = {left:.12f}\n<x, col2im(c)> = {right:.12f}")
assert np.isclose(left, right, rtol=1e-12)

# %% [markdown]
# The same fact, as an op: a `Function` whose forward is im2col and whose backward is col2im, checked against
# central differences in float64.

# %%
class Im2col(Function):
    """x: (N, C, H, W) -> cols: (C*kh*kw, N*OH*OW); backward: col2im."""

    def __init__(self, kernel_size, stride, padding):
        self.geometry = (kernel_size, stride, padding)

    def forward(self, x):
        self.x_shape = x.shape
        return im2col(x, *self.geometry)

    def backward(self, gcols):
        return col2im(gcols, self.x_shape, *self.geometry)


gradcheck(lambda t: Im2col(*geo)(t), [Tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True, name="x")])
print("Im2col's backward (col2im) matches central differences")

# %% [markdown]
# A passing gradcheck is not the whole story: an im2col and a col2im that are wrong *in the same way* (say, with
# the kernel offsets $i$ and $j$ swapped in both) are still each other's transpose, and gradcheck passes. The
# forward must also be compared with a reference, which is what the course's grader does.
#
# ## Read next
#
# - `ops/kernels/reference/im2col.py`: both functions ({py:func}`~ops.kernels.reference.im2col.im2col`,
#   {py:func}`~ops.kernels.reference.im2col.col2im`), and the contract every tier's version must keep;
# - `ops/kernels/tiers.py` and `ops/kernels/registry.py`: how {py:func}`ops.kernels.register` lets your own im2col
#   run every convolution of a network (README, "Kernel tiers").
#
# **Exercise:** `python -m minception.course new DIR` writes the im2col and col2im exercises (write im2col
# first); `python -m minception.course check DIR` grades them against the reference.
