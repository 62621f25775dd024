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
# # Lecture 1: a Tensor and a Function
#
# Everything minception computes, from `x * x` to an Inception-ResNet-v2, rests on two classes:
#
# - a **`Tensor`** holds an array (`.data`), and once backward has run, the gradient of the loss with respect
#   to it (`.grad`). It also remembers the op that produced it (`.creator`); a tensor you made yourself has none
#   and is called a *leaf*.
# - a **`Function`** is one op: a `forward` from arrays to arrays, and a `backward` that turns the gradient of
#   the loss with respect to its output into gradients with respect to its inputs. That is the chain rule,
#   one link at a time.
#
# This lecture builds a small expression, derives its gradient by hand, lets autograd compute it, then writes an
# op of our own and checks its backward against finite differences.

# %%
import numpy as np
import matplotlib.pyplot as plt

import autograd
import ops                      # Tensor's operators (+, *, .sum()) are ops: importing ops installs them
from autograd import Function, Tensor, gradcheck

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## A tensor and its gradient
#
# Take $y = \sum_i (x_i^2 + 3x_i)$. By hand, $\partial y / \partial x_i = 2x_i + 3$. Autograd records the four ops
# of the forward pass (two multiplications, an addition, a sum) and runs their backward in reverse order.

# %%
x = Tensor(np.array([1.5, -0.5, 2.0]), requires_grad=True, name="x")
y = (x * x + 3.0 * x).sum()
print("y =", y.item())
print("y was made by", type(y.creator).__name__, "; x is a leaf:", x.creator is None)
y.backward()
print("x.grad     =", x.grad)
print("2x + 3     =", 2 * x.data + 3)
print("x * x is ops.mul(x, x):", np.array_equal((x * x).data, ops.mul(x, x).data))

# %% [markdown]
# `x` is used by two ops (`x * x` uses it twice, `3.0 * x` once). Each use sends back its own share of the
# gradient, and the engine adds them: $x + x + 3$. That sum over all uses is the multivariable chain rule.
#
# {py:func}`autograd.trace` runs the same backward pass one op at a time and prints a row per op, in the order
# backward calls them: the norm of the gradient that reached the op's output, dL/d(output), and of each gradient it
# sent on, dL/d(inputs), labelled by where it goes (`x.grad` for a leaf, otherwise the op that made that input).
# `width=100` keeps the rows within 100 columns.

# %%
x.grad = None                                 # backward adds to .grad: clear it before running again
y = (x * x + 3.0 * x).sum()
records = autograd.trace(y, width=100)

# %% [markdown]
# ## An op of our own: a `Function`
#
# A {py:class}`~autograd.Function` works on raw arrays (NumPy here, CuPy on a GPU), never on tensors: the engine does
# the bookkeeping. `forward` may save what `backward` will need; the engine frees it after backward.
#
# For $y = x^3$ and a loss $L$, the chain rule gives $\partial L / \partial x = \partial L / \partial y \cdot 3x^2$,
# element by element. `backward` receives $\partial L / \partial y$ (called `gy`, shaped like `y`) and returns
# $\partial L / \partial x$ (shaped like `x`).

# %%
class Cube(Function):
    """y = x**3, element-wise. x: any shape -> y: the same shape."""

    def forward(self, x):
        self.x = x                          # saved for backward
        return x * x * x

    def backward(self, gy):
        return 3 * self.x * self.x * gy     # dL/dx = dL/dy * dy/dx


def cube(x):
    return Cube()(x)                        # calling a Function records it in the graph


t = Tensor(np.linspace(-2, 2, 9), requires_grad=True)
cube(t).sum().backward()
print("autograd:", t.grad)
print("3 t^2   :", 3 * t.data ** 2)

# %% [markdown]
# The gradient of `sum(cube(t))` is $3t^2$: drawn beside the function, it is the slope at every point.

# %%
t = Tensor(np.linspace(-2, 2, 81), requires_grad=True)
cube(t).sum().backward()
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(t.data, t.data ** 3, label="$y = t^3$")
ax.plot(t.data, t.grad, label="autograd's $dy/dt$")
ax.plot(t.data[::8], 3 * t.data[::8] ** 2, "o", label="$3t^2$ by hand")
ax.axhline(0, color="grey", linewidth=0.5)
ax.set_xlabel("t")
ax.legend()
plt.show()

# %% [markdown]
# ## Checking a backward: `gradcheck`
#
# A backward written by hand can be wrong in ways no error message reveals. {py:func}`~autograd.gradcheck.gradcheck`
# compares it with central differences, $(f(x + \epsilon) - f(x - \epsilon)) / 2\epsilon$, element by element, for a
# random upstream gradient. It insists on float64: in float32 the rounding error of the differences would hide real
# mistakes.

# %%
rng = np.random.default_rng(20)
gradcheck(cube, [Tensor(rng.standard_normal((3, 5)), requires_grad=True, name="x")])
print("Cube's backward matches central differences")

# %% [markdown]
# And a wrong backward is caught. Here the factor 3 is forgotten:

# %%
class WrongCube(Cube):
    def backward(self, gy):
        return self.x * self.x * gy         # forgot the 3


try:
    gradcheck(lambda x: WrongCube()(x), [Tensor(rng.standard_normal((3, 5)), requires_grad=True, name="x")])
except autograd.GradcheckError as report:
    print(report)

# %% [markdown]
# ## Read next
#
# - `autograd/tensor.py`: the {py:class}`~autograd.Tensor`, leaves, and why the operators live in `ops`;
# - `autograd/function.py`: one op, what is saved and when it is freed;
# - `autograd/gradcheck.py`: central differences against the analytic gradient;
# - `ops/arithmetic.py`: the ops behind `+` and `*`, and the gradient of broadcasting.
#
# `docs/reading.md` lists the whole path. **Exercise:** `python -m minception.course new DIR` writes your copy of
# the exercises into `DIR`; the first ones are ReLU and softmax cross-entropy, forward and backward.
