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
# # Lecture 6: an Inception block and a residual block
#
# An Inception block looks at its input through several branches at once (a 1x1 conv, deeper stacks of 3x3
# convs, a pooling branch) and concatenates what they see along the channels. A residual Inception block does
# the same, squeezes the result back to the input's width and *adds* it to the input. This lecture builds one
# of each at a tiny width, checks their gradients in float64, and looks at what the addition does to the
# backward pass.

# %%
import numpy as np

import autograd
from autograd import Tensor, gradcheck
from minception import models, nn

np.set_printoptions(precision=4, suppress=True)
rules = models.Rules(width=0.125, small_input=True)     # 1/8 of the paper's filters
print("a conv of 96 filters in the paper has", rules.channels(96), "here")

# %% [markdown]
# ## Inception-A: four branches and a concat
#
# Inception-A (Figure 4 of the paper) has four branches: a 1x1 conv; 1x1 then 3x3; 1x1 then two 3x3 (a 5x5 field of
# view at less cost); 3x3 average pooling then 1x1. Every branch keeps the grid size, so their outputs can be stacked
# along the channel axis. Each conv is an {py:class}`nn.ConvBNReLU <minception.nn.ConvBNReLU>` box (lecture 4).

# %%
nn.init.manual_seed(0)
block = models.InceptionA(16, rules).to(dtype=np.float64)
rng = np.random.default_rng(6)
x = Tensor(rng.standard_normal((2, 16, 8, 8)), requires_grad=True, name="x")
y = block(x)
print(f"Inception-A: {x.shape} -> {y.shape}, {block.num_parameters():,} parameters")
start = 0
for name, branch in block.named_children():
    out = branch(x)
    width = out.shape[1]
    print(f"  {name}: {out.shape}, channels {start}..{start + width - 1} of the output; "
          f"same values: {np.allclose(y.data[:, start:start + width], out.data)}")
    start += width

# %% [markdown]
# `summary` runs one forward pass on zeros and lists the modules to the given depth, with their output shapes
# and parameter counts; `kernels=True` adds each convolution's and pooling's window (size, stride, padding).

# %%
block.summary((2, 16, 8, 8), dtype=np.float64, depth=2, kernels=True)

# %% [markdown]
# The concat's backward only *moves* values: it cuts the incoming gradient into the branches' slices. And since
# all four branches read the same `x`, their input gradients add up, as for any tensor used more than once
# (lecture 2). The check below goes branch by branch, then the whole block. With thousands of parameters it
# checks random directions (`mode="directional"`) instead of every element.

# %%
for name, branch in block.named_children():
    gradcheck(lambda t, b=branch: b(t), [x], params=branch.named_parameters(), mode="directional")
    print(f"gradcheck of {name}: ok")
gradcheck(lambda t: block(t), [x], params=block.named_parameters(), mode="directional")
print("gradcheck of the whole block: ok")

# %% [markdown]
# ## Inception-ResNet-A: add, do not replace
#
# The residual version (Figure 16 for Inception-ResNet-v2) has three branches. Their concatenation goes through
# a linear 1x1 conv (no batch norm, no ReLU) back to the input's width, is scaled by a small constant $s$ (the
# paper used 0.1 to 0.3 to keep very wide networks stable), and added to the input:
#
# $$\text{out} = \mathrm{relu}\big(x + s \cdot \mathrm{up}(\mathrm{concat}(\text{branches}(x)))\big)$$
#
# The block's attributes are the terms of that formula, so it can be checked by hand:

# %%
nn.init.manual_seed(0)
res = models.InceptionResNetA(16, rules, version=2, scale=0.17).to(dtype=np.float64)
out = res(x)
by_hand = np.maximum(x.data + 0.17 * res.conv2d(res.branches(x)).data, 0)
print(f"Inception-ResNet-A: {x.shape} -> {out.shape}, {res.num_parameters():,} parameters")
print("relu(x + s * up(branches(x))) agrees:", np.allclose(out.data, by_hand))
gradcheck(lambda t: res(t), [x], params=res.named_parameters(), mode="directional")
print("gradcheck of the residual block: ok")

# %% [markdown]
# ## What the addition does to the gradient
#
# Let $g = \partial L/\partial\,\text{out}$ and $m$ the ReLU's mask (1 where the output is positive). Then
#
# $$\frac{\partial L}{\partial x} = m \odot g \;+\; s\, J^\top (m \odot g)$$
#
# where $J$ is the Jacobian of the branches and the up conv. The first term is the *identity path*: whatever the
# branches do, the gradient reaches the input unchanged (where the ReLU lets it through). Split the residual
# block's input gradient into the two terms, then compare the plain Inception-A block, whose whole gradient must
# pass through its convolutions and batch norms:

# %%
def input_gradient(module, g):
    """dL/dx for the loss L = sum(module(x) * g): g is the upstream gradient, shaped like the output."""
    x.grad = None
    (module(x) * Tensor(g)).sum().backward()
    return x.grad


g = rng.standard_normal(out.shape)
g /= np.linalg.norm(g)                                  # an upstream gradient of norm 1
gx = input_gradient(res, g)
identity = (out.data > 0) * g
print(f"residual block:    |dL/dx| = {np.linalg.norm(gx):.3f}; its identity term alone {np.linalg.norm(identity):.3f}, "
      f"the branches' term {np.linalg.norm(gx - identity):.3f}")

g_plain = rng.standard_normal(block(x).shape)
g_plain /= np.linalg.norm(g_plain)
print(f"plain Inception-A: |dL/dx| = {np.linalg.norm(input_gradient(block, g_plain)):.3f}, all of it through "
      f"the branches")

# %% [markdown]
# In the residual block most of the gradient arrives through the identity path, and the branches add a
# correction scaled by $s$. In the plain block the size of $\partial L/\partial x$ is whatever the convolutions
# and batch norms make of it: one block changes it by some factor, and a stack of blocks multiplies those factors.
# Lecture 7 measures what that does in whole networks.
#
# ## The graph
#
# {py:func}`autograd.to_dot` writes the graph of a forward pass as Graphviz text; `collapse=1` draws one node per
# child module (here: per branch). Where Graphviz is installed, {py:func}`autograd.graph.render
# <autograd.inspect.graph.render>` draws it.

# %%
dot = autograd.to_dot(res(x), names=res.named_parameters(), collapse=1)
print("\n".join(dot.splitlines()[:12]), "\n...")
if autograd.graph.dot_available():
    from IPython.display import SVG, display
    display(SVG(filename=autograd.graph.render(res(x), "inception_resnet_a.svg", names=res.named_parameters(),
                                               collapse=1)))

# %% [markdown]
# ## Read next
#
# - `docs/design.md`: how the paper's figures become code (the width rule, kernel orders, the 1154/2048 mismatch);
# - `minception/nn/container.py`: {py:class}`~minception.nn.Sequential` and {py:class}`~minception.nn.Concat`;
# - `minception/models/inception_blocks.py` and `minception/models/resnet_blocks.py`: every block, with its
#   figure and branches in the docstring;
# - `minception/models/reductions.py`: how the grid shrinks between stages.
#
# **Exercise:** assemble an Inception-ResNet-A block from `nn` units (`python -m minception.course new DIR`);
# the grader compares it with the library's block.
