"""How much memory training a network will take, estimated from its configuration without building it.

Why: ``--width 1e300`` or ``--blocks 100000000,1,1`` passes every range check, and building such a network fails
only after minutes, with a ``MemoryError`` at gigabytes (or a machine swapping itself to a halt). A program that
checks its configuration before it changes anything needs the answer in milliseconds, so ``estimate`` builds the
network at a small width (at most ``PROBE_WIDTH``) with at most one block more per stage, counts, and scales:

* parameters grow with the square of the width (a conv's weights are ``in x out`` channels) and linearly with
  each stage's block count (the blocks of a stage are all alike);
* activations (what the forward pass keeps for the backward pass) grow linearly with the width, the block counts
  and the batch.

The result is meant to err low (the kernels' scratch space, the data set and the interpreter are left out; the
parameters come out within a few percent): it is for refusing what cannot fit, never what might.
"""
import math
import os
from dataclasses import dataclass

from minception import nn

#: the widest network built to measure (about 0.2 M parameters, a few milliseconds)
PROBE_WIDTH = 0.125
#: bytes of a float32
BYTES = 4
#: copies of every parameter while training: the weights, their gradients, the optimizer's two buffers (RMSProp's
#: average of squares and its momentum) and the moving average used for evaluation
TRAINING_COPIES = 5
#: tensors of each conv box's output size kept for the backward pass: at least the conv's output and the batch
#: norm's (the ReLU runs inside it)
KEPT_PER_CONV = 2


@dataclass(frozen=True)
class Footprint:
    """``parameters`` of the network and ``activations`` (values kept per image for the backward pass)."""
    parameters: float
    activations: float

    def training_bytes(self, batch_size):
        """Bytes that training with batches of ``batch_size`` images takes at least."""
        return (self.parameters * BYTES * TRAINING_COPIES
                + float(batch_size) * self.activations * BYTES * KEPT_PER_CONV)


def _count(model, image_size):
    """``(parameters, activation values per image)`` of ``model`` for ``image_size`` x ``image_size`` inputs.

    The top-level children run one after the other; inside one, every branch starts at the child's input size
    and a strided layer shrinks what comes after it (in a reduction block the strided layer ends its branch), so
    each conv's output is taken at the input size divided by its stride, and the next child starts at the input
    size divided by the child's largest stride."""
    parameters = activations = 0
    size = image_size
    for _, child in model.named_children():
        parameters += sum(p.data.size for p in child.parameters())
        largest = 1
        for module in child.modules():
            stride = getattr(module, "stride", None)
            if stride is None:
                continue
            step = max(stride) if isinstance(stride, tuple) else int(stride)
            largest = max(largest, step)
            if isinstance(module, nn.Conv2d):
                side = math.ceil(size / step)
                activations += module.out_channels * side * side
        size = math.ceil(size / largest)
    return parameters, activations


def estimate(build, width, blocks, image_size=32):
    """The ``Footprint`` of ``build(width=width, blocks=blocks)`` (a model builder taking those two keywords).

    Builds at ``min(width, PROBE_WIDTH)`` with each stage's block count at most 1 (and once with one block more
    per stage that has more), so it takes milliseconds whatever ``width`` and ``blocks`` are. Errors of the
    builder itself (a block count the model refuses) come through as they are.
    """
    width = float(width)
    probe = min(width, PROBE_WIDTH)
    base = tuple(min(int(n), 1) for n in blocks)
    base_parameters, base_activations = _count(build(width=probe, blocks=base), image_size)
    parameters, activations = float(base_parameters), float(base_activations)
    for stage, n in enumerate(blocks):
        if n > base[stage]:
            more = tuple(b + (i == stage) for i, b in enumerate(base))
            p, a = _count(build(width=probe, blocks=more), image_size)
            parameters += float(n - base[stage]) * (p - base_parameters)
            activations += float(n - base[stage]) * (a - base_activations)
    scale = width / probe
    return Footprint(parameters * scale * scale, activations * scale)


def machine_memory():
    """Bytes of memory this process can have at most: the machine's physical memory (``os.sysconf``), or the
    container's limit (cgroup v2 ``memory.max``) when that is lower; None where neither can be read."""
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            text = f.read(64).strip()
        if text.isdigit():
            found.append(int(text))
    except OSError:
        pass
    found = [n for n in found if n > 0]
    return min(found) if found else None
