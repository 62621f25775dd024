"""The Inception-ResNet-A exercise: the student's block against the library's, weight for weight.

The student writes ``class InceptionResNetA(in_channels, rules, version, scale=None, relu=True)`` from ``nn``
units. It is graded in float64 in three steps, each of which must pass before the next is meaningful:

1. the same parameters and buffers: its ``state_dict()`` has the library block's keys, with the same shapes
   (the names matter: released weights load by name);
2. the same output: the library block's state dict (random weights, random running statistics) is loaded
   into it, and both run on the same input, in training mode;
3. the same gradients: ``sum(gy * out)`` backpropagated with the same random ``gy``, for the input and every
   parameter.

When the output differs, the block's classic mistakes are computed with the library block's own layers (the
branches concatenated in another order, the scale or the final ReLU forgotten, the scale applied to the sum)
and compared with the student's output.
"""
import itertools

import numpy as np

import ops
from autograd import Tensor

from .calls import NotStarted, call
from .compare import compare, same_values

#: the blocks graded: (in_channels, width, version, scale, relu)
CONFIGS = ((16, 0.125, 1, 0.17, True), (20, 0.125, 2, 0.2, False))


def randomized(block, rng):
    """The block in float64 with random weights and running statistics (so that no value is a default)."""
    block.to(dtype="float64")
    state = {}
    for key, value in block.state_dict().items():
        if value.dtype.kind != "f":
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape)
        else:
            state[key] = rng.standard_normal(value.shape) * (0.3 if key.endswith("weight") else 0.1)
    block.load_state_dict(state)
    return block


def residual_variants(block, x):
    """``{hint: output}``: the library block's output with one classic mistake, on input ``x`` (a Tensor)."""
    branches = [block.branch0(x), block.branch1(x), block.branch2(x)]
    scale, relu = block.scale, block.relu
    variants = {}
    for order in itertools.permutations(range(3)):
        if order != (0, 1, 2):
            up = block.conv2d(ops.concat([branches[i] for i in order], axis=1))
            variants[f"the branches are concatenated in the order branch{order[0]}, branch{order[1]}, "
                     f"branch{order[2]}: the figure's order is branch0, branch1, branch2"] = \
                ops.residual_add(x, up, scale, relu)
    up = block.conv2d(ops.concat(branches, axis=1))
    variants["forgot the residual scale: out = relu(x + scale * conv2d(concat(branches)))"] = \
        ops.residual_add(x, up, 1.0, relu)
    variants["the final ReLU: out = relu(x + scale * up) when relu=True, and no ReLU when relu=False"] = \
        ops.residual_add(x, up, scale, not relu)
    variants["the scale multiplies the residual branch only: x + scale * up, not scale * (x + up)"] = \
        ops.residual_add(x * scale, up, scale, relu)
    variants["forgot the residual connection: out = relu(x + scale * up), x added back"] = \
        ops.residual_add(x * 0.0, up, scale, relu)
    return {hint: v.data for hint, v in variants.items()}


def check_block(g, library_class, rules_class):
    """Grade ``g.module.InceptionResNetA`` against ``library_class`` (the library's block)."""
    student_class = getattr(g.module, "InceptionResNetA", None)
    if student_class is None:
        g.function("InceptionResNetA")
        return
    for in_channels, width, version, scale, relu in CONFIGS:
        text = (f"InceptionResNetA({in_channels}, Rules(width={width}), version={version}, scale={scale}, "
                f"relu={relu}), float64")
        try:
            student, problem = call(student_class, [in_channels, rules_class(width), version, scale, relu])
            if problem is None:
                _, problem = call(lambda: student.to(dtype="float64"), [])
        except NotStarted:
            g.not_started.add("InceptionResNetA")
            return
        g.started.add("InceptionResNetA")
        if problem:
            g.record("InceptionResNetA", text, [problem])
            continue
        g.record("InceptionResNetA", text, grade_one(g, student, randomized(
            library_class(in_channels, rules_class(width), version, scale, relu), g.rng), in_channels))


def state_problems(student, library):
    """Problems of the student's state dict: missing, unexpected or mis-shaped keys."""
    try:
        mine = {k: np.shape(v) for k, v in student.state_dict().items()}
    except Exception as error:
        return [{"output": "state_dict", "kind": "exception", "message": f"state_dict() raised {error!r}"[:200]}]
    theirs = {k: np.shape(v) for k, v in library.state_dict().items()}
    problems = []
    missing = [k for k in theirs if k not in mine]
    unexpected = [k for k in mine if k not in theirs]
    shapes = [f"{k} {mine[k]} (expected {theirs[k]})" for k in theirs if k in mine and mine[k] != theirs[k]]
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
        if keys:
            shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            problems.append({"output": "state_dict", "kind": "keys", "message": f"{len(keys)} {what}: {shown}",
                             "hint": "name the layers as the figure's code does: branch0, branch1 (an "
                                     "nn.Sequential of conv units), branch2, then conv2d (the 1x1 up conv)"})
    return problems


def grade_one(g, student, library, in_channels):
    """Problems of one configuration: state dict, then output, then gradients."""
    problems = state_problems(student, library)
    if problems:
        return problems
    _, problem = call(student.load_state_dict, [library.state_dict()])
    if problem:
        return [problem]
    x_data = g.rng.standard_normal((2, in_channels, 5, 7))
    gy = g.rng.standard_normal(x_data.shape)
    x_mine, x_lib = Tensor(x_data.copy(), requires_grad=True), Tensor(x_data.copy(), requires_grad=True)
    out, problem = call(student, [x_mine])
    if problem:
        return [problem]
    expected = library(x_lib)
    got = getattr(out, "data", out)
    difference = compare("out", got, expected.data, np.float64)
    if difference:
        variants = residual_variants(library, Tensor(x_data.copy()))
        difference["hint"] = next((hint for hint, v in variants.items() if same_values(got, v, np.float64)), None)
        return [difference]
    _, problem = call(lambda: ops.sum(out * Tensor(gy)).backward(), [])
    if problem:
        return [problem]
    ops.sum(expected * Tensor(gy)).backward()
    problems = []
    difference = compare("dx", x_mine.grad, x_lib.grad, np.float64)
    if difference:
        problems.append(difference)
    mine = dict(student.named_parameters())
    for name, p in library.named_parameters():
        difference = compare(f"d({name})", getattr(mine.get(name), "grad", None), p.grad, np.float64)
        if difference:
            problems.append(difference)
    return problems[:4]
