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
# # Lecture 7: the gradient flow of the two network families
#
# The paper's question: do residual connections help an Inception network learn? Its answer was that the
# residual versions train faster. Lecture 6 showed the mechanism in one block: the identity path hands the
# gradient to the block's input whatever the branches do. This lecture measures it in whole networks,
# Inception-v4 against Inception-ResNet-v2, built small enough to run in seconds: 1/8 of the paper's filters,
# 32x32 images, a batch of 4.

# %%
import matplotlib.pyplot as plt
from IPython.display import Image, display

from autograd import Tensor
from minception import data, models, nn
from minception.inspect import gradient_flow, plot_gradient_flow

train, _ = data.make_synthetic(n_train=40, n_test=10, seed=0)
x, labels = Tensor(data.normalize(train.images[:4])), train.labels[:4]
print("a batch:", x.shape, "labels", labels)

# %% [markdown]
# ## Measuring the flow
#
# `minception.inspect.gradient_flow(model, x, labels)` runs one forward and backward pass on the batch and
# records, input side first:
#
# - for every block (the stem, each Inception block, each reduction, the head): the norm of the gradient arriving
#   at its output, $\|\partial L/\partial h_k\|$;
# - for every conv and linear layer: the norm of its weight gradient, $\|\partial L/\partial W\|$.
#
# It leaves the model as it found it (gradients and batch-norm statistics restored). Both networks get the same
# width, the same number of blocks per stage (2, 4, 2 instead of the paper's 4, 7, 3 and 5, 10, 5) and the same
# seed.

# %%
def build(family, blocks=(2, 4, 2), width=0.125):
    nn.init.manual_seed(0)
    return family(num_classes=10, width=width, blocks=blocks, small_input=True, dropout=0.0)


flows = {"Inception-v4": gradient_flow(build(models.inception_v4), x, labels, label="Inception-v4"),
         "Inception-ResNet-v2": gradient_flow(build(models.inception_resnet_v2), x, labels,
                                              label="Inception-ResNet-v2")}
for name, flow in flows.items():
    print(f"{name} (loss {flow.loss:.3f}), per block:\n{flow.block_table()}\n")

# %% [markdown]
# Read the column $|dL/d\,\text{output}|$ from the bottom (the head) up. In Inception-v4 the gradient changes at
# every block on its way down, by a factor that differs from one block to the next, and the factors compound.
# In Inception-ResNet-v2 it stays nearly constant within a stage and changes at the reductions, which have no
# identity path.

# %%
plot_gradient_flow(flows, "gradient_flow.png", styles={"Inception-v4": {"color": "tab:red"},
                                                      "Inception-ResNet-v2": {"color": "tab:blue"}},
                   title="Gradient flow at initialisation (width 0.125, blocks 2, 4, 2, batch 4)")
display(Image(filename="gradient_flow.png"))       # the PNG the function saved

# %% [markdown]
# ## Deeper networks
#
# If each plain block multiplies the gradient by its own factor, the spread between the first and the last block
# should grow with depth, while the residual network's should not. One number per network: the gradient at the
# stem's output divided by the gradient at the last block before the head.

# %%
depths = [(1, 1, 1), (2, 4, 2), (4, 8, 4)]
spread = {"Inception-v4": [], "Inception-ResNet-v2": []}
for blocks in depths:
    for name, family in (("Inception-v4", models.inception_v4),
                         ("Inception-ResNet-v2", models.inception_resnet_v2)):
        body = [b.output_grad_norm for b in gradient_flow(build(family, blocks), x, labels).blocks]
        spread[name].append(body[0] / body[-2])          # stem's output / last block before the head
        print(f"{name:<20s} blocks {blocks}: |dL/dh| stem / last block = {spread[name][-1]:6.2f}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for name, colour in (("Inception-v4", "tab:red"), ("Inception-ResNet-v2", "tab:blue")):
    ax.plot([sum(b) for b in depths], spread[name], "o-", color=colour, label=name)
ax.set(xlabel="Inception blocks (A + B + C)", ylabel="|dL/dh| at stem / at last block", yscale="log",
       title="How much the gradient changes from head to stem")
ax.legend()
plt.show()

# %% [markdown]
# A spread far from 1 means the early and the late layers learn from gradients of very different sizes, so
# no single learning rate suits them all; with many blocks it can grow until training fails. This is one
# measurement at initialisation, on one batch: the README's depth sweep (`examples/residual_vs_plain.py`)
# trains both families and finds what this predicts, that residual connections pay once the network is deep.
#
# ## Read next
#
# - `minception/inspect/gradient_flow.py` ({py:func}`~minception.inspect.gradient_flow.gradient_flow`,
#   {py:func}`~minception.inspect.plot_gradient_flow`): how the measurement is taken with forward hooks and tensor
#   hooks;
# - `minception/models/resnet_blocks.py`: the identity path, {py:func}`ops.residual_add`;
# - `examples/inspect_gradients.py`: the same comparison at a larger size, before and after training;
# - `examples/residual_vs_plain.py` and `docs/residual_vs_plain/results.md`: does it pay in training?
#
# **Exercises:** `python -m minception.course new DIR` gives the whole set; `python -m minception.course run DIR`
# trains the scaled network on your own kernels.
