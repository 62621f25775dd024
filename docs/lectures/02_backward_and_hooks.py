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
# # Lecture 2: backward and hooks
#
# Lecture 1 called `backward()` and found the gradients in `.grad`. This lecture opens the engine: the order in
# which it visits the ops, how it adds up the gradient of a tensor used twice, and the places where we can watch
# it work without changing it: tensor hooks, function hooks and anomaly mode.

# %%
import numpy as np

import autograd
import ops
from autograd import Tensor, name_scope

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Reverse topological order
#
# Forward built a graph: each tensor points to the op that made it, each op to its inputs. Backward must call
# an op only once the gradient of its output is complete, that is, after every op that *used* that output.
# Sorting the ops so that users come before producers is a topological order of the reversed graph.
#
# Below, `h` is used twice (by `h * h` and by `h.sum()`). {py:func}`autograd.backward_steps` runs the backward pass
# one op at a time and hands us each step: the op, the gradients that arrived at its outputs (`grad_outputs`) and
# those it produced for its inputs (`grad_inputs`).

# %%
rng = np.random.default_rng(2)
x = Tensor(rng.standard_normal((2, 3)), requires_grad=True, name="x")
w = Tensor(rng.standard_normal((2, 3)), requires_grad=True, name="w")
h = x * w
loss = (h * h).mean() + h.sum()

for step in autograd.backward_steps(loss):
    arrived = [float(np.linalg.norm(g)) for g in step.grad_outputs]
    sent = [None if g is None else round(float(np.linalg.norm(g)), 4) for g in step.grad_inputs]
    print(f"step {step.index}: {step.name:<5s} inputs {step.input_shapes}  |dL/d(output)| {arrived[0]:.4f}"
          f"  |dL/d(inputs)| {sent}")

# %% [markdown]
# `Mul` (the op that made `h`) runs last among the ops that touch `h`: by then both uses have sent their
# share, and the engine has added them. Check it against the chain rule written out by hand:
# $\partial L/\partial h = 2h/6 + 1$ (the mean is over 6 elements), then
# $\partial L/\partial x = w \cdot \partial L/\partial h$.

# %%
dh = 2 * h.data / h.size + 1
print("autograd :", x.grad.ravel())
print("by hand  :", (w.data * dh).ravel())
assert np.allclose(x.grad, w.data * dh) and np.allclose(w.grad, x.data * dh)

# %% [markdown]
# {py:func}`autograd.trace` is the same loop with a printed line per op. Inside a `name_scope` every op records a
# module path, which the trace prints beside the op's name (a network's layers set their own scopes).

# %%
with name_scope("layer"):
    h = x * w
loss = (h * h).mean() + h.sum()
records = autograd.trace(loss, names={"x": x, "w": w}, width=100)

# %% [markdown]
# ## Tensor hooks: watching one gradient
#
# Only leaves keep their gradient. To see the gradient of an intermediate tensor, either ask it to keep it
# (`retain_grad()`), or register a *hook*: a function called with that gradient as soon as it is complete.
# A hook that returns an array replaces the gradient; one that returns `None` only looks.

# %%
x.grad = w.grad = None
h = x * w
h.retain_grad()
seen = []
handle = h.register_hook(lambda g: seen.append(g.copy()))
((h * h).mean() + h.sum()).backward()
handle.remove()
print("h.grad (kept)       :", h.grad.ravel())
print("what the hook saw   :", seen[0].ravel())

# %% [markdown]
# ## Grad mode: no graph when none is needed
#
# Evaluating a model needs no backward. Under {py:func}`autograd.no_grad` ops record nothing: no creator, nothing
# saved for backward, less memory.

# %%
with autograd.no_grad():
    z = x * w
print("inside no_grad: creator", z.creator, ", requires_grad", z.requires_grad)
print("outside       : creator", type((x * w).creator).__name__)

# %% [markdown]
# ## Function hooks: watching every op
#
# A function hook sees every op as it runs, forward and backward. minception's inspection tools are function hooks,
# used as context managers: {py:class}`~autograd.PrintHook` prints each op, {py:class}`~autograd.TimerHook` times
# them, {py:class}`~autograd.MemoryHook` counts the bytes alive. They all plug into one place in the core,
# `autograd/hooks.py`, so the engine stays small.

# %%
with autograd.PrintHook():
    with name_scope("layer"):
        h = x * w
    ((h * h).mean() + h.sum()).backward()

# %%
with autograd.TimerHook() as timer:
    a = Tensor(rng.standard_normal((64, 256)), requires_grad=True)
    b = Tensor(rng.standard_normal((256, 128)), requires_grad=True)
    ops.relu(a @ b).sum().backward()
print(timer.summary())

# %% [markdown]
# ## Anomaly mode: where did the NaN come from?
#
# A NaN in the loss is usually born far from it and then spreads everywhere. In {py:func}`autograd.detect_anomaly`
# every op checks its outputs, forward and backward, and the first non-finite value stops the run with the
# op's name, its module path and the line of *your* code that created it.

# %%
poisoned = Tensor(np.array([[1.0, np.nan, 2.0], [0.5, 1.0, 3.0]]), name="poisoned")
try:
    with autograd.detect_anomaly():
        with name_scope("block.branch1"):
            h = x * poisoned
        loss = (h * h).mean()
except autograd.AnomalyError as e:
    print(e)

# %% [markdown]
# ## Read next
#
# - `autograd/engine.py`: the topological order, gradient accumulation, and when a gradient may be kept
#   without a copy;
# - `autograd/config.py`: grad mode and name scopes;
# - `autograd/hooks.py`: the one hook point; `autograd/inspect/` builds the trace, the hooks and anomaly mode on
#   it (`docs/inspection.md` tells how).
#
# **Exercise:** `python -m minception.course new DIR`, then write the backward of ReLU and of softmax
# cross-entropy: `python -m minception.course check DIR` says where a gradient goes wrong.
