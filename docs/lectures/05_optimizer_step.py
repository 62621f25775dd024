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
# # Lecture 5: an optimizer step
#
# Backward gives a gradient; the optimizer decides what to do with it. The Inception-v4 paper trained with
# RMSProp (decay 0.9, $\epsilon = 1.0$, momentum 0.9), a learning rate of 0.045 multiplied by 0.94 every two
# epochs, and gradient clipping. This lecture takes each piece apart, then puts them together in a short
# training run.

# %%
import numpy as np
import matplotlib.pyplot as plt

import ops
from autograd import Tensor
from minception import data, nn, optim

np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## RMSProp, as the paper ran it
#
# RMSProp divides each gradient by a running root mean square of that parameter's past gradients, so that
# parameters with large gradients take smaller steps. The paper's system was TensorFlow, whose update, for a
# parameter $p$ with gradient $g$, is
#
# $$ms \leftarrow \rho\, ms + (1-\rho)\, g^2, \qquad mom \leftarrow \mu\, mom + \eta\, \frac{g}{\sqrt{ms + \epsilon}},
# \qquad p \leftarrow p - mom$$
#
# with $\rho$ = decay, $\mu$ = momentum, $\eta$ = learning rate, and $ms$ starting at **one**. Two details differ
# from the form most courses teach (and PyTorch uses): $\epsilon$ sits *inside* the square root, and the learning
# rate is inside the momentum buffer. One step by hand, against {py:class}`optim.RMSProp <minception.optim.RMSProp>`:

# %%
p = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
p.grad = np.array([0.1, -3.0, 20.0])
lr, decay, eps, momentum = 0.045, 0.9, 1.0, 0.9

ms = decay * np.ones(3) + (1 - decay) * p.grad ** 2
mom = momentum * np.zeros(3) + lr * p.grad / np.sqrt(ms + eps)
expected = p.data - mom

opt = optim.RMSProp([p], lr=lr, decay=decay, eps=eps, momentum=momentum)
opt.step()
print("by hand   :", expected)
print("optimizer :", p.data)
assert np.allclose(p.data, expected)

# %% [markdown]
# With $\epsilon = 1$ the normalisation acts only on large gradients. Where $ms$ has settled near $g^2$, the step
# (without momentum) is $\eta\, g/\sqrt{g^2 + 1}$ in TensorFlow's form and $\eta\, g/(|g| + 1)$ in PyTorch's:
# both about $\eta g$ for small gradients, both capped at $\eta$ for large ones, and up to $\sqrt 2$ apart in
# between. With the usual tiny $\epsilon$ every step has size $\eta$, whatever the gradient.

# %%
g = np.logspace(-3, 2, 200)
fig, ax = plt.subplots(figsize=(7, 4))
ax.loglog(g, g / np.sqrt(g ** 2 + 1.0), label=r"TensorFlow, $\epsilon=1$: $g/\sqrt{g^2+\epsilon}$")
ax.loglog(g, g / (g + 1.0), "--", label=r"PyTorch, $\epsilon=1$: $g/(|g|+\epsilon)$")
ax.loglog(g, g / (g + 1e-8), ":", label=r"$\epsilon=10^{-8}$ (either form)")
ax.set(xlabel="gradient |g|", ylabel="step / learning rate", title="RMSProp's step once ms has settled at g²")
ax.legend()
plt.show()

# %% [markdown]
# ## The learning-rate schedule
#
# A schedule is a pure function of the step number: the loop asks for the rate of the step it is about to take
# (`opt.lr = schedule(step)`), so resuming a run needs nothing but the step count. The paper's schedule drops the
# rate by a factor 0.94 every two epochs, in stairs:

# %%
steps_per_epoch = 100
paper = optim.exponential_decay(0.045, steps_per_epoch=steps_per_epoch, rate=0.94, epochs_per_decay=2)
smooth = optim.ExponentialDecay(0.045, decay_steps=2 * steps_per_epoch, rate=0.94, staircase=False)
steps = np.arange(0, 160 * steps_per_epoch, 10)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(steps / steps_per_epoch, [paper(int(s)) for s in steps], label="staircase (the paper)")
ax.plot(steps / steps_per_epoch, [smooth(int(s)) for s in steps], "--", label="smooth")
ax.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="0.045 x 0.94 every two epochs")
ax.legend()
plt.show()
print("after 160 epochs:", paper(160 * steps_per_epoch))

# %% [markdown]
# ## Clipping by the global norm
#
# One bad batch can produce a huge gradient. Clipping computes the norm of *all* gradients together and, when it
# exceeds `max_norm`, scales every gradient by the same factor: the step keeps its direction and only loses
# length. It runs between `backward()` and `step()`.

# %%
a, b = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(2), requires_grad=True)
a.grad, b.grad = np.array([3.0, 0.0, 4.0]), np.array([0.0, 12.0])
before = np.concatenate([a.grad, b.grad])
norm = optim.clip_grad_norm([a, b], max_norm=2.0)
after = np.concatenate([a.grad, b.grad])
print(f"global norm before: {norm:.3f}, after: {np.linalg.norm(after):.3f}")
print("direction kept:", np.allclose(after / np.linalg.norm(after), before / np.linalg.norm(before)))

# %% [markdown]
# ## Together: a short training run
#
# A small convolutional network learns the synthetic shapes set (ten classes of shapes drawn at random, 32x32),
# with the paper's optimizer, a schedule that decays every 150 steps (to see it within a short run) and clipping.
# One step is always: zero the gradients, forward, loss, backward, clip, set the rate, update.

# %%
train, test = data.make_synthetic(n_train=2000, n_test=200, seed=0)
nn.init.manual_seed(0)
model = nn.Sequential(nn.ConvBNReLU(3, 16, (3, 3), stride=2, padding=1),
                      nn.ConvBNReLU(16, 32, (3, 3), stride=2, padding=1),
                      nn.ConvBNReLU(32, 32, (3, 3), stride=2, padding=1),
                      nn.GlobalAvgPool2d(), nn.Linear(32, 10))
opt = optim.RMSProp(model.named_parameters(), lr=0.045, decay=0.9, eps=1.0, momentum=0.9)
schedule = optim.ExponentialDecay(0.045, decay_steps=150, rate=0.8)

rng = np.random.default_rng(0)
history = {"loss": [], "lr": [], "norm": []}
for step in range(1000):
    idx = rng.choice(len(train.labels), size=16, replace=False)
    x, y = Tensor(data.normalize(train.images[idx])), train.labels[idx]
    opt.zero_grad()
    loss = ops.softmax_cross_entropy(model(x), y)
    loss.backward()
    history["norm"].append(optim.clip_grad_norm(model.parameters(), max_norm=2.0))
    opt.lr = schedule(step)
    opt.step()
    history["loss"].append(loss.item())
    history["lr"].append(opt.lr)

model.eval()
logits = model(Tensor(data.normalize(test.images)))
clipped = np.mean(np.array(history["norm"]) > 2.0)
print(f"test accuracy after 1000 steps: {np.mean(logits.data.argmax(1) == test.labels):.1%} (chance: 10%); "
      f"{clipped:.0%} of the steps were clipped")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
for ax, (key, title) in zip(axes, (("loss", "training loss"), ("norm", "gradient norm (before clipping)"),
                                   ("lr", "learning rate"))):
    ax.plot(history[key], linewidth=0.6 if key != "lr" else 1.5, alpha=0.5 if key != "lr" else 1.0)
    if key != "lr":                                       # a moving average over 50 steps shows the trend
        ax.plot(np.arange(49, len(history[key])), np.convolve(history[key], np.ones(50) / 50, "valid"))
    ax.set(xlabel="step", title=title)
axes[1].axhline(2.0, color="red", linestyle="--", linewidth=1, label="max_norm")
axes[1].legend()
plt.show()

# %% [markdown]
# ## Read next
#
# - `minception/optim/optimizer.py`: what an optimizer keeps per parameter, and weight decay;
# - `minception/optim/rmsprop.py`: both forms of RMSProp and why the difference matters at $\epsilon = 1$;
# - `minception/optim/clip.py` and `minception/optim/schedules.py` ({py:func}`~minception.optim.clip_grad_norm`,
#   {py:class}`~minception.optim.StepDecay`);
# - `minception/train/loop.py`: {py:func}`~minception.train.train_step`, the training step of the real trainer, in
#   the same order as above.
#
# **Exercise:** the RMSProp update in TensorFlow's form (`python -m minception.course new DIR`).
